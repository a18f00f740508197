"""The stream's contracts: expected orders in, business events and anomalies out.

Every topic is keyed by ``out_trade_no``. Event ids are deterministic (account, order, fact), so a
redelivered event is recognised downstream and by the database sink.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, fields
from typing import Any

from gateway.records import NOTIFICATIONS_TOPIC, RecordError, decode_json_object

ORDERS_TOPIC = "orders"
ORDER_PAID_TOPIC = "order-paid"
ORDER_REFUNDED_TOPIC = "order-refunded"
ORDER_CLOSED_TOPIC = "order-closed"
ANOMALIES_TOPIC = "payment-anomalies"
OUTPUT_TOPICS = (ORDER_PAID_TOPIC, ORDER_REFUNDED_TOPIC, ORDER_CLOSED_TOPIC, ANOMALIES_TOPIC)
ALL_TOPICS = (ORDERS_TOPIC, NOTIFICATIONS_TOPIC, *OUTPUT_TOPICS)

EVENT_NAMESPACE = uuid.UUID("6f1c2a4e-5d0b-4b8e-9a57-2f0d3c1e8b90")

__all__ = [
    "ALL_TOPICS",
    "ANOMALIES_TOPIC",
    "ORDERS_TOPIC",
    "ORDER_PAID_TOPIC",
    "Anomaly",
    "ExpectedOrder",
    "OrderPaid",
    "RecordError",
    "event_id",
]


def event_id(account: str, out_trade_no: str, fact: str) -> str:
    """Return the deterministic id of one fact about one order, e.g. ``fact="paid"``."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{account}\x1f{out_trade_no}\x1f{fact}"))


def _dumps(obj: Any) -> bytes:
    return json.dumps(asdict(obj), separators=(",", ":"), ensure_ascii=False).encode()


def _build(cls: Any, data: bytes) -> Any:
    obj = decode_json_object(data)
    try:
        return cls(**{f.name: obj[f.name] for f in fields(cls) if f.name in obj})
    except TypeError as exc:
        raise RecordError(f"{cls.__name__} is missing a field: {exc}") from None


@dataclass(frozen=True, slots=True)
class ExpectedOrder:
    """The merchant's order as it expects to be paid (``orders`` topic)."""

    out_trade_no: str
    account: str
    amount_minor: int
    currency: str
    created_at: str

    def to_bytes(self) -> bytes:
        """Encode as the topic's UTF-8 JSON value."""
        return _dumps(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> ExpectedOrder:
        """Decode an ``orders`` value.

        Raises:
            RecordError: the value is not a valid order.
        """
        order: ExpectedOrder = _build(cls, data)
        if not isinstance(order.amount_minor, int) or isinstance(order.amount_minor, bool):
            raise RecordError("amount_minor must be an integer")
        if order.amount_minor < 0 or not order.out_trade_no or not order.account:
            raise RecordError("order needs out_trade_no, account and amount_minor >= 0")
        return order


@dataclass(frozen=True, slots=True)
class OrderPaid:
    """``order-paid``: exactly one per paid order."""

    event_id: str
    out_trade_no: str
    account: str
    provider: str
    provider_trade_no: str
    amount_minor: int
    currency: str
    paid_at: str | None
    notify_id: str
    type: str = "order.paid"

    def to_bytes(self) -> bytes:
        """Encode as the topic's UTF-8 JSON value."""
        return _dumps(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> OrderPaid:
        """Decode an ``order-paid`` value.

        Raises:
            RecordError: the value is not a valid event.
        """
        event: OrderPaid = _build(cls, data)
        if event.type != "order.paid" or not isinstance(event.amount_minor, int):
            raise RecordError("not an order.paid event")
        return event


@dataclass(frozen=True, slots=True)
class Anomaly:
    """``payment-anomalies``: a notification that is genuine but must not become an event."""

    anomaly_id: str
    out_trade_no: str
    reason: str
    detail: str
    account: str = ""
    provider: str = ""
    notify_id: str = ""
    detected_at: str = ""

    def to_bytes(self) -> bytes:
        """Encode as the topic's UTF-8 JSON value."""
        return _dumps(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> Anomaly:
        """Decode a ``payment-anomalies`` value.

        Raises:
            RecordError: the value is not a valid anomaly.
        """
        anomaly: Anomaly = _build(cls, data)
        return anomaly
