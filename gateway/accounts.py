"""The providers paynotify serves, by name, and the union of their account models.

Each provider is one module in ``gateway.providers`` exporting ``PROVIDER``
(``gateway.providers.provider.Provider``); adding one is adding its module and its line below.
``parse_account`` reads one ``[[accounts]]`` table through the discriminated union on
``provider``, so keys are loaded and decoded once, while the configuration is loaded. A setting of
another provider is ignored; one that no provider has is refused. ``QUERIES`` holds the
order-query parts of the providers that have one (reconciliation); a reconciliation setting on an
account of another provider is refused, since it could never be honoured.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from gateway.errors import ConfigError
from gateway.providers import (
    adyen,
    alipay,
    alipay_query,
    standardwebhooks,
    stripe,
    stripe_query,
    wechatpay,
    wechatpay_query,
)
from gateway.providers.keys import Loader
from gateway.providers.provider import Account, Provider
from gateway.providers.query import SETTINGS, Query, Reconcilable

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

QUERIES: Mapping[str, Query] = {
    "alipay": alipay_query.QUERY,
    "wechatpay": wechatpay_query.QUERY,
    "stripe": stripe_query.QUERY,
}

# Any provider's account: what the settings hold and the verifiers receive.
AccountConfig = Account


def _settings(account: type[Account]) -> frozenset[str]:
    """Return the names an account model's settings are written with in the file."""
    return frozenset(f.alias or name for name, f in account.model_fields.items())


_OWN = {name: _settings(p.account) for name, p in PROVIDERS.items()}
_ANY = frozenset().union(*_OWN.values())
# The settings only reconciliation reads: asked of a provider without a query API, refused.
_RECONCILE_SETTINGS = frozenset(
    {*SETTINGS, "app_private_key", "merchant_private_key", "merchant_serial_no", "api_key"}
)
_UNION: Any = functools.reduce(operator.or_, (p.account for p in PROVIDERS.values()))
_ACCOUNTS: TypeAdapter[Account] = TypeAdapter(Annotated[_UNION, Field(discriminator="provider")])


def reconciling(accounts: Iterable[Account]) -> list[Reconcilable]:
    """Return the accounts that configure reconciliation."""
    return [a for a in accounts if isinstance(a, Reconcilable) and a.reconciles]


def parse_account(table: Mapping[str, Any], loader: Loader) -> Account:
    """Validate one ``[[accounts]]`` table as its provider's account, loading its keys.

    Raises:
        pydantic.ValidationError: a field is missing, unknown or of the wrong type.
        ConfigError: a key or secret cannot be loaded, or is unusable (naming the account).
    """
    provider = table.get("provider") if isinstance(table, Mapping) else None
    if isinstance(provider, str) and provider in _OWN and provider not in QUERIES:
        asked = sorted(_RECONCILE_SETTINGS & set(table))
        if asked:
            raise ConfigError(
                f"account {table.get('name')!r}: {provider} has no order-query API, so "
                f"{asked[0]} cannot be used (reconciliation: alipay, wechatpay, stripe)"
            )
    if isinstance(provider, str) and provider in _OWN:
        # Another provider's setting is ignored, as it was when every account shared one model.
        foreign = _ANY - _OWN[provider]
        table = {key: value for key, value in table.items() if key not in foreign}
    return _ACCOUNTS.validate_python(table, by_name=False, context={"loader": loader})
