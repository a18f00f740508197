"""Rows for what the sink could not apply: anomalies read from the topic or detected in a batch,
records it cannot decode (``undecodable_record``) and records the database refused
(``unapplicable``). Each keeps the record's ``topic/partition/offset`` in ``source``."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import (
    Connection,
)

from sinks.batch import Record, anomaly_row
from sinks.rows import anomalies
from sinks.sql import insert
from stream.records import (
    UNDECODABLE,
    event_id,
    undecodable_id,
)


def record_anomalies(conn: Connection, rows: dict[str, dict[str, Any]]) -> Counter[str]:
    """Insert anomaly rows once each; return how many were new, by reason."""
    if not rows:
        return Counter()
    stmt = (
        insert(conn, anomalies)
        .on_conflict_do_nothing(index_elements=["anomaly_id"])
        .returning(anomalies.c.reason)
    )
    params = [{"anomaly_id": aid[:64], **row} for aid, row in sorted(rows.items())]
    return Counter(reason for (reason,) in conn.execute(stmt, params).all())


def record_undecodable(conn: Connection, record: Record, error: str) -> None:
    """Keep a record the sink cannot decode as an ``undecodable_record`` anomaly.

    Its id is the stream's for the same record (:func:`stream.records.undecodable_id`), so a
    poison record on ``orders``, which both read, is one row.
    """
    _record_failed(conn, record, UNDECODABLE, error, undecodable_id(record.source))


def record_unapplicable(conn: Connection, record: Record, exc: Exception) -> None:
    """Keep a record the database refused as an anomaly with its source and the error class."""
    error = getattr(exc, "orig", exc)
    aid = event_id("", record.source, "anomaly:unapplicable")
    _record_failed(conn, record, "unapplicable", f"{error.__class__.__name__}: {error}", aid)


def _record_failed(
    conn: Connection, record: Record, reason: str, error: str, anomaly_id: str
) -> None:
    number = (record.key or b"").decode("utf-8", "replace")
    payload = (record.value or b"").decode("utf-8", "replace")
    conn.execute(
        insert(conn, anomalies)
        .values(
            anomaly_id=anomaly_id,
            **anomaly_row(reason, number, error, record.source, payload),
        )
        .on_conflict_do_nothing(index_elements=["anomaly_id"])
    )
