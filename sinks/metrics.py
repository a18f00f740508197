"""The sink's Prometheus metrics, in a registry of its own, served on ``[sink] metrics_listen``."""

from __future__ import annotations

from collections.abc import Mapping
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from sinks.batch import BatchResult

ROWS = {
    "events_new": "order_events",
    "orders": "orders",
    "anomalies": "anomalies",
    "decisions": "notifications",
}
ANOMALIES = ("anomalies", "undecodable_record", "unapplicable")
FAILED = ANOMALIES[1:]


class SinkMetrics:
    """Rows written, duplicates, anomalies (by kind and reason), batch latency, retries, pause
    state and lag."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.records = Counter(
            "paynotify_sink_records", "Kafka records consumed and written", registry=r
        )
        self.rows = Counter(
            "paynotify_sink_rows_written", "Rows the sink inserted", ["table"], registry=r
        )
        self.duplicates = Counter(
            "paynotify_sink_duplicate_events", "Events already in order_events", registry=r
        )
        self.anomalies = Counter(
            "paynotify_sink_anomalies",
            "Anomaly rows: from the topic or detected (anomalies), undecodable_record, "
            "unapplicable",
            ["kind"],
            registry=r,
        )
        self.reasons = Counter(
            "paynotify_sink_anomalies_recorded",
            "New anomaly rows by reason (order_missing: a payment whose order never came)",
            ["reason"],
            registry=r,
        )
        self.batch_seconds = Histogram(
            "paynotify_sink_batch_seconds",
            "Time to write one batch and commit its offsets",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.retries = Counter(
            "paynotify_sink_retries", "Batch writes the database refused and retried", registry=r
        )
        self.paused = Gauge(
            "paynotify_sink_paused", "1 while partitions are paused for the database", registry=r
        )
        self.lag = Gauge(
            "paynotify_sink_consumer_lag",
            "Records between the sink's position and the partition's end",
            ["topic", "partition"],
            registry=r,
        )
        self._server: WSGIServer | None = None

    def count(self, result: BatchResult, seconds: float) -> None:
        """Record one written batch."""
        self.records.inc(result.records)
        for name, table in ROWS.items():
            self.rows.labels(table).inc(getattr(result, name))
        self.duplicates.inc(result.events_seen)
        for kind in ANOMALIES:
            self.anomalies.labels(kind).inc(getattr(result, kind))
        for reason, count in result.reasons.items():
            self.reasons.labels(reason).inc(count)
        for reason in FAILED:  # the rows the sink writes for records it could not apply
            self.reasons.labels(reason).inc(getattr(result, reason))
        self.batch_seconds.observe(seconds)

    def set_lag(self, lags: Mapping[tuple[str, int], int]) -> None:
        """Replace the lag of every assigned partition."""
        self.lag.clear()
        for (topic, partition), lag in lags.items():
            self.lag.labels(topic, str(partition)).set(lag)

    def serve(self, listen: str) -> None:
        """Serve ``/metrics`` on ``host:port`` in a background thread."""
        host, _, port = listen.rpartition(":")
        self._server, _thread = start_http_server(int(port), host or "0.0.0.0", self.registry)  # noqa: S104

    def close(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
