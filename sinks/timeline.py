"""An order's whole story, and recent anomalies, read from the sink's tables.

:func:`order_story` gathers the order row, every notification with the stream's decision, every
event and every anomaly of one ``out_trade_no`` into one list in time order: a notification at
``received_at`` (the gateway's clock, or the reconciler's), an event or an anomaly when the sink
recorded it. ``paynotify orders show`` prints it and the console serves it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select

from sinks.rows import anomalies, notifications, order_events, orders


@dataclass(frozen=True)
class Entry:
    """One line of an order's story: when, what kind of line, a one-line summary, its fields."""

    at: str
    what: str  # "notification", "event" or "anomaly"
    summary: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Story:
    """An order's row (None: no expected order or event recorded) and its lines in time order."""

    out_trade_no: str
    order: dict[str, Any] | None
    entries: list[Entry]

    @property
    def known(self) -> bool:
        """Return whether anything at all is on record for this order number."""
        return self.order is not None or bool(self.entries)

    def as_json(self) -> dict[str, Any]:
        """Return the story as JSON-able data (the console's and ``--json``'s shape)."""
        return {
            "out_trade_no": self.out_trade_no,
            "order": self.order,
            "timeline": [
                {"at": e.at, "what": e.what, "summary": e.summary, **e.fields} for e in self.entries
            ],
        }


def order_story(conn: Connection, out_trade_no: str) -> Story:
    """Return everything on record about one order, in time order."""
    row = conn.execute(select(orders).where(orders.c.out_trade_no == out_trade_no)).first()
    order = _plain(row._mapping) if row is not None else None
    entries = [
        *_notifications(conn, out_trade_no),
        *_events(conn, out_trade_no),
        *(_anomaly_entry(a) for a in _anomalies(conn, out_trade_no)),
    ]
    entries.sort(key=lambda e: _instant(e.at))
    return Story(out_trade_no, order, entries)


def recent_anomalies(
    conn: Connection, since: datetime | None = None, reason: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Return the latest anomalies first, optionally since a time and of one reason."""
    query = select(anomalies).order_by(anomalies.c.recorded_at.desc(), anomalies.c.anomaly_id)
    if since is not None:
        query = query.where(anomalies.c.recorded_at >= since)
    if reason is not None:
        query = query.where(anomalies.c.reason == reason)
    rows = conn.execute(query.limit(limit)).all()
    return [_without_payload(_plain(r._mapping)) for r in rows]


def _notifications(conn: Connection, out_trade_no: str) -> list[Entry]:
    query = select(notifications).where(notifications.c.out_trade_no == out_trade_no)
    entries = []
    for row in conn.execute(query):
        n = _plain(row._mapping)
        amount = n["refund_amount_minor"] if n["kind"] == "refund" else n["amount_minor"]
        summary = (
            f"{n['provider']} {n['kind']} {n['status']} "
            f"{'' if amount is None else amount} {n['currency']} by {n['source']}: {n['decision']}"
        )
        entries.append(Entry(n["received_at"], "notification", summary, n))
    return entries


def _events(conn: Connection, out_trade_no: str) -> list[Entry]:
    query = select(order_events).where(order_events.c.out_trade_no == out_trade_no)
    entries = []
    for row in conn.execute(query):
        e = _plain(row._mapping)
        payload = json.loads(e.pop("payload"))
        summary = f"{e['type']}: status {e['status']} (version {e['version']})"
        entries.append(Entry(e["recorded_at"], "event", summary, {**payload, **e}))
    return entries


def _anomalies(conn: Connection, out_trade_no: str) -> list[dict[str, Any]]:
    query = select(anomalies).where(anomalies.c.out_trade_no == out_trade_no)
    return [_without_payload(_plain(r._mapping)) for r in conn.execute(query)]


def _anomaly_entry(anomaly: dict[str, Any]) -> Entry:
    return Entry(
        anomaly["recorded_at"], "anomaly", f"{anomaly['reason']}: {anomaly['detail']}", anomaly
    )


def _without_payload(row: dict[str, Any]) -> dict[str, Any]:
    row.pop("payload", None)  # the full record, with the provider's body: not for listings
    return row


def _plain(mapping: Any) -> dict[str, Any]:
    """Return a row as a dict of JSON-able values (times as ISO-8601 UTC text)."""
    return {key: _text_time(value) for key, value in dict(mapping).items()}


def _text_time(value: Any) -> Any:
    if not isinstance(value, datetime):
        return value
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)  # SQLite: UTC
    return aware.astimezone(UTC).isoformat(timespec="milliseconds")


def _instant(text: str | None) -> datetime:
    try:
        at = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
