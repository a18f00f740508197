"""The gateway's settings, built once from the TOML configuration file.

Relative paths in the file are relative to the file's own folder. Any secret may be written
``"env:NAME"`` (read from the environment) or ``"file:PATH"`` (read from a file). Key files are
PEM, or bare base64 as providers hand them out.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.accounts import PROVIDERS, AccountConfig, parse_account
from gateway.config import KafkaSettings, kafka_settings, read_toml
from gateway.errors import ConfigError
from gateway.providers.keys import public_key
from gateway.records import NOTIFICATIONS_TOPIC

# prometheus_client's multiprocess mode: the folder where every worker process writes its values.
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
# The largest request body the gateway takes. Its record (the body in base64, 4/3 of its size,
# plus fields of bounded length, see gateway.records.TEXT_LIMITS: under 8 KiB) must fit in what
# Kafka takes by default: librdkafka's message.max.bytes (1,000,000) and the broker's
# message.max.bytes (1,048,588). 512 KiB makes a record of at most ~708,000 bytes.
MAX_BODY_BYTES = 512 * 1024
# Request heads: at most this many header lines, and this many bytes before the body.
MAX_HEADERS = 100
MAX_HEADER_BYTES = 16 * 1024


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GatewaySection(_Model):
    listen: str = "127.0.0.1:8000"
    max_body_bytes: int = Field(default=64 * 1024, gt=0, le=MAX_BODY_BYTES)
    delivery_timeout_ms: int = Field(default=4000, ge=1000, le=30000)
    workers: int = Field(default=1, ge=1, le=64)
    read_timeout_seconds: float = Field(default=15, gt=0, le=300)
    max_connections: int = Field(default=1000, ge=1, le=100_000)


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

    @property
    def kafka(self) -> KafkaSettings:
        """Return the shared ``[kafka]`` settings the gateway was built from."""
        return KafkaSettings(self.bootstrap_servers, self.partitions, self.topic_prefix)


def load_settings(path: Path) -> GatewaySettings:
    """Build the gateway settings from a configuration file.

    Raises:
        ConfigError: any section or account is invalid, or a key cannot be loaded.
    """
    doc = read_toml(path)
    kafka = kafka_settings(doc, path)
    loader = FileLoader(path.parent)
    try:
        gateway = GatewaySection(**doc.get("gateway", {}))
        parsed = [parse_account(table, loader) for table in doc.get("accounts", [])]
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_describe(exc)}") from None
    host, port = parse_listen(gateway.listen)
    accounts: dict[tuple[str, str], AccountConfig] = {}
    networks: dict[tuple[str, str], tuple[Network, ...]] = {}
    for account in parsed:
        key = (account.provider, account.name)
        if key in accounts:
            raise ConfigError(
                f"account {account.name!r} is configured twice for {account.provider}"
            )
        accounts[key] = account
        if account.allowed_source_ips is not None:
            networks[key] = parse_networks(account.allowed_source_ips, account.name)
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


def parse_networks(values: Sequence[str], name: str) -> tuple[Network, ...]:
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


@dataclass(frozen=True)
class FileLoader:
    """Read what account settings refer to, relative to the configuration file's folder."""

    base: Path

    def secret(self, value: str) -> str:
        """Resolve ``env:NAME`` and ``file:PATH`` (see ``resolve_secret``)."""
        return resolve_secret(value, self.base)

    def key_text(self, value: str) -> str:
        """Return a key file's content when ``value`` names a file, else ``value`` itself."""
        if "BEGIN" not in value and _is_file(self.base / value):
            return (self.base / value).read_text(encoding="ascii").strip()
        return value


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
    return public_key(FileLoader(base).key_text(value))


def _describe(exc: ValidationError) -> str:
    """Return the first error as ``field.path: message`` (an account's fields without the
    union's provider tag, so that they read as they are written in the file)."""
    first = exc.errors()[0]
    loc = first["loc"]
    if first["type"] == "union_tag_not_found":
        return "provider: Field required"
    if first["type"] == "union_tag_invalid":
        names = [repr(name) for name in PROVIDERS]
        return f"provider: Input should be {', '.join(names[:-1])} or {names[-1]}"
    if loc and loc[0] in PROVIDERS:
        loc = loc[1:]
    return ".".join(str(p) for p in loc) + f": {first['msg']}"
