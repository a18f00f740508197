"""Poison records on every topic the sink reads: each becomes one ``undecodable_record`` row with
its ``topic/partition/offset``, the rest of the batch is written, nothing raises; a failure of
the database itself is transient (raised, to be retried), any other failure a record's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, ProgrammingError

from sinks.rows import anomalies, orders
from sinks.schema import create_db_engine, upgrade
from sinks.writer import SINK_TOPICS, Record, is_transient, write_records
from stream.processing import OrderProcessor
from stream.records import (
    ANOMALIES_TOPIC,
    DECISIONS_TOPIC,
    ORDER_CLOSED_TOPIC,
    ORDER_PAID_TOPIC,
    ORDER_REFUNDED_TOPIC,
    ORDERS_TOPIC,
    Anomaly,
    RecordError,
    undecodable_id,
)
from tests.support import writer_cases
from tests.support.poison import poisons

GOOD = {
    ORDERS_TOPIC: writer_cases.expected(1),
    ORDER_PAID_TOPIC: writer_cases.paid(1),
    ORDER_REFUNDED_TOPIC: writer_cases.refunded(1, "r1", 40, 40, 2),
    ORDER_CLOSED_TOPIC: writer_cases.closed(1, 3),
    ANOMALIES_TOPIC: Anomaly("a-1", "o-1", "amount_mismatch", "paid 1, expected 101", "shop"),
    DECISIONS_TOPIC: writer_cases.decided(1, "n-1", "paid", 1),
}


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'sink.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


def test_write_records_poison_on_every_sink_topic_one_undecodable_row_each(
    engine: Engine,
) -> None:
    assert set(GOOD) == set(SINK_TOPICS)
    batch: list[Record] = []
    for topic, good in GOOD.items():
        batch.append(writer_cases.keyed(topic, good.to_bytes(), f"{topic}/0/0"))
        for i, p in enumerate(poisons(topic, json.loads(good.to_bytes())), start=1):
            batch.append(Record(topic, p.value, f"{topic}/1/{i}", p.key))
    poison = {r.source for r in batch if not r.source.endswith("/0/0")}
    result = write_records(engine, batch)
    assert (result.records, result.undecodable_record, result.unapplicable) == (
        len(batch),
        len(poison),
        0,
    )
    with engine.connect() as conn:
        rows = conn.execute(select(anomalies.c.anomaly_id, anomalies.c.reason, anomalies.c.source))
        failed = {r.source: (r.reason, r.anomaly_id) for r in rows if r.source}
        row = conn.execute(select(orders).where(orders.c.out_trade_no == "o-1")).one()
    assert failed == {s: ("undecodable_record", undecodable_id(s)) for s in poison} | {
        "payment-anomalies/0/0": ("amount_mismatch", "a-1")
    }
    # the genuine order, payment, refund and close all applied
    assert (row.status, row.refunded_minor, row.closed_event_id is not None) == ("closed", 40, True)


def test_write_records_stream_report_of_an_orders_poison_is_the_same_row(engine: Engine) -> None:
    [p] = [p for p in poisons(ORDERS_TOPIC, json.loads(GOOD[ORDERS_TOPIC].to_bytes()))][:1]
    report = OrderProcessor(3600.0, 86400.0).undecodable("orders", 2, 7, p.key, RecordError("x"))
    batch = [
        Record(ORDERS_TOPIC, p.value, "orders/2/7", p.key),  # the sink reads it itself
        Record(ANOMALIES_TOPIC, report.value, "payment-anomalies/5/1", report.key),
    ]
    write_records(engine, batch)
    with engine.connect() as conn:
        rows = conn.execute(select(anomalies.c.reason, anomalies.c.source)).all()
    assert [tuple(r) for r in rows] == [("undecodable_record", "orders/2/7")]


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (OperationalError("x", {}, Exception("server closed the connection")), True),
        (DataError("x", {}, Exception("bigint out of range")), False),
        (IntegrityError("x", {}, Exception("check constraint")), False),
        (ProgrammingError("x", {}, Exception("cannot adapt type 'dict'")), False),
        (ValueError("a record's own fault"), False),
    ],
)
def test_is_transient_outage_vs_record_fault(exc: Exception, transient: bool) -> None:
    assert is_transient(exc) is transient


def test_is_transient_invalidated_connection_is_an_outage() -> None:
    exc = ProgrammingError("x", {}, Exception("gone"), connection_invalidated=True)
    assert is_transient(exc)
