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

from pydantic import Field, TypeAdapter, ValidationInfo, model_validator

from gateway.providers import adyen, alipay, standardwebhooks, stripe, wechatpay
from gateway.providers.keys import Loader, check_material, loader
from gateway.providers.provider import Account, Provider, log, text_answer


# Adyen, until its own module holds all of it (its checks and answer are still kept here).
class _AdyenAccount(adyen.AdyenAccount):
    @model_validator(mode="after")
    def _complete(self, info: ValidationInfo) -> _AdyenAccount:
        self.require_some(self.hmac_keys, "secrets")
        keys = [adyen.hex_key(k.get_secret_value()) for k in self.hmac_keys]
        if not all(keys):
            raise self.refuse("hmac_keys must be hex")
        check_material(self, keys, "hmac_keys")
        if not self.merchant_account_codes and loader(info) is not None:  # loaded from a file
            log.warning(
                "adyen account has no merchant_account_codes: items of any merchant account "
                "are accepted",
                extra={"account": self.name},
            )
        return self


_ADYEN = Provider(account=_AdyenAccount, verify=adyen.verify, success=text_answer("[accepted]"))

PROVIDERS: Mapping[str, Provider] = {
    p.name: p
    for p in (
        alipay.PROVIDER,
        wechatpay.PROVIDER,
        stripe.PROVIDER,
        standardwebhooks.PROVIDER,
        _ADYEN,
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
    return _ACCOUNTS.validate_python(table, context={"loader": loader})
