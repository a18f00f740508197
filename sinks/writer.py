"""Idempotent writes: any number of redeliveries, in any order across topics, give one database.

- ``order_events`` has one row per event id, ever (``ON CONFLICT DO NOTHING``).
- An order becomes ``paid`` only from ``created`` (or is inserted paid if its expected order has
  not been written yet); a later status never moves back, and an expected order arriving after
  the payment changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, Insert, Table, func
from sqlalchemy.dialects import postgresql, sqlite

from sinks.rows import anomalies, order_events, orders
from stream.records import (
    ANOMALIES_TOPIC,
    ORDER_PAID_TOPIC,
    ORDERS_TOPIC,
    Anomaly,
    ExpectedOrder,
    OrderPaid,
    RecordError,
)

SINK_TOPICS = (ORDERS_TOPIC, ORDER_PAID_TOPIC, ANOMALIES_TOPIC)


@dataclass(frozen=True, slots=True)
class Record:
    """One Kafka record as the sink sees it: its topic without prefix, value, and where it was."""

    topic: str
    value: bytes
    source: str


@dataclass(slots=True)
class BatchResult:
    events_new: int = 0
    events_seen: int = 0
    orders: int = 0
    anomalies: int = 0
    undecodable: int = 0


def write_batch(conn: Connection, records: Iterable[Record]) -> BatchResult:
    """Write a batch of records in the caller's transaction."""
    result = BatchResult()
    for record in records:
        try:
            _write_one(conn, record, result)
        except RecordError as exc:
            result.undecodable += 1
            record_undecodable(conn, record, str(exc))
    return result


def _write_one(conn: Connection, record: Record, result: BatchResult) -> None:
    if record.topic == ORDERS_TOPIC:
        upsert_order(conn, ExpectedOrder.from_bytes(record.value))
        result.orders += 1
    elif record.topic == ORDER_PAID_TOPIC:
        if record_paid(conn, OrderPaid.from_bytes(record.value)):
            result.events_new += 1
        else:
            result.events_seen += 1
    elif record.topic == ANOMALIES_TOPIC:
        record_anomaly(conn, Anomaly.from_bytes(record.value), record.source)
        result.anomalies += 1
    else:
        raise RecordError(f"the sink does not read topic {record.topic}")


def _insert(conn: Connection, table: Table) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def upsert_order(conn: Connection, order: ExpectedOrder) -> None:
    """Record an expected order as ``created`` unless the order is already known."""
    stmt: Insert = _insert(conn, orders).values(
        out_trade_no=order.out_trade_no,
        account=order.account,
        amount_minor=order.amount_minor,
        currency=order.currency,
        status="created",
        created_at=order.created_at,
    )
    conn.execute(stmt.on_conflict_do_nothing(index_elements=["out_trade_no"]))  # type: ignore[attr-defined]


def record_paid(conn: Connection, event: OrderPaid) -> bool:
    """Record an ``order.paid`` event once and mark its order paid; return whether it was new."""
    inserted = conn.execute(
        _insert(conn, order_events)
        .values(
            event_id=event.event_id,
            out_trade_no=event.out_trade_no,
            type=event.type,
            payload=json.dumps(asdict(event), ensure_ascii=False),
        )
        .on_conflict_do_nothing(index_elements=["event_id"])
    ).rowcount
    paid = {
        "status": "paid",
        "paid_at": event.paid_at,
        "provider": event.provider,
        "provider_trade_no": event.provider_trade_no,
        "paid_event_id": event.event_id,
    }
    stmt = _insert(conn, orders).values(
        out_trade_no=event.out_trade_no,
        account=event.account,
        amount_minor=event.amount_minor,
        currency=event.currency,
        **paid,
    )
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["out_trade_no"],
            set_={**paid, "updated_at": func.now()},
            where=orders.c.status == "created",
        )
    )
    return bool(inserted)


def record_anomaly(conn: Connection, anomaly: Anomaly, source: str) -> None:
    """Record an anomaly once."""
    conn.execute(
        _insert(conn, anomalies)
        .values(
            anomaly_id=anomaly.anomaly_id,
            out_trade_no=anomaly.out_trade_no,
            reason=anomaly.reason,
            detail=anomaly.detail,
            source=source,
            payload=json.dumps(asdict(anomaly), ensure_ascii=False),
        )
        .on_conflict_do_nothing(index_elements=["anomaly_id"])
    )


def record_undecodable(conn: Connection, record: Record, error: str) -> None:
    """Keep a record the sink cannot decode as an anomaly, so that it is never dropped silently."""
    conn.execute(
        _insert(conn, anomalies)
        .values(
            anomaly_id=f"undecodable:{record.source}"[:64],
            out_trade_no="",
            reason="undecodable",
            detail=error[:500],
            source=record.source,
            payload=record.value.decode("utf-8", "replace")[:4000],
        )
        .on_conflict_do_nothing(index_elements=["anomaly_id"])
    )
