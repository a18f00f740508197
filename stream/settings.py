"""The stream worker's settings: ``[kafka]`` and the optional ``[stream]`` section of the file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config import KafkaSettings, kafka_settings, read_toml
from gateway.errors import ConfigError
from stream.errors import StreamConfigError

ENGINES = ("quix", "faust")  # stream/engines/quix.py (default), stream/engines/faust.py
DEFAULT_ENGINE = ENGINES[0]
DEFAULT_COMMIT_INTERVAL_S = 0.1
# How long the group waits for a member's heartbeat before moving its partitions. Both engines
# send heartbeats from a thread or task of their own, so a busy step does not miss them. At 60 s
# (the old default) a worker restarted after a broker kill -9 waited up to 70 s in JoinGroup for
# its own dead predecessor (docs/reliability.md, "A broker killed during the first assignment").
DEFAULT_SESSION_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class StreamSettings:
    """What a stream worker needs to know: where Kafka is, which engine runs, and its horizons."""

    bootstrap_servers: str
    partitions: int
    topic_prefix: str
    app_id: str
    data_dir: Path
    processing_guarantee: str
    commit_interval_s: float
    standby_replicas: int = 1
    pending_timeout_s: float = 3600.0
    retention_s: float = 30 * 86400.0
    tick_interval_s: float = 10.0
    session_timeout_s: float = DEFAULT_SESSION_TIMEOUT_S
    engine: str = DEFAULT_ENGINE
    metrics_listen: str | None = None  # "host:port" of the worker's Prometheus /metrics

    def topic(self, name: str) -> str:
        """Return a topic's full name under the configured prefix."""
        return self.topic_prefix + name

    @property
    def kafka(self) -> KafkaSettings:
        """Return the shared ``[kafka]`` settings this worker was built from."""
        return KafkaSettings(self.bootstrap_servers, self.partitions, self.topic_prefix)


def load_stream_settings(path: Path) -> StreamSettings:
    """Build the stream settings from a configuration file.

    Raises:
        StreamConfigError: a value has the wrong type, or an unknown engine or guarantee is asked
            for.
    """
    try:
        doc = read_toml(path)
        kafka = kafka_settings(doc, path)
    except ConfigError as exc:
        raise StreamConfigError(str(exc)) from None
    stream: dict[str, Any] = doc.get("stream", {})
    prefix = kafka.topic_prefix
    guarantee = str(stream.get("processing_guarantee", "exactly_once"))
    if guarantee not in ("at_least_once", "exactly_once"):
        raise StreamConfigError(
            "[stream] processing_guarantee must be at_least_once or exactly_once"
        )
    engine = stream.get("engine", DEFAULT_ENGINE)
    if engine not in ENGINES:
        raise StreamConfigError(
            f"[stream] engine must be one of {', '.join(map(repr, ENGINES))}, not {engine!r}"
        )
    return StreamSettings(
        bootstrap_servers=kafka.bootstrap_servers,
        partitions=kafka.partitions,
        topic_prefix=prefix,
        app_id=str(stream.get("app_id", f"{prefix}paynotify-stream")),
        data_dir=path.parent / str(stream.get("data_dir", "var/stream")),
        processing_guarantee=guarantee,
        commit_interval_s=float(stream.get("commit_interval_seconds", DEFAULT_COMMIT_INTERVAL_S)),
        standby_replicas=int(stream.get("standby_replicas", 1)),
        pending_timeout_s=float(stream.get("pending_timeout_seconds", 3600.0)),
        retention_s=float(stream.get("retention_days", 30)) * 86400.0,
        tick_interval_s=float(stream.get("tick_interval_seconds", 10.0)),
        session_timeout_s=float(stream.get("session_timeout_seconds", DEFAULT_SESSION_TIMEOUT_S)),
        engine=engine,
        metrics_listen=_listen(stream.get("metrics_listen")),
    )


def _listen(value: object) -> str | None:
    if value is None:
        return None
    port = str(value).rpartition(":")[2]
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise StreamConfigError('[stream] metrics_listen must be "host:port"')
    return str(value)
