"""Configured merchant accounts, one frozen dataclass per provider, with keys already loaded.

The verifiers in ``gateway.providers`` receive these; ``gateway.settings`` builds them from the
configuration file. Secrets are ``SecretStr`` so that no repr or log line can show them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from pydantic import SecretStr

PROVIDERS = ("alipay", "wechatpay", "stripe", "standardwebhooks", "adyen")


@dataclass(frozen=True, slots=True)
class AlipayAccount:
    name: str
    app_id: str
    public_keys: tuple[RSAPublicKey, ...] = field(repr=False)
    seller_id: str | None = None
    currency: str = "CNY"
    sign_types: frozenset[str] = frozenset({"RSA2", "RSA"})
    provider: ClassVar[str] = "alipay"


@dataclass(frozen=True, slots=True)
class WechatPayAccount:
    name: str
    mchid: str
    appid: str
    apiv3_key: SecretStr
    platform_public_keys: dict[str, RSAPublicKey] = field(repr=False)
    timestamp_tolerance_seconds: int = 300
    provider: ClassVar[str] = "wechatpay"


@dataclass(frozen=True, slots=True)
class StripeAccount:
    name: str
    signing_secrets: tuple[SecretStr, ...]
    timestamp_tolerance_seconds: int = 300
    order_id_metadata_key: str = "out_trade_no"
    provider: ClassVar[str] = "stripe"


@dataclass(frozen=True, slots=True)
class StandardWebhooksAccount:
    name: str
    signing_secrets: tuple[SecretStr, ...]
    timestamp_tolerance_seconds: int = 300
    provider: ClassVar[str] = "standardwebhooks"


@dataclass(frozen=True, slots=True)
class AdyenAccount:
    name: str
    hmac_keys: tuple[SecretStr, ...]
    merchant_account_codes: frozenset[str] = frozenset()  # empty: any (warned at start-up)
    provider: ClassVar[str] = "adyen"


AccountConfig = (
    AlipayAccount | WechatPayAccount | StripeAccount | StandardWebhooksAccount | AdyenAccount
)
