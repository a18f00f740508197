"""The Quix worker's Prometheus metrics, in a registry of its own, on ``[stream] metrics_listen``.

Records consumed per input topic and produced per output topic (logical names), errors by where
they came from (the consumer, the producer, the step: each stops the worker, which its
supervisor restarts; ``process_start_time_seconds`` changes then), partitions assigned, and the
consumer lag per partition from librdkafka's statistics (the ones :class:`ReadyLog` already
receives twice a second). The faust engine exports none of these.
"""

from __future__ import annotations

import json
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector, start_http_server


class StreamMetrics:
    """Records in and out, errors, assignment and lag of one stream worker."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix  # the topics' prefix, taken off for the label
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)  # process_start_time_seconds: a restarted worker
        self.consumed = Counter(
            "paynotify_stream_records", "Input records the worker processed", ["topic"], registry=r
        )
        self.produced = Counter(
            "paynotify_stream_outputs",
            "Records the worker produced (events, anomalies, decisions, due times)",
            ["topic"],
            registry=r,
        )
        self.errors = Counter(
            "paynotify_stream_errors",
            "Errors that stopped the worker for a restart (consumer, producer, step)",
            ["where"],
            registry=r,
        )
        self.assigned = Gauge(
            "paynotify_stream_assigned_partitions", "Partitions this worker holds", registry=r
        )
        self.lag = Gauge(
            "paynotify_stream_consumer_lag",
            "Records between the worker's position and the partition's end",
            ["topic", "partition"],
            registry=r,
        )
        self._consumed: dict[str, Counter] = {}
        self._produced: dict[str, Counter] = {}
        self._server: WSGIServer | None = None

    def count(self, topic: str, outputs: list[str]) -> None:
        """Count one input record of ``topic`` and the records it produced (their topics)."""
        child = self._consumed.get(topic)
        if child is None:
            child = self._consumed[topic] = self.consumed.labels(self._logical(topic))
        child.inc()
        for name in outputs:
            out = self._produced.get(name)
            if out is None:
                out = self._produced[name] = self.produced.labels(self._logical(name))
            out.inc()

    def error(self, where: str) -> None:
        """Count an error that stops the worker."""
        self.errors.labels(where).inc()

    def statistics(self, stats: str) -> None:
        """Read librdkafka's statistics document: partitions held and each one's lag."""
        document = json.loads(stats)
        self.assigned.set(document.get("cgrp", {}).get("assignment_size", 0))
        self.lag.clear()
        for topic, detail in document.get("topics", {}).items():
            for partition, numbers in detail.get("partitions", {}).items():
                lag = partition_lag(numbers)
                if partition != "-1" and lag is not None:
                    self.lag.labels(self._logical(topic), partition).set(lag)

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

    def _logical(self, topic: str) -> str:
        return topic.removeprefix(self.prefix) if self.prefix else topic


def partition_lag(numbers: dict[str, int]) -> int | None:
    """Return a partition's lag from its statistics, or None when unknown (not assigned).

    librdkafka's own ``consumer_lag`` counts from the offset the consumer committed, which a
    transactional worker never does itself (its offsets go with the transaction): so the lag is
    from the worker's position (``app_offset``, the next record it will process) to the end a
    ``read_committed`` reader sees (``ls_offset``), or from the committed offset when the worker
    has processed nothing of the partition yet.
    """
    end = numbers.get("ls_offset", -1)
    position = numbers.get("app_offset", -1)
    if position < 0:
        position = numbers.get("committed_offset", -1)
    if end < 0 or position < 0:
        return None
    return max(0, end - position)


def consumer_group_stats(stats: str) -> dict[str, Any]:
    """Return the ``cgrp`` object of a statistics document (empty if it has none).

    Only that object is decoded: the document lists every partition, twice a second.
    """
    start = stats.find('"cgrp":')
    if start < 0:
        return {}
    group, _end = json.JSONDecoder().raw_decode(stats, stats.index("{", start))
    return group if isinstance(group, dict) else {}
