"""The configuration file: where it is, how it is read, and the ``[kafka]`` section every
service shares. Each service builds its own settings from the same read file
(``gateway.settings``, ``stream.settings``, ``sinks.settings``) and reads only its own sections:
the stream and the sink never load the gateway's accounts or secrets.

Relative paths in the file are relative to the file's own folder. The file's path comes from
``--config`` or the ``PAYNOTIFY_CONFIG`` environment variable.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.errors import ConfigError

CONFIG_ENV = "PAYNOTIFY_CONFIG"


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
        ConfigError: the file cannot be read or is not valid TOML.
    """
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.__class__.__name__})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


class _KafkaSection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    bootstrap_servers: str = "127.0.0.1:9092"
    partitions: int = Field(default=8, ge=1, le=1024)
    topic_prefix: str = ""


@dataclass(frozen=True)
class KafkaSettings:
    """Where the broker is, how many partitions every topic has, and the topics' prefix."""

    bootstrap_servers: str
    partitions: int
    topic_prefix: str

    def topic(self, name: str) -> str:
        """Return a topic's full name under the configured prefix."""
        return self.topic_prefix + name


def kafka_settings(doc: dict[str, Any], path: Path) -> KafkaSettings:
    """Read the ``[kafka]`` section of a parsed configuration file.

    Raises:
        ConfigError: an unknown key, or a value of the wrong type or out of range.
    """
    try:
        section = _KafkaSection(**doc.get("kafka", {}))
    except (ValidationError, TypeError) as exc:
        raise ConfigError(f"{path}: [kafka] {_first_error(exc)}") from None
    return KafkaSettings(section.bootstrap_servers, section.partitions, section.topic_prefix)


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError) and exc.errors():
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        return f"{where}: {error['msg']}" if where else str(error["msg"])
    return "is not a table"
