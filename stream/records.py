"""The stream's contracts: expected orders in, business events and anomalies out.

Every topic is keyed by ``out_trade_no``. Event ids are deterministic (account, order, fact), so a
redelivered event is recognised downstream and by the database sink.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from gateway.records import NOTIFICATIONS_TOPIC, JsonRecord, RecordError

ORDERS_TOPIC = "orders"
ORDER_PAID_TOPIC = "order-paid"
ORDER_REFUNDED_TOPIC = "order-refunded"
ORDER_CLOSED_TOPIC = "order-closed"
ANOMALIES_TOPIC = "payment-anomalies"
TICKS_TOPIC = "stream-ticks"  # internal: the stream worker's clock, one tick per partition
OUTPUT_TOPICS = (ORDER_PAID_TOPIC, ORDER_REFUNDED_TOPIC, ORDER_CLOSED_TOPIC, ANOMALIES_TOPIC)
ALL_TOPICS = (ORDERS_TOPIC, NOTIFICATIONS_TOPIC, *OUTPUT_TOPICS, TICKS_TOPIC)

EVENT_NAMESPACE = uuid.UUID("6f1c2a4e-5d0b-4b8e-9a57-2f0d3c1e8b90")

__all__ = [
    "ALL_TOPICS",
    "ANOMALIES_TOPIC",
    "ORDERS_TOPIC",
    "ORDER_CLOSED_TOPIC",
    "ORDER_PAID_TOPIC",
    "ORDER_REFUNDED_TOPIC",
    "OUTPUT_TOPICS",
    "TICKS_TOPIC",
    "Anomaly",
    "ExpectedOrder",
    "JsonRecord",
    "OrderClosed",
    "OrderPaid",
    "OrderRefunded",
    "RecordError",
    "event_id",
]


def event_id(account: str, out_trade_no: str, fact: str) -> str:
    """Return the deterministic id of one fact about one order.

    Facts: ``"paid"``, ``"closed"``, ``f"refund:{refund_id}"``.
    """
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{account}\x1f{out_trade_no}\x1f{fact}"))


@dataclass(frozen=True, slots=True)
class ExpectedOrder(JsonRecord):
    """The merchant's order as it expects to be paid (``orders`` topic)."""

    out_trade_no: str
    account: str
    amount_minor: int
    currency: str
    created_at: str

    def check(self) -> None:
        """Raise RecordError unless the order has a number, an account and an amount >= 0."""
        if not isinstance(self.amount_minor, int) or isinstance(self.amount_minor, bool):
            raise RecordError("amount_minor must be an integer")
        if self.amount_minor < 0 or not self.out_trade_no or not self.account:
            raise RecordError("order needs out_trade_no, account and amount_minor >= 0")


@dataclass(frozen=True, slots=True)
class OrderPaid(JsonRecord):
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

    def check(self) -> None:
        """Raise RecordError unless this is an order.paid event with an integer amount."""
        if self.type != "order.paid" or not isinstance(self.amount_minor, int):
            raise RecordError("not an order.paid event")


@dataclass(frozen=True, slots=True)
class OrderRefunded(JsonRecord):
    """``order-refunded``: one per refund (``refund_id``), never above what was paid."""

    event_id: str
    out_trade_no: str
    account: str
    provider: str
    provider_trade_no: str
    refund_id: str
    amount_minor: int
    refunded_total_minor: int
    currency: str
    refunded_at: str | None
    notify_id: str
    type: str = "order.refunded"

    def check(self) -> None:
        """Raise RecordError unless this is an order.refunded event with integer amounts."""
        if self.type != "order.refunded" or not isinstance(self.amount_minor, int):
            raise RecordError("not an order.refunded event")


@dataclass(frozen=True, slots=True)
class OrderClosed(JsonRecord):
    """``order-closed``: the order was closed unpaid; one per order."""

    event_id: str
    out_trade_no: str
    account: str
    provider: str
    provider_trade_no: str
    closed_at: str | None
    notify_id: str
    type: str = "order.closed"

    def check(self) -> None:
        """Raise RecordError unless this is an order.closed event."""
        if self.type != "order.closed":
            raise RecordError("not an order.closed event")


@dataclass(frozen=True, slots=True)
class Anomaly(JsonRecord):
    """``payment-anomalies``: a notification that is genuine but must not become an event."""

    anomaly_id: str
    out_trade_no: str
    reason: str
    detail: str
    account: str = ""
    provider: str = ""
    notify_id: str = ""
    detected_at: str = ""
