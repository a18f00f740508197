"""The gateway's Prometheus metrics: built once per process, summed over the workers when there
are several (prometheus_client's multiprocess mode), released when the process stops."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from gateway.settings import METRICS_DIR_ENV, GatewaySettings


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    requests: Counter
    failures: Counter
    publish_seconds: Histogram
    in_flight: Gauge
    multiprocess_dir: str | None = None
    # The accepted counter of each (provider, account): ``Counter.labels`` validates and looks up
    # its labels under a lock on every call, a tenth of what is left of a request's bookkeeping.
    _accepted: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)

    def count_accepted(self, provider: str, account: str) -> None:
        """Count one accepted request of a configured account."""
        child = self._accepted.get((provider, account))
        if child is None:
            child = self._accepted[(provider, account)] = self.requests.labels(
                provider, account, "accepted"
            )
        child.inc()


def build_metrics(multiprocess_dir: str | None = None) -> Metrics:
    """Create the gateway's Prometheus metrics in a registry of their own.

    With ``multiprocess_dir`` (prometheus_client's multiprocess mode, where every worker process
    writes its values to files in that folder) the metrics themselves are registered nowhere, and
    the registry is one that reads all the workers' files: a scrape of any worker sums them all.
    """
    registry = CollectorRegistry()
    own: CollectorRegistry | None = registry
    if multiprocess_dir:
        MultiProcessCollector(registry, path=multiprocess_dir)  # type: ignore[no-untyped-call]
        own = None
    return Metrics(
        registry=registry,
        requests=Counter(
            "paynotify_gateway_requests",
            "Notifications by outcome",
            ["provider", "account", "outcome"],
            registry=own,
        ),
        failures=Counter(
            "paynotify_gateway_verification_failures",
            "Requests not proven genuine, by reason",
            ["provider", "account", "reason"],
            registry=own,
        ),
        in_flight=Gauge(
            "paynotify_gateway_in_flight",
            "Notification requests being read, verified or published",
            registry=own,
            multiprocess_mode="livesum",  # the sum over the workers alive; ignored in one process
        ),
        publish_seconds=Histogram(
            "paynotify_gateway_publish_seconds",
            "Time until the broker acknowledged",
            registry=own,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
        ),
        multiprocess_dir=multiprocess_dir,
    )


def shared_metrics_dir(settings: GatewaySettings) -> str | None:
    """Return the folder of prometheus_client's multiprocess mode, if this gateway uses it.

    It does with ``[gateway] workers`` above 1 and the folder in ``PROMETHEUS_MULTIPROC_DIR``
    (``paynotify gateway`` sets it before it starts the workers, which is also when
    prometheus_client, imported afresh in each worker, chooses its file-backed values). With one
    worker the metrics stay in the process, whatever the environment says.
    """
    if settings.workers == 1:
        return None
    return os.environ.get(METRICS_DIR_ENV) or None


def release_metrics(metrics: Metrics) -> None:
    """Take this process's in-flight gauge out of the sum when it stops (multiprocess mode only).

    Its counters and histogram stay in the folder: totals must not go down when a worker exits.
    """
    if metrics.multiprocess_dir:
        mark_process_dead(os.getpid(), metrics.multiprocess_dir)  # type: ignore[no-untyped-call]
