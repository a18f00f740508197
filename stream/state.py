"""What one order has seen (the table value keyed by ``out_trade_no``) and the inputs of ``apply``.

Pure: no faust, no clock. Time enters only through :class:`Tick`, which the worker's timer sends.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from gateway.records import Notification
from stream.records import Anomaly, ExpectedOrder, OrderClosed, OrderPaid, OrderRefunded

MAX_SEEN = 256
MAX_PENDING = 32
PAID_STATUSES = frozenset({"paid", "partially_refunded", "refunded"})
EXPIRING_STATUSES = frozenset({"awaiting_order", "closed", "refunded"})


@dataclass(frozen=True, slots=True)
class Tick:
    """The passing of time for one order: ``now`` (ISO-8601) and the configured horizons."""

    now: str
    pending_timeout_s: float
    retention_s: float


Input = ExpectedOrder | Notification | Tick
Output = OrderPaid | OrderRefunded | OrderClosed | Anomaly


@dataclass(frozen=True, slots=True)
class OrderState:
    """What one order has seen.

    ``pending`` holds notifications that cannot be applied yet (no order, or a refund before its
    payment); ``refunds`` the applied refunds as (refund_id, amount); ``reported`` the notify_ids
    already reported by a tick; ``touched_at`` the latest ``received_at`` (for retention).
    """

    order: ExpectedOrder | None = None
    status: str = "awaiting_order"
    seen: tuple[str, ...] = ()
    pending: tuple[Notification, ...] = ()
    paid_notify_id: str | None = None
    paid_minor: int = 0
    refunds: tuple[tuple[str, int], ...] = ()
    refunded_minor: int = 0
    closed_notify_id: str | None = None
    reported: tuple[str, ...] = ()
    touched_at: str = ""

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
    touched = parse_time(state.touched_at)
    if touched is not None and close_unmatched(state):
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
    """Rebuild a state from its stored form."""
    order = data.get("order")
    return OrderState(
        order=ExpectedOrder(**order) if order else None,
        status=data["status"],
        seen=tuple(data.get("seen", ())),
        pending=tuple(Notification(**n) for n in data.get("pending", ())),
        paid_notify_id=data.get("paid_notify_id"),
        paid_minor=int(data.get("paid_minor", 0)),
        refunds=tuple((str(r), int(a)) for r, a in data.get("refunds", ())),
        refunded_minor=int(data.get("refunded_minor", 0)),
        closed_notify_id=data.get("closed_notify_id"),
        reported=tuple(data.get("reported", ())),
        touched_at=str(data.get("touched_at", "")),
    )
