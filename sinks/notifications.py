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

# A decision record's fields are the table's columns, but for the times the database stamps.
COLUMNS = tuple(
    c.name for c in notifications.columns if c.name not in ("recorded_at", "decided_at")
)


def record_decisions(
    conn: Connection, decisions: Mapping[tuple[str, str], NotificationDecision]
) -> int:
    """Insert or update one row per decided notification; return how many were written."""
    if not decisions:
        return 0
    rows = [{name: getattr(d, name) for name in COLUMNS} for _key, d in sorted(decisions.items())]
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
