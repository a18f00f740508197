"""The console's settings: the ``[console]`` section and the sink's ``[database] url``.

```toml
[console]
listen = "127.0.0.1:8001"
token = "env:PAYNOTIFY_CONSOLE_TOKEN"   # or "file:secrets/console-token", or the value itself
```

The token is resolved like the gateway's account secrets (``gateway.settings.resolve_secret``)
and must be at least :data:`MIN_TOKEN_CHARS` characters; no message quotes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from gateway.config import read_toml
from gateway.errors import ConfigError
from gateway.settings import resolve_secret
from paynotify.errors import ConsoleConfigError
from sinks.settings import load_sink_settings

MIN_TOKEN_CHARS = 24
DEFAULT_LISTEN = "127.0.0.1:8001"


class _ConsoleSection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    listen: str = DEFAULT_LISTEN
    token: str | None = None


@dataclass(frozen=True)
class ConsoleSettings:
    """Where the console listens, the bearer token it asks for, and the database it reads."""

    host: str
    port: int
    token: SecretStr
    database_url: str = field(repr=False)  # may hold a password


def has_console(doc: dict[str, Any]) -> bool:
    """Return whether a parsed configuration file has a ``[console]`` section."""
    return isinstance(doc.get("console"), dict)


def load_console_settings(path: Path) -> ConsoleSettings:
    """Build the console's settings from the configuration file.

    Raises:
        ConsoleConfigError: no ``[console]`` section, an unknown key, a bad ``listen``, or a
            token that is missing, unresolvable or shorter than ``MIN_TOKEN_CHARS``.
        SinkConfigError: the ``[database] url`` is invalid.
    """
    try:
        doc = read_toml(path)
    except ConfigError as exc:
        raise ConsoleConfigError(str(exc)) from None
    if not has_console(doc):
        raise ConsoleConfigError(f"{path}: no [console] section")
    try:
        section = _ConsoleSection(**doc["console"])
    except ValidationError as exc:
        where = ".".join(str(p) for p in exc.errors()[0]["loc"])
        raise ConsoleConfigError(f"[console] {where}: {exc.errors()[0]['msg']}") from None
    host, port = parse_listen(section.listen)
    return ConsoleSettings(
        host=host,
        port=port,
        token=_token(section.token, path.parent),
        database_url=load_sink_settings(path).database_url,
    )


def parse_listen(listen: str) -> tuple[str, int]:
    """Split ``host:port``.

    Raises:
        ConsoleConfigError: the value is not host:port with a port from 1 to 65535.
    """
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConsoleConfigError(f"[console] listen must be host:port, got {listen!r}")
    return host.strip("[]"), int(port)


def _token(value: str | None, base: Path) -> SecretStr:
    if not value:
        raise ConsoleConfigError("[console] token is missing: the console never runs without one")
    try:
        token = resolve_secret(value, base)
    except ConfigError as exc:
        raise ConsoleConfigError(f"[console] token: {exc}") from None
    if len(token) < MIN_TOKEN_CHARS:
        raise ConsoleConfigError(
            f"[console] token is too short: use at least {MIN_TOKEN_CHARS} random characters"
        )
    return SecretStr(token)
