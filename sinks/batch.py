"""A batch as the sink decodes it: records, what each topic holds, and the counts of a batch.

A record is decoded by its topic's contract (``stream.records``) and checked against its key;
events, expected orders and anomalies are kept once per id (redeliveries inside one batch).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from stream.records import (
    ANOMALIES_TOPIC,
    DECISIONS_TOPIC,
    ORDER_CLOSED_TOPIC,
    ORDER_PAID_TOPIC,
    ORDER_REFUNDED_TOPIC,
    ORDERS_TOPIC,
    Anomaly,
    ExpectedOrder,
    JsonRecord,
    NotificationDecision,
    OrderClosed,
    OrderPaid,
    OrderRefunded,
    RecordError,
    event_id,
)

DECODERS: dict[str, type[JsonRecord]] = {
    ORDERS_TOPIC: ExpectedOrder,
    ORDER_PAID_TOPIC: OrderPaid,
    ORDER_REFUNDED_TOPIC: OrderRefunded,
    ORDER_CLOSED_TOPIC: OrderClosed,
    ANOMALIES_TOPIC: Anomaly,
    DECISIONS_TOPIC: NotificationDecision,
}


SINK_TOPICS = tuple(DECODERS)


Event = OrderPaid | OrderRefunded | OrderClosed


@dataclass(frozen=True, slots=True)
class Record:
    """One Kafka record as the sink sees it: its topic without prefix, value, where it was
    (``topic/partition/offset``, the topic as consumed) and its key."""

    topic: str
    value: bytes | None
    source: str
    key: bytes | None


@dataclass(slots=True)
class BatchResult:
    """What one batch did; ``add`` sums them up. ``reasons`` splits ``anomalies`` by reason."""

    records: int = 0
    events_new: int = 0
    events_seen: int = 0
    orders: int = 0
    anomalies: int = 0
    undecodable_record: int = 0
    unapplicable: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    decisions: int = 0  # notification decisions written (the newest per notification)

    def add(self, other: BatchResult) -> None:
        """Add another batch's counts to these."""
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class Batch:
    """A decoded batch: one entry per order and per event id, anomaly rows by id."""

    orders: dict[str, ExpectedOrder] = field(default_factory=dict)
    events: dict[str, tuple[Event, str]] = field(default_factory=dict)
    raw: dict[str, bytes] = field(default_factory=dict)
    anomalies: dict[str, dict[str, Any]] = field(default_factory=dict)
    event_records: int = 0
    decisions: dict[tuple[str, str], NotificationDecision] = field(default_factory=dict)

    def anomaly(
        self,
        reason: str,
        out_trade_no: str,
        detail: str,
        source: str,
        *,
        account: str,
        key: str | None = None,
        payload: str = "",
    ) -> None:
        """Keep a detected anomaly; its id is derived from the reason and the fact (or order)."""
        self.anomalies.setdefault(
            event_id(account, key or out_trade_no, f"anomaly:{reason}"),
            anomaly_row(reason, out_trade_no, detail, source, payload),
        )


def anomaly_row(
    reason: str, out_trade_no: str, detail: str, source: str, payload: str
) -> dict[str, Any]:
    return {
        "out_trade_no": clip(out_trade_no, 128),
        "reason": reason,
        "detail": clip(detail, 500),
        "source": clip(source, 256),
        "payload": clip(payload, 4000),
    }


def clip(value: str, limit: int) -> str:
    """Cut a value to its column; PostgreSQL text cannot hold NUL characters."""
    return value.replace("\x00", "\ufffd")[:limit]


def decode_into(batch: Batch, record: Record, result: BatchResult) -> None:
    decoder = DECODERS.get(record.topic)
    if decoder is None:
        raise RecordError(f"the sink does not read topic {record.topic}")
    if record.value is None:
        raise RecordError("the record has no value")
    value = decoder.from_bytes(record.value)
    assert isinstance(
        value,
        ExpectedOrder | Anomaly | OrderPaid | OrderRefunded | OrderClosed | NotificationDecision,
    )
    _check_key(record.key, value.out_trade_no)
    if isinstance(value, NotificationDecision):  # a later decision replaces an earlier one
        known = batch.decisions.get((value.account, value.notify_id))
        if known is None or value.version >= known.version:
            batch.decisions[(value.account, value.notify_id)] = value
    elif isinstance(value, ExpectedOrder):
        batch.orders.setdefault(value.out_trade_no, value)
    elif isinstance(value, Anomaly):
        batch.anomalies.setdefault(value.anomaly_id, _from_topic(value, record.source))
    else:
        assert isinstance(value, OrderPaid | OrderRefunded | OrderClosed)
        batch.event_records += 1
        batch.events.setdefault(value.event_id, (value, record.source))
        batch.raw.setdefault(value.event_id, record.value)


def _check_key(key: bytes | None, out_trade_no: str) -> None:
    """Raise RecordError unless the record is keyed by its order (an anomaly about none: no key)."""
    if key == out_trade_no.encode() or not (key or out_trade_no):
        return
    raise RecordError("the record's key is not its out_trade_no")


def _from_topic(anomaly: Anomaly, source: str) -> dict[str, Any]:
    """An anomaly from the topic; one about an undecodable record keeps that record's place."""
    payload = json.dumps(asdict(anomaly), ensure_ascii=False)
    where = anomaly.source or source
    return anomaly_row(anomaly.reason, anomaly.out_trade_no, anomaly.detail, where, payload)
