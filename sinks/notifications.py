"""The ``notifications`` table: every verified notification once, with the stream's decision.

The stream decides a notification once when it arrives and again when a notification that
waited is applied (or times out); :func:`record_decisions` keeps one row per (account,
notify_id) and lets a decision replace the row's only when its order version is not lower, so
redeliveries and a replay after a crash leave the row at the stream's latest word.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Connection, func

from sinks.rows import notifications
from sinks.sql import insert_many
from stream.records import NotificationDecision


def record_decisions(
    conn: Connection, decisions: Mapping[tuple[str, str], NotificationDecision]
) -> int:
    """Insert or update one row per decided notification; return how many were written."""
    if not decisions:
        return 0
    rows = [
        {
            "account": d.account,
            "notify_id": d.notify_id,
            "out_trade_no": d.out_trade_no,
            "provider": d.provider,
            "kind": d.kind,
            "status": d.status,
            "amount_minor": d.amount_minor,
            "currency": d.currency,
            "provider_trade_no": d.provider_trade_no,
            "refund_id": d.refund_id,
            "refund_amount_minor": d.refund_amount_minor,
            "refund_total_minor": d.refund_total_minor,
            "occurred_at": d.occurred_at,
            "received_at": d.received_at,
            "source": d.source,
            "decision": d.decision,
            "version": d.version,
        }
        for _key, d in sorted(decisions.items())
    ]
    stmt, params = insert_many(conn, notifications, rows)
    stmt = stmt.on_conflict_do_update(
        index_elements=["account", "notify_id"],
        set_={
            "decision": stmt.excluded.decision,
            "version": stmt.excluded.version,
            "decided_at": func.now(),
        },
        where=notifications.c.version <= stmt.excluded.version,
    )
    conn.execute(stmt, params)
    return len(rows)
