"""What one order has seen (the table value keyed by ``out_trade_no``) and the inputs of ``apply``.

Pure: no faust, no clock. Time enters only through :class:`Tick`, which the worker's timer sends.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from json.encoder import encode_basestring_ascii
from typing import Any

from gateway.records import Notification, field_names, from_fields
from stream.records import (
    AWAITING_ORDER,
    CLOSED,
    PAID,
    PARTIALLY_REFUNDED,
    REFUNDED,
    Anomaly,
    ExpectedOrder,
    OrderClosed,
    OrderPaid,
    OrderRefunded,
)

MAX_SEEN = 256  # remembered notify ids per account
MAX_PENDING = 32  # notifications waiting for the order, per account
PAID_STATUSES = frozenset({PAID, PARTIALLY_REFUNDED, REFUNDED})
EXPIRING_STATUSES = frozenset({AWAITING_ORDER, CLOSED, REFUNDED})


@dataclass(frozen=True, slots=True)
class Tick:
    """The passing of time for one order: ``now`` (ISO-8601) and the configured horizons."""

    now: str
    pending_timeout_s: float
    retention_s: float


Input = ExpectedOrder | Notification | Tick
Output = OrderPaid | OrderRefunded | OrderClosed | Anomaly
Seen = tuple[str, str, str]  # (account, notify_id, digest); "" account and digest: stored before


@dataclass(frozen=True, slots=True)
class OrderState:
    """What one order has seen.

    ``seen`` remembers each notification once per (account, notify_id) with the digest of its
    content (:func:`content_digest`); ``pending`` holds notifications that cannot be applied yet
    (no order, or a refund before its payment); ``paid_trade_no`` is the provider's trade number
    of the payment that paid the order; ``refunds`` the applied refunds as (refund_id, amount);
    ``reported`` the notify_ids already reported by a tick; ``touched_at`` the latest
    ``received_at`` (for retention); ``version`` the order's change counter, which every event
    carries (the version after it).
    """

    order: ExpectedOrder | None = None
    status: str = AWAITING_ORDER
    seen: tuple[Seen, ...] = ()
    pending: tuple[Notification, ...] = ()
    paid_notify_id: str | None = None
    paid_minor: int = 0
    paid_trade_no: str | None = None
    refunds: tuple[tuple[str, int], ...] = ()
    refunded_minor: int = 0
    closed_notify_id: str | None = None
    reported: tuple[str, ...] = ()
    touched_at: str = ""
    version: int = 0

    @property
    def is_paid(self) -> bool:
        """Return whether a payment has been applied."""
        return self.paid_notify_id is not None


@dataclass(frozen=True, slots=True)
class Transition:
    """The outcome of one input: the new state (None: forget the order), what to emit, and why."""

    state: OrderState | None
    emit: tuple[Output, ...]
    reason: str
    # The notifications this input decided, each with its reason: the input itself, and those
    # waiting that it applied (or reported as timed out). An exact copy decides nothing new.
    decided: tuple[tuple[Notification, str], ...] = ()


def evolve(state: OrderState, **changes: Any) -> OrderState:
    """Return a copy of ``state`` with ``changes``: ``dataclasses.replace`` without its per-call
    walk over the fields' metadata (``dataclasses.replace`` was 12.6 % of the worker's samples,
    docs/benchmarks.md)."""
    names = field_names(OrderState)
    return OrderState(*[changes[n] if n in changes else getattr(state, n) for n in names])


def content_digest(note: Notification) -> str:
    """Return a digest of what a notification says, without when it was sent or received.

    A provider's retries of one notification carry the same notify_id and the same facts, but
    may differ in ``received_at``, ``occurred_at`` and the raw body (a new signature or
    timestamp): those are left out, so that a retry is a duplicate and a reshaped copy is not.
    """
    facts = (
        note.account,
        note.out_trade_no,
        note.kind,
        note.status,
        note.amount_minor,
        note.currency,
        note.provider_trade_no,
        note.refund_id,
        note.refund_amount_minor,
        note.refund_total_minor,
    )
    return hashlib.sha256(json_list_text(facts).encode()).hexdigest()[:16]


def json_list_text(values: tuple[str | int | None, ...]) -> str:
    """Return ``json.dumps(list(values))``, byte for byte, for texts, integers and None.

    Digests stored in orders' states were made from ``json.dumps``' text, so a new encoding must
    give the same text; this one builds it from the C string encoder, without the encoder
    object's walk (``content_digest`` was 4 % of a worker's samples, ``bench/stream_profile.py``).
    A unit test compares the two.
    """
    parts = [
        encode_basestring_ascii(v)
        if type(v) is str
        else "null"
        if v is None
        else repr(v)
        if type(v) is int
        else json.dumps(v)
        for v in values
    ]
    return "[" + ", ".join(parts) + "]"


def seen_digest(state: OrderState, note: Notification) -> str | None:
    """Return the digest remembered for this account's notify_id ("" if stored before digests),
    or None when it is new."""
    for account, notify_id, digest in state.seen:
        if notify_id == note.notify_id and account in (note.account, ""):
            return digest
    return None


def remember(state: OrderState, note: Notification, touched_at: str) -> OrderState:
    """Remember a notification, keeping at most MAX_SEEN per account (the oldest goes first),
    and ``touched_at`` (in the same copy of the state: this is the hot path)."""
    seen = (*state.seen, (note.account, note.notify_id, content_digest(note)))
    own = [i for i, entry in enumerate(seen) if entry[0] == note.account]
    if len(own) > MAX_SEEN:
        seen = seen[: own[0]] + seen[own[0] + 1 :]
    return evolve(state, seen=seen, touched_at=touched_at)


def waiting_of(state: OrderState, account: str) -> int:
    """Return how many notifications of ``account`` wait in ``pending``."""
    return sum(1 for n in state.pending if n.account == account)


def parse_time(value: str | None) -> datetime | None:
    """Parse an ISO-8601 time; None when absent or unreadable."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def later(a: str, b: str) -> str:
    """Return the later of two ISO-8601 times (an unreadable one loses)."""
    if a == b:  # a copy, or notifications received in the same microsecond: nothing to parse
        return a
    ta, tb = parse_time(a), parse_time(b)
    if ta is None:
        return b if tb is not None else a
    return b if tb is not None and tb > ta else a


def due_at(state: OrderState, pending_timeout_s: float, retention_s: float) -> datetime | None:
    """Return when a tick could next change this state, or None if only inputs can."""
    waiting = [
        parse_time(n.received_at) for n in state.pending if n.notify_id not in state.reported
    ]
    times = [t + timedelta(seconds=pending_timeout_s) for t in waiting if t is not None]
    unmatched = close_unmatched(state)
    if unmatched or state.status in EXPIRING_STATUSES:  # else ``touched_at`` decides nothing
        touched = parse_time(state.touched_at)
        if touched is not None and unmatched:
            times.append(touched + timedelta(seconds=pending_timeout_s))
        if touched is not None and state.status in EXPIRING_STATUSES and not times:
            times.append(touched + timedelta(seconds=retention_s))
    return min(times) if times else None


def close_unmatched(state: OrderState) -> bool:
    """Return whether a close after payment still waits for refunds covering the payment."""
    return (
        state.closed_notify_id is not None
        and state.is_paid
        and state.refunded_minor < state.paid_minor
        and state.closed_notify_id not in state.reported
    )


def state_to_dict(state: OrderState) -> dict[str, Any]:
    """Return the JSON-able form the table stores."""
    return asdict(state)


def state_from_dict(data: dict[str, Any]) -> OrderState:
    """Rebuild a state from its stored form (also one stored by an older version)."""
    order = data.get("order")
    return OrderState(
        order=from_fields(ExpectedOrder, order) if order else None,
        status=data["status"],
        seen=tuple(map(_seen_entry, data.get("seen", ()))),
        pending=tuple(map(_pending_note, data.get("pending", ()))),
        paid_notify_id=data.get("paid_notify_id"),
        paid_minor=int(data.get("paid_minor", 0)),
        paid_trade_no=data.get("paid_trade_no"),
        refunds=tuple((str(r), int(a)) for r, a in data.get("refunds", ())),
        refunded_minor=int(data.get("refunded_minor", 0)),
        closed_notify_id=data.get("closed_notify_id"),
        reported=tuple(data.get("reported", ())),
        touched_at=str(data.get("touched_at", "")),
        version=int(data.get("version", 0)),
    )


# The refund statuses that meant "failed" before notifications carried ``succeeded``: only for a
# notification stored in a state by such a version (WeChat Pay's refund_status, or its event type).
_FAILED_BEFORE_SUCCEEDED = frozenset({"ABNORMAL", "CLOSED", "REFUND.ABNORMAL", "REFUND.CLOSED"})


def _pending_note(data: dict[str, Any]) -> Notification:
    """A stored waiting notification; one stored before ``succeeded`` existed gets it from its
    status as that version read it."""
    if "succeeded" not in data:
        data = {**data, "succeeded": data.get("status") not in _FAILED_BEFORE_SUCCEEDED}
    return from_fields(Notification, data)


def _seen_entry(entry: str | list[str] | tuple[str, ...]) -> Seen:
    """A stored ``seen`` entry; a bare notify_id (stored before accounts and digests were
    remembered) stands for that id of any account, with any content."""
    if isinstance(entry, str):
        return ("", entry, "")
    account, notify_id, digest = entry
    return (str(account), str(notify_id), str(digest))
