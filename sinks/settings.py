"""The sink's settings: ``[database]``, ``[kafka]`` and the optional ``[sink]`` section."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from gateway.config import KafkaSettings, kafka_settings, read_toml
from gateway.errors import ConfigError
from sinks.errors import SinkConfigError


@dataclass(frozen=True)
class SinkSettings:
    database_url: str = field(repr=False)  # holds the password: never in a repr or a log line
    bootstrap_servers: str
    topic_prefix: str
    group_id: str
    batch_size: int
    flush_interval_s: float
    metrics_listen: str | None = None
    max_backoff_s: float = 30.0
    session_timeout_ms: int = 10000
    partitions: int = 8

    def topic(self, name: str) -> str:
        """Return a topic's full name under the configured prefix."""
        return self.topic_prefix + name

    @property
    def kafka(self) -> KafkaSettings:
        """Return the shared ``[kafka]`` settings this sink was built from."""
        return KafkaSettings(self.bootstrap_servers, self.partitions, self.topic_prefix)


def load_sink_settings(path: Path) -> SinkSettings:
    """Build the sink settings from a configuration file.

    Raises:
        SinkConfigError: the database URL or a value is invalid.
    """
    try:
        doc = read_toml(path)
        kafka = kafka_settings(doc, path)
    except ConfigError as exc:
        raise SinkConfigError(str(exc)) from None
    sink: dict[str, Any] = doc.get("sink", {})
    url = resolve_url(
        str(doc.get("database", {}).get("url", "sqlite:///var/paynotify.db")), path.parent
    )
    prefix = kafka.topic_prefix
    return SinkSettings(
        database_url=url,
        bootstrap_servers=kafka.bootstrap_servers,
        topic_prefix=prefix,
        partitions=kafka.partitions,
        group_id=str(sink.get("group_id", f"{prefix}paynotify-sink")),
        batch_size=_positive(sink, "batch_size", 500, int),
        flush_interval_s=_positive(sink, "flush_interval_seconds", 0.2, float),
        metrics_listen=_listen(sink.get("metrics_listen")),
        max_backoff_s=_positive(sink, "max_backoff_seconds", 30.0, float),
        session_timeout_ms=_positive(sink, "session_timeout_ms", 10000, int),
    )


def _positive(section: dict[str, Any], name: str, default: float, kind: type[Any]) -> Any:
    try:
        value = kind(section.get(name, default))
    except (TypeError, ValueError):
        value = 0
    if value <= 0:
        raise SinkConfigError(f"[sink] {name} must be a positive number")
    return value


def _listen(value: object) -> str | None:
    if value is None:
        return None
    port = str(value).rpartition(":")[2]
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise SinkConfigError('[sink] metrics_listen must be "host:port"')
    return str(value)


def resolve_url(value: str, base: Path) -> str:
    """Resolve ``env:NAME`` and make a relative SQLite path relative to the config's folder.

    Raises:
        SinkConfigError: the variable is unset or the URL cannot be parsed.
    """
    if value.startswith("env:"):
        if value[4:] not in os.environ:
            raise SinkConfigError(f"environment variable {value[4:]} is not set")
        value = os.environ[value[4:]]
    try:
        url = make_url(value)
    except (ArgumentError, ValueError):  # their messages quote the URL, password included
        raise SinkConfigError("[database] url is not a database URL") from None
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        db = Path(url.database)
        if not db.is_absolute():
            url = url.set(database=str((base / db).resolve()))
    return url.render_as_string(hide_password=False)
