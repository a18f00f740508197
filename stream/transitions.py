"""The order state machine: a pure function from (state, input) to (new state, events, reason).

Inputs are the merchant's expected order (``orders``) and verified notifications
(``payment-notifications``). Duplicates and out-of-order arrivals are normal in payments: they
come back as transitions with a reason, never as exceptions.

    state \\ input     expected order             payment notification (new notify_id)
    (none)            created                    awaiting_order (kept pending)
    awaiting_order    created + pending applied  awaiting_order (kept pending)
    created           created (dup/conflict)     paid + order.paid
    paid              paid (dup/conflict)        paid, nothing emitted ("already_paid")

A payment whose account, amount or currency differ from the expected order is an anomaly in
every state (checked before anything else), so the result never depends on arrival order.

A notify_id seen before is a duplicate and changes nothing. Refund and close notifications are
recorded as ``unhandled_kind`` anomalies until the refund/close transitions land.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, replace
from typing import Any

from gateway.records import Notification
from stream.records import EVENT_NAMESPACE, Anomaly, ExpectedOrder, OrderPaid, event_id

MAX_SEEN = 256
MAX_PENDING = 32

Input = ExpectedOrder | Notification
Output = OrderPaid | Anomaly


@dataclass(frozen=True, slots=True)
class OrderState:
    """What one order has seen; the table value keyed by ``out_trade_no``."""

    order: ExpectedOrder | None = None
    status: str = "awaiting_order"
    seen: tuple[str, ...] = ()
    pending: tuple[Notification, ...] = ()
    paid_notify_id: str | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    """The outcome of one input: the new state, what to emit, and why."""

    state: OrderState
    emit: tuple[Output, ...]
    reason: str


def apply(state: OrderState | None, event: Input) -> Transition:
    """Apply one input to an order's state."""
    current = state or OrderState()
    if isinstance(event, ExpectedOrder):
        return _apply_order(current, event)
    return _apply_notification(current, event)


def _apply_order(state: OrderState, order: ExpectedOrder) -> Transition:
    if state.order is not None:
        if _same_order(state.order, order):
            return Transition(state, (), "duplicate_order")
        detail = "a second expected order with different terms; the first one is kept"
        return Transition(
            state, (_anomaly_for_order(order, "order_conflict", detail),), "order_conflict"
        )
    status = "created" if state.status == "awaiting_order" else state.status
    current = replace(state, order=order, status=status, pending=())
    emitted: list[Output] = []
    for note in state.pending:
        step = _apply_known(current, note)
        current, emitted = step.state, [*emitted, *step.emit]
    return Transition(current, tuple(emitted), "order_recorded")


def _apply_notification(state: OrderState, note: Notification) -> Transition:
    if note.notify_id in state.seen:
        return Transition(state, (), "duplicate")
    state = replace(state, seen=(*state.seen, note.notify_id)[-MAX_SEEN:])
    if state.order is None:
        if len(state.pending) >= MAX_PENDING:
            detail = f"more than {MAX_PENDING} notifications wait for an order that has not come"
            return Transition(
                state, (_anomaly(note, "pending_overflow", detail),), "pending_overflow"
            )
        return Transition(replace(state, pending=(*state.pending, note)), (), "awaiting_order")
    return _apply_known(state, note)


def _apply_known(state: OrderState, note: Notification) -> Transition:
    assert state.order is not None
    if note.kind != "payment":
        detail = f"{note.kind} notifications are not applied yet (status {note.status})"
        return Transition(state, (_anomaly(note, "unhandled_kind", detail),), "unhandled_kind")
    mismatch = mismatch_of(state.order, note)
    if mismatch is not None:
        return Transition(state, (_anomaly(note, mismatch[0], mismatch[1]),), mismatch[0])
    if state.status == "paid":
        return Transition(state, (), "already_paid")
    paid = OrderPaid(
        event_id=event_id(state.order.account, state.order.out_trade_no, "paid"),
        out_trade_no=note.out_trade_no,
        account=note.account,
        provider=note.provider,
        provider_trade_no=note.provider_trade_no,
        amount_minor=note.amount_minor,
        currency=note.currency,
        paid_at=note.occurred_at,
        notify_id=note.notify_id,
    )
    return Transition(replace(state, status="paid", paid_notify_id=note.notify_id), (paid,), "paid")


def mismatch_of(order: ExpectedOrder, note: Notification) -> tuple[str, str] | None:
    """Return (reason, detail) when a notification does not match its expected order."""
    if note.account != order.account:
        return (
            "account_mismatch",
            f"notification for account {note.account}, order of {order.account}",
        )
    if note.currency != order.currency:
        return "currency_mismatch", f"paid in {note.currency}, expected {order.currency}"
    if note.amount_minor != order.amount_minor:
        return "amount_mismatch", f"paid {note.amount_minor}, expected {order.amount_minor}"
    return None


def _same_order(a: ExpectedOrder, b: ExpectedOrder) -> bool:
    return (a.account, a.amount_minor, a.currency) == (b.account, b.amount_minor, b.currency)


def _anomaly(note: Notification, reason: str, detail: str) -> Anomaly:
    return Anomaly(
        anomaly_id=str(
            uuid.uuid5(EVENT_NAMESPACE, f"{note.account}\x1f{note.notify_id}\x1f{reason}")
        ),
        out_trade_no=note.out_trade_no,
        reason=reason,
        detail=detail,
        account=note.account,
        provider=note.provider,
        notify_id=note.notify_id,
        detected_at=note.received_at,
    )


def _anomaly_for_order(order: ExpectedOrder, reason: str, detail: str) -> Anomaly:
    terms = f"{order.amount_minor}{order.currency}"
    key = f"{order.account}\x1f{order.out_trade_no}\x1f{reason}\x1f{terms}"
    return Anomaly(
        anomaly_id=str(uuid.uuid5(EVENT_NAMESPACE, key)),
        out_trade_no=order.out_trade_no,
        reason=reason,
        detail=detail,
        account=order.account,
        detected_at=order.created_at,
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
    )
