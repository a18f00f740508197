"""The providers paynotify serves, by name, and the union of their account models.

Each provider is one module in ``gateway.providers`` exporting ``PROVIDER``
(``gateway.providers.provider.Provider``); adding one is adding its module and its line below.
``parse_account`` reads one ``[[accounts]]`` table through the discriminated union on
``provider``, so keys are loaded and decoded once, while the configuration is loaded. A setting of
another provider is ignored; one that no provider has is refused.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from gateway.providers import adyen, alipay, standardwebhooks, stripe, wechatpay
from gateway.providers.keys import Loader
from gateway.providers.provider import Account, Provider

PROVIDERS: Mapping[str, Provider] = {
    p.name: p
    for p in (
        alipay.PROVIDER,
        wechatpay.PROVIDER,
        stripe.PROVIDER,
        standardwebhooks.PROVIDER,
        adyen.PROVIDER,
    )
}

# Any provider's account: what the settings hold and the verifiers receive.
AccountConfig = Account


def _settings(account: type[Account]) -> frozenset[str]:
    """Return the names an account model's settings are written with in the file."""
    return frozenset(f.alias or name for name, f in account.model_fields.items())


_OWN = {name: _settings(p.account) for name, p in PROVIDERS.items()}
_ANY = frozenset().union(*_OWN.values())
_UNION: Any = functools.reduce(operator.or_, (p.account for p in PROVIDERS.values()))
_ACCOUNTS: TypeAdapter[Account] = TypeAdapter(Annotated[_UNION, Field(discriminator="provider")])


def parse_account(table: Mapping[str, Any], loader: Loader) -> Account:
    """Validate one ``[[accounts]]`` table as its provider's account, loading its keys.

    Raises:
        pydantic.ValidationError: a field is missing, unknown or of the wrong type.
        ConfigError: a key or secret cannot be loaded, or is unusable (naming the account).
    """
    provider = table.get("provider") if isinstance(table, Mapping) else None
    if isinstance(provider, str) and provider in _OWN:
        # Another provider's setting is ignored, as it was when every account shared one model.
        foreign = _ANY - _OWN[provider]
        table = {key: value for key, value in table.items() if key not in foreign}
    return _ACCOUNTS.validate_python(table, by_name=False, context={"loader": loader})
