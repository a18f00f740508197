"""The sink's anomalies by reason, from a batch's counts to the metric (the writer's counts by
reason: ``writer_cases.check_undecodable_and_anomalies_are_kept_once``)."""

from __future__ import annotations

from collections import Counter

from sinks.batch import BatchResult
from sinks.metrics import SinkMetrics

REASONS = "paynotify_sink_anomalies_recorded_total"


def test_sink_metrics_count_anomalies_by_reason_adds_up_batches() -> None:
    metrics = SinkMetrics()
    first = BatchResult(anomalies=2, reasons=Counter(order_missing=2), undecodable_record=1)
    metrics.count(first, 0.01)
    metrics.count(BatchResult(anomalies=1, reasons=Counter(order_missing=1)), 0.01)
    sample = metrics.registry.get_sample_value
    assert sample(REASONS, {"reason": "order_missing"}) == 3
    assert sample(REASONS, {"reason": "undecodable_record"}) == 1
    assert sample(REASONS, {"reason": "unapplicable"}) == 0


def test_batch_result_add_sums_reasons() -> None:
    total = BatchResult(reasons=Counter(order_missing=1))
    total.add(BatchResult(reasons=Counter(order_missing=1, amount_mismatch=1)))
    assert total.reasons == Counter(order_missing=2, amount_mismatch=1)
