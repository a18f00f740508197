"""The sink's anomalies by reason: counted once per new row, from the batch to the metric."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from sinks.batch import BatchResult
from sinks.metrics import SinkMetrics
from sinks.schema import create_db_engine, upgrade
from sinks.writer import write_batch
from stream.records import ANOMALIES_TOPIC, ORDER_PAID_TOPIC, Anomaly
from tests.support.writer_cases import keyed

REASONS = "paynotify_sink_anomalies_recorded_total"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'sink.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


def test_write_batch_anomalies_counts_new_rows_by_reason_once(engine: Engine) -> None:
    batch = [
        keyed(ANOMALIES_TOPIC, Anomaly("a-1", "o-1", "order_missing", "", "shop").to_bytes()),
        keyed(ANOMALIES_TOPIC, Anomaly("a-2", "o-2", "order_missing", "", "shop").to_bytes()),
        keyed(ANOMALIES_TOPIC, Anomaly("a-3", "o-3", "amount_mismatch", "", "shop").to_bytes()),
    ]
    with engine.begin() as conn:
        first = write_batch(conn, batch)
    with engine.begin() as conn:
        again = write_batch(conn, batch)
    assert first.reasons == Counter(order_missing=2, amount_mismatch=1)
    assert first.anomalies == 3
    assert (again.reasons, again.anomalies) == (Counter(), 0)


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


def test_write_batch_undecodable_record_is_not_a_reason_of_the_batch(engine: Engine) -> None:
    with engine.begin() as conn:
        result = write_batch(conn, [keyed(ORDER_PAID_TOPIC, b"{not json", "order-paid/0/1")])
    assert (result.undecodable_record, result.reasons) == (1, Counter())
