"""The stream's contracts: expected orders in, business events and anomalies out.

Every topic is keyed by ``out_trade_no``. Event ids are deterministic (account, order, fact), so a
redelivered event is recognised downstream and by the database sink. Every event also carries the
order's ``status`` after it and ``version``, the order's change counter (1, 2, 3, ...): the stream
alone decides an order's status, and a reader keeps the status of the highest version it has
seen, whatever order the topics deliver the events in.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime

from gateway.records import NOTIFICATIONS_TOPIC, JsonRecord, Notification, RecordError

ORDERS_TOPIC = "orders"
ORDER_PAID_TOPIC = "order-paid"
ORDER_REFUNDED_TOPIC = "order-refunded"
ORDER_CLOSED_TOPIC = "order-closed"
ANOMALIES_TOPIC = "payment-anomalies"
TICKS_TOPIC = "stream-ticks"  # internal: the stream worker's clock, one tick per partition
# What the stream decided about each notification, for the sink's ``notifications`` table.
DECISIONS_TOPIC = "notification-decisions"
OUTPUT_TOPICS = (
    ORDER_PAID_TOPIC,
    ORDER_REFUNDED_TOPIC,
    ORDER_CLOSED_TOPIC,
    ANOMALIES_TOPIC,
    DECISIONS_TOPIC,
)
ALL_TOPICS = (ORDERS_TOPIC, NOTIFICATIONS_TOPIC, *OUTPUT_TOPICS, TICKS_TOPIC)

# An order's status: the stream decides it, every output event carries it, and the sink copies it
# into ``orders.status``. The one status vocabulary of the product.
CREATED = "created"
PAID = "paid"
PARTIALLY_REFUNDED = "partially_refunded"
REFUNDED = "refunded"
CLOSED = "closed"
ORDER_STATUSES = (CREATED, PAID, REFUNDED, PARTIALLY_REFUNDED, CLOSED)
AWAITING_ORDER = "awaiting_order"  # the stream's own: notifications seen, no expected order yet

EVENT_NAMESPACE = uuid.UUID("6f1c2a4e-5d0b-4b8e-9a57-2f0d3c1e8b90")
_NAMESPACE_BYTES = EVENT_NAMESPACE.bytes
UNDECODABLE = "undecodable_record"

# Bounds every record must keep: what a BIGINT and the database's columns can hold.
MAX_AMOUNT = 2**63 - 1
ID_CHARS = 128  # out_trade_no, provider_trade_no, refund_id (sinks/rows.py)
ACCOUNT_CHARS = 64
PROVIDER_CHARS = 32
TIME_CHARS = 40
NOTIFY_ID_CHARS = 256

__all__ = [
    "ALL_TOPICS",
    "ANOMALIES_TOPIC",
    "AWAITING_ORDER",
    "CLOSED",
    "CREATED",
    "DECISIONS_TOPIC",
    "ORDERS_TOPIC",
    "ORDER_CLOSED_TOPIC",
    "ORDER_PAID_TOPIC",
    "ORDER_REFUNDED_TOPIC",
    "ORDER_STATUSES",
    "OUTPUT_TOPICS",
    "PAID",
    "PARTIALLY_REFUNDED",
    "REFUNDED",
    "TICKS_TOPIC",
    "Anomaly",
    "ExpectedOrder",
    "JsonRecord",
    "NotificationDecision",
    "OrderClosed",
    "OrderPaid",
    "OrderRefunded",
    "RecordError",
    "check_notification",
    "event_id",
    "undecodable_id",
    "uuid5_text",
]


def uuid5_text(name: str) -> str:
    """Return ``str(uuid.uuid5(EVENT_NAMESPACE, name))``, without building a UUID object.

    The same SHA-1, version and variant bits and text (a unit test compares them), without the
    UUID object's conversions: every event and anomaly id is one (``uuid5`` was 2 % of a worker's
    samples, ``bench/stream_profile.py``).
    """
    # SHA-1 is what RFC 4122 names for version 5 ids; they identify, they do not secure.
    sha1 = hashlib.sha1(_NAMESPACE_BYTES + name.encode(), usedforsecurity=False)
    digest = bytearray(sha1.digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def event_id(account: str, out_trade_no: str, fact: str) -> str:
    """Return the deterministic id of one fact about one order.

    Facts: ``"paid"``, ``"closed"``, ``f"refund:{refund_id}"``.
    """
    return uuid5_text(f"{account}\x1f{out_trade_no}\x1f{fact}")


def undecodable_id(where: str) -> str:
    """Return the id of the ``undecodable_record`` anomaly about the record at ``where``.

    ``where`` is ``topic/partition/offset`` with the topic's name as consumed; the stream and the
    sink derive the same id for the same record (both read ``orders``), so it is one row.
    """
    return uuid5_text(f"{UNDECODABLE}\x1f{where}")


def check_text(name: str, value: object, limit: int, *, required: bool = True) -> None:
    """Raise RecordError unless ``value`` is a string of at most ``limit`` characters that UTF-8
    and PostgreSQL can hold (no lone surrogate, no NUL); ``required``: not empty."""
    if not isinstance(value, str):
        raise RecordError(f"{name} must be a string")
    if required and not value:
        raise RecordError(f"{name} must not be empty")
    if len(value) > limit or "\x00" in value:
        raise RecordError(f"{name} must be at most {limit} characters, without NUL")
    if value.isascii():  # known in O(1); only other text can hold a lone surrogate
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise RecordError(f"{name} is not valid Unicode") from None


def check_amount(name: str, value: object, *, optional: bool = False) -> None:
    """Raise RecordError unless ``value`` is an integer in 0..2^63-1 (or None when ``optional``)."""
    if optional and value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise RecordError(f"{name} must be an integer")
    if not 0 <= value <= MAX_AMOUNT:
        raise RecordError(f"{name} must be within 0..2^63-1")


def check_time(name: str, value: object, *, optional: bool = False, zoned: bool = False) -> None:
    """Raise RecordError unless ``value`` is an ISO-8601 time string (``zoned``: with an offset)."""
    if optional and value is None:
        return
    check_text(name, value, TIME_CHARS)
    assert isinstance(value, str)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise RecordError(f"{name} is not an ISO-8601 time") from None
    if zoned and parsed.tzinfo is None:
        raise RecordError(f"{name} has no UTC offset")


def check_currency(value: object) -> None:
    """Raise RecordError unless ``value`` is a three-letter currency code."""
    if not (isinstance(value, str) and len(value) == 3 and value.isascii() and value.isalpha()):
        raise RecordError("currency must be a three-letter code")


def check_notification(note: Notification) -> None:
    """Raise RecordError unless a decoded notification has what the stream relies on beyond
    ``Notification.check`` (which ``Notification.from_bytes`` has already run).

    The gateway's check decides what it publishes, and the stream decodes with it too: strings
    of bounded length without NUL or lone surrogates, amounts in 0..2^63-1, zoned times, base64.
    The stream adds: a status, and a raw body of at most 16 MiB of base64.
    """
    check_text("status", note.status, NOTIFY_ID_CHARS)
    check_text("raw_body_b64", note.raw_body_b64, 2**24, required=False)


@dataclass(frozen=True, slots=True)
class ExpectedOrder(JsonRecord):
    """The merchant's order as it expects to be paid (``orders`` topic)."""

    out_trade_no: str
    account: str
    amount_minor: int
    currency: str
    created_at: str

    def check(self) -> None:
        """Raise RecordError unless every field has its type and fits its column."""
        check_text("out_trade_no", self.out_trade_no, ID_CHARS)
        check_text("account", self.account, ACCOUNT_CHARS)
        check_amount("amount_minor", self.amount_minor)
        check_currency(self.currency)
        check_time("created_at", self.created_at)


def _check_event(event: OrderPaid | OrderRefunded | OrderClosed, type_: str) -> None:
    """Check the fields every output event shares."""
    if event.type != type_:
        raise RecordError(f"not an {type_} event")
    check_text("event_id", event.event_id, 36)
    check_text("out_trade_no", event.out_trade_no, ID_CHARS)
    check_text("account", event.account, ACCOUNT_CHARS)
    check_text("provider", event.provider, PROVIDER_CHARS)
    check_text("provider_trade_no", event.provider_trade_no, ID_CHARS, required=False)
    check_text("notify_id", event.notify_id, NOTIFY_ID_CHARS)
    if event.status not in ORDER_STATUSES:
        raise RecordError("status is not an order status")
    version = event.version
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= MAX_AMOUNT:
        raise RecordError("version must be a positive integer")


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
    status: str
    version: int
    type: str = "order.paid"

    def check(self) -> None:
        """Raise RecordError unless this is an order.paid event whose fields fit their columns."""
        _check_event(self, "order.paid")
        check_amount("amount_minor", self.amount_minor)
        check_currency(self.currency)
        check_time("paid_at", self.paid_at, optional=True)


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
    status: str
    version: int
    type: str = "order.refunded"

    def check(self) -> None:
        """Raise RecordError unless this is an order.refunded event whose fields fit."""
        _check_event(self, "order.refunded")
        check_text("refund_id", self.refund_id, ID_CHARS, required=False)
        check_amount("amount_minor", self.amount_minor)
        check_amount("refunded_total_minor", self.refunded_total_minor)
        check_currency(self.currency)
        check_time("refunded_at", self.refunded_at, optional=True)


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
    status: str
    version: int
    type: str = "order.closed"

    def check(self) -> None:
        """Raise RecordError unless this is an order.closed event whose fields fit."""
        _check_event(self, "order.closed")
        check_time("closed_at", self.closed_at, optional=True)


@dataclass(frozen=True, slots=True)
class Anomaly(JsonRecord):
    """``payment-anomalies``: a notification that is genuine but must not become an event.

    An ``undecodable_record`` anomaly also says where the record is: ``topic`` (its name as
    consumed), ``partition`` and ``offset``; other anomalies leave them empty (-1).
    """

    anomaly_id: str
    out_trade_no: str
    reason: str
    detail: str
    account: str = ""
    provider: str = ""
    notify_id: str = ""
    detected_at: str = ""
    topic: str = ""
    partition: int = -1
    offset: int = -1

    def check(self) -> None:
        """Raise RecordError unless every field has its type and the ids fit their columns."""
        check_text("anomaly_id", self.anomaly_id, 64)
        check_text("reason", self.reason, 64)
        check_text("out_trade_no", self.out_trade_no, ID_CHARS, required=False)
        for name in ("detail", "account", "provider", "notify_id", "detected_at", "topic"):
            check_text(name, getattr(self, name), 2**16, required=False)
        for name in ("partition", "offset"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not -1 <= value < 2**63:
                raise RecordError(f"{name} must be an integer")

    @property
    def source(self) -> str:
        """Return ``topic/partition/offset`` of the record it is about, or "" for none."""
        return f"{self.topic}/{self.partition}/{self.offset}" if self.topic else ""


@dataclass(frozen=True, slots=True)
class NotificationDecision(JsonRecord):
    """``notification-decisions``: one notification as the stream saw it, and what it decided.

    ``decision`` is the state machine's reason for it (``paid``, ``already_paid``,
    ``awaiting_order``, ``amount_mismatch``, ...: docs/architecture.md lists them). A notification
    that waits (for its order, or a refund for its payment) is decided again when it is applied,
    and the later record replaces the earlier one; an exact copy of a known notify_id is not
    decided again. ``version`` is the order's change counter after the decision.
    """

    notify_id: str
    out_trade_no: str
    account: str
    provider: str
    kind: str
    status: str
    amount_minor: int
    currency: str
    provider_trade_no: str
    received_at: str
    occurred_at: str | None
    source: str
    decision: str
    version: int
    refund_id: str | None = None
    refund_amount_minor: int | None = None
    refund_total_minor: int | None = None

    def check(self) -> None:
        """Raise RecordError unless every field has its type and fits its column."""
        check_text("notify_id", self.notify_id, NOTIFY_ID_CHARS)
        check_text("out_trade_no", self.out_trade_no, ID_CHARS)
        check_text("account", self.account, ACCOUNT_CHARS)
        check_text("provider", self.provider, PROVIDER_CHARS)
        check_text("kind", self.kind, 16)
        check_text("source", self.source, 16)
        check_text("decision", self.decision, 32)
        check_text("status", self.status, NOTIFY_ID_CHARS)
        check_text("provider_trade_no", self.provider_trade_no, ID_CHARS, required=False)
        if self.refund_id is not None:
            check_text("refund_id", self.refund_id, ID_CHARS)
        check_amount("amount_minor", self.amount_minor)
        check_amount("refund_amount_minor", self.refund_amount_minor, optional=True)
        check_amount("refund_total_minor", self.refund_total_minor, optional=True)
        check_currency(self.currency)
        check_time("received_at", self.received_at)
        check_time("occurred_at", self.occurred_at, optional=True)
        check_amount("version", self.version)
