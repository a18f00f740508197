"""The gateway's settings, built once from the TOML configuration file.

Relative paths in the file are relative to the file's own folder. Any secret may be written
``"env:NAME"`` (read from the environment) or ``"file:PATH"`` (read from a file). Key files are
PEM, or bare base64 as providers hand them out.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import logging
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from gateway.accounts import (
    AccountConfig,
    AdyenAccount,
    AlipayAccount,
    StandardWebhooksAccount,
    StripeAccount,
    WechatPayAccount,
)
from gateway.errors import ConfigError
from gateway.providers import adyen, standardwebhooks
from gateway.records import NOTIFICATIONS_TOPIC

CONFIG_ENV = "PAYNOTIFY_CONFIG"
# prometheus_client's multiprocess mode: the folder where every worker process writes its values.
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
_T = TypeVar("_T", tuple[Any, ...], dict[str, Any])
# The largest request body the gateway takes. Its record (the body in base64, 4/3 of its size,
# plus fields of bounded length, see gateway.records.TEXT_LIMITS: under 8 KiB) must fit in what
# Kafka takes by default: librdkafka's message.max.bytes (1,000,000) and the broker's
# message.max.bytes (1,048,588). 512 KiB makes a record of at most ~708,000 bytes.
MAX_BODY_BYTES = 512 * 1024
# Key material an HMAC secret must hold, once decoded (NIST SP 800-107: at least the security
# strength wanted; 16 bytes = 128 bits). Providers hand out 24 to 64 bytes.
MIN_SECRET_BYTES = 16
APIV3_KEY_BYTES = 32
# Request heads: at most this many header lines, and this many bytes before the body.
MAX_HEADERS = 100
MAX_HEADER_BYTES = 16 * 1024
log = logging.getLogger("paynotify.gateway")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GatewaySection(_Model):
    listen: str = "127.0.0.1:8000"
    max_body_bytes: int = Field(default=64 * 1024, gt=0, le=MAX_BODY_BYTES)
    delivery_timeout_ms: int = Field(default=4000, ge=1000, le=30000)
    workers: int = Field(default=1, ge=1, le=64)
    read_timeout_seconds: float = Field(default=15, gt=0, le=300)
    max_connections: int = Field(default=1000, ge=1, le=100_000)


class KafkaSection(_Model):
    bootstrap_servers: str = "127.0.0.1:9092"
    partitions: int = Field(default=8, ge=1, le=1024)
    topic_prefix: str = ""


class AccountSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    provider: Literal["alipay", "wechatpay", "stripe", "standardwebhooks", "adyen"]
    app_id: str | None = None
    seller_id: str | None = None
    currency: str = "CNY"
    alipay_public_keys: list[str] = []
    mchid: str | None = None
    appid: str | None = None
    apiv3_key: str | None = None
    platform_public_keys: dict[str, str] = {}
    timestamp_tolerance_seconds: int = Field(default=300, ge=1, le=3600)
    signing_secrets: list[str] = []
    order_id_metadata_key: str = "out_trade_no"
    hmac_keys: list[str] = []
    merchant_account_codes: list[str] = []
    sign_types: list[Literal["RSA2", "RSA"]] = Field(default=["RSA2", "RSA"], min_length=1)
    allowed_source_ips: list[str] | None = None


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class GatewaySettings:
    """Everything the gateway needs, validated and with keys loaded."""

    host: str
    port: int
    max_body_bytes: int
    delivery_timeout_ms: int
    bootstrap_servers: str
    partitions: int
    topic_prefix: str
    accounts: Mapping[tuple[str, str], AccountConfig]
    source_networks: Mapping[tuple[str, str], tuple[Network, ...]] = field(default_factory=dict)
    workers: int = 1
    read_timeout_seconds: float = 15.0
    max_connections: int = 1000

    @property
    def notifications_topic(self) -> str:
        return self.topic_prefix + NOTIFICATIONS_TOPIC


def config_path(explicit: str | os.PathLike[str] | None) -> Path:
    """Return the configuration file's path from ``--config`` or ``PAYNOTIFY_CONFIG``.

    Raises:
        ConfigError: neither is given, or the file does not exist.
    """
    value = explicit or os.environ.get(CONFIG_ENV)
    if not value:
        raise ConfigError(f"no configuration file: pass --config or set {CONFIG_ENV}")
    path = Path(value)
    if not path.is_file():
        raise ConfigError(f"configuration file not found: {path}")
    return path


def read_toml(path: Path) -> dict[str, Any]:
    """Parse the configuration file.

    Raises:
        ConfigError: the file is not valid TOML.
    """
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def load_settings(path: Path) -> GatewaySettings:
    """Build the gateway settings from a configuration file.

    Raises:
        ConfigError: any section or account is invalid, or a key cannot be loaded.
    """
    doc = read_toml(path)
    try:
        gateway = GatewaySection(**doc.get("gateway", {}))
        kafka = KafkaSection(**doc.get("kafka", {}))
        sections = [AccountSection(**a) for a in doc.get("accounts", [])]
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_describe(exc)}") from None
    host, port = parse_listen(gateway.listen)
    accounts: dict[tuple[str, str], AccountConfig] = {}
    networks: dict[tuple[str, str], tuple[Network, ...]] = {}
    for section in sections:
        key = (section.provider, section.name)
        if key in accounts:
            raise ConfigError(
                f"account {section.name!r} is configured twice for {section.provider}"
            )
        accounts[key] = build_account(section, path.parent)
        if section.allowed_source_ips is not None:
            networks[key] = parse_networks(section.allowed_source_ips, section.name)
    return GatewaySettings(
        host=host,
        port=port,
        max_body_bytes=gateway.max_body_bytes,
        delivery_timeout_ms=gateway.delivery_timeout_ms,
        bootstrap_servers=kafka.bootstrap_servers,
        partitions=kafka.partitions,
        topic_prefix=kafka.topic_prefix,
        accounts=accounts,
        source_networks=networks,
        workers=gateway.workers,
        read_timeout_seconds=gateway.read_timeout_seconds,
        max_connections=gateway.max_connections,
    )


def parse_networks(values: list[str], name: str) -> tuple[Network, ...]:
    """Parse an account's ``allowed_source_ips`` (addresses or CIDR networks).

    Raises:
        ConfigError: a value is not an address or network.
    """
    try:
        return tuple(ipaddress.ip_network(v.strip(), strict=False) for v in values)
    except ValueError:
        raise ConfigError(f"account {name!r}: allowed_source_ips has an invalid entry") from None


def parse_listen(listen: str) -> tuple[str, int]:
    """Split ``host:port``.

    Raises:
        ConfigError: the value is not host:port.
    """
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ConfigError(f"[gateway] listen must be host:port, got {listen!r}")
    return host.strip("[]"), int(port)


def build_account(section: AccountSection, base: Path) -> AccountConfig:
    """Turn one ``[[accounts]]`` table into the provider's account, loading keys and secrets.

    Raises:
        ConfigError: a required field is missing or a key cannot be loaded.
    """
    where = f"account {section.name!r}"
    if section.provider == "alipay":
        keys = tuple(
            load_public_key(resolve_secret(k, base), base) for k in section.alipay_public_keys
        )
        return AlipayAccount(
            name=section.name,
            app_id=_need(section.app_id, where, "app_id"),
            public_keys=_non_empty(keys, where, "alipay_public_keys"),
            seller_id=section.seller_id,
            currency=section.currency,
            sign_types=frozenset(section.sign_types),
        )
    if section.provider == "wechatpay":
        platform = {
            serial: load_public_key(resolve_secret(v, base), base)
            for serial, v in section.platform_public_keys.items()
        }
        apiv3_key = resolve_secret(_need(section.apiv3_key, where, "apiv3_key"), base)
        if len(apiv3_key.encode("utf-8")) != APIV3_KEY_BYTES:
            raise ConfigError(f"{where}: apiv3_key must be {APIV3_KEY_BYTES} bytes")
        return WechatPayAccount(
            name=section.name,
            mchid=_need(section.mchid, where, "mchid"),
            appid=_need(section.appid, where, "appid"),
            apiv3_key=SecretStr(apiv3_key),
            platform_public_keys=_non_empty(platform, where, "platform_public_keys"),
            timestamp_tolerance_seconds=section.timestamp_tolerance_seconds,
        )
    if section.provider == "adyen":
        hmac_keys = _secrets(section.hmac_keys, base, where)
        _check_each(hmac_keys, _is_hex, where, "hmac_keys must be hex")
        _check_material(hmac_keys, adyen.hex_key, where, "hmac_keys")
        if not section.merchant_account_codes:
            log.warning(
                "adyen account has no merchant_account_codes: items of any merchant account "
                "are accepted",
                extra={"account": section.name},
            )
        return AdyenAccount(
            name=section.name,
            hmac_keys=hmac_keys,
            merchant_account_codes=frozenset(section.merchant_account_codes),
        )
    secrets = _secrets(section.signing_secrets, base, where)
    if section.provider == "stripe":
        _check_material(secrets, stripe_key, where, "signing_secrets")
        return StripeAccount(
            name=section.name,
            signing_secrets=secrets,
            timestamp_tolerance_seconds=section.timestamp_tolerance_seconds,
            order_id_metadata_key=section.order_id_metadata_key,
        )
    _check_each(secrets, _is_whsec, where, "signing_secrets must be whsec_ plus base64")
    _check_material(secrets, standardwebhooks.secret_key, where, "signing_secrets")
    return StandardWebhooksAccount(
        name=section.name,
        signing_secrets=secrets,
        timestamp_tolerance_seconds=section.timestamp_tolerance_seconds,
    )


def resolve_secret(value: str, base: Path) -> str:
    """Resolve ``env:NAME`` and ``file:PATH`` references; return other values unchanged.

    Raises:
        ConfigError: the variable is unset or the file cannot be read.
    """
    if value.startswith("env:"):
        name = value[4:]
        if name not in os.environ:
            raise ConfigError(f"environment variable {name} is not set")
        return os.environ[name]
    if value.startswith("file:"):
        try:
            return (base / value[5:]).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read secret file {value[5:]}: {exc.strerror}") from None
    return value


def _is_file(path: Path) -> bool:
    """Return whether ``path`` names a file; a bare base64 key is no path (even when too long)."""
    try:
        return path.is_file()
    except OSError:
        return False


def load_public_key(value: str, base: Path) -> RSAPublicKey:
    """Load an RSA public key from a PEM file path, inline PEM, or bare base64 DER.

    Raises:
        ConfigError: the key cannot be read or is not an RSA public key.
    """
    text = value
    if "BEGIN" not in value and _is_file(base / value):
        text = (base / value).read_text(encoding="ascii").strip()
    try:
        if "BEGIN" in text:
            key = load_pem_public_key(text.encode("ascii"))
        else:
            key = load_der_public_key(base64.b64decode("".join(text.split()), validate=True))
    except (ValueError, binascii.Error, UnicodeEncodeError):
        raise ConfigError("a configured public key is neither PEM nor base64 DER") from None
    if not isinstance(key, RSAPublicKey):
        raise ConfigError("a configured public key is not an RSA key")
    return key


def _secrets(values: list[str], base: Path, where: str) -> tuple[SecretStr, ...]:
    return _non_empty(tuple(SecretStr(resolve_secret(v, base)) for v in values), where, "secrets")


def _check_each(values: tuple[SecretStr, ...], valid: Any, where: str, message: str) -> None:
    if not all(valid(v.get_secret_value()) for v in values):
        raise ConfigError(f"{where}: {message}")


def stripe_key(secret: str) -> bytes:
    """Return a Stripe secret's key material: what follows ``whsec_`` (the HMAC key is the whole
    string, but the prefix is no secret)."""
    return secret.removeprefix("whsec_").encode("utf-8")


def _check_material(values: tuple[SecretStr, ...], key: Any, where: str, name: str) -> None:
    """Refuse a secret with less than ``MIN_SECRET_BYTES`` of key material once decoded."""
    for value in values:
        if len(key(value.get_secret_value())) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"{where}: a secret in {name} is empty or shorter than "
                f"{MIN_SECRET_BYTES} bytes of key material"
            )


def _is_hex(value: str) -> bool:
    try:
        return len(binascii.a2b_hex(value.strip())) > 0
    except (binascii.Error, ValueError):
        return False


def _is_whsec(value: str) -> bool:
    try:
        return len(base64.b64decode(value.removeprefix("whsec_") + "==")) > 0
    except (binascii.Error, ValueError):
        return False


def _need(value: str | None, where: str, name: str) -> str:
    if not value:
        raise ConfigError(f"{where}: {name} is required")
    return value


def _non_empty(value: _T, where: str, name: str) -> _T:
    if not value:
        raise ConfigError(f"{where}: at least one of {name} is required")
    return value


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {first['msg']}"
