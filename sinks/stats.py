"""What the console's overview shows: orders by status and the last hour's activity.

:func:`order_stats` counts the ``orders`` rows by status and, over a window that ends now, the
notifications the sink first recorded, the ``order.paid`` events it recorded and the anomalies
it recorded. Each window count uses the table's ``recorded_at`` (the database's clock when the
sink wrote the row), so the three rates are measured on the same clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Column, ColumnElement, Connection, Table, func, select

from sinks.rows import anomalies, notifications, order_events, orders

PAID_EVENT = "order.paid"


@dataclass(frozen=True)
class Stats:
    """Orders by status (every status with at least one order) and the window's counts."""

    by_status: dict[str, int]
    since: datetime
    window_seconds: int
    notifications_received: int
    orders_paid: int
    anomalies: int


def order_stats(conn: Connection, now: datetime, window: timedelta = timedelta(hours=1)) -> Stats:
    """Return the counts of orders by status and of the window that ends at ``now``."""
    since = now.astimezone(UTC) - window
    by_status = {
        str(status): int(count)
        for status, count in conn.execute(
            select(orders.c.status, func.count())
            .group_by(orders.c.status)
            .order_by(orders.c.status)
        )
    }
    paid = _recorded_since(conn, order_events, since, order_events.c.type == PAID_EVENT)
    return Stats(
        by_status=by_status,
        since=since,
        window_seconds=int(window.total_seconds()),
        notifications_received=_recorded_since(conn, notifications, since),
        orders_paid=paid,
        anomalies=_recorded_since(conn, anomalies, since),
    )


def _recorded_since(
    conn: Connection, table: Table, since: datetime, *where: ColumnElement[bool]
) -> int:
    recorded_at: Column[datetime] = table.c.recorded_at
    query = select(func.count()).select_from(table).where(recorded_at >= since, *where)
    return int(conn.scalar(query) or 0)
