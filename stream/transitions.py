"""The order state machine: a pure function from (state, input) to (new state, events, reason).

Inputs are the merchant's expected order (``orders``), verified notifications
(``payment-notifications``) and ticks (the worker's clock, so that this module never reads it).
Duplicates and out-of-order arrivals are normal in payments: they come back as transitions with a
reason, never as exceptions. The full table is in ``docs/architecture.md``; in short:

- a notification of another account than the known order's is an ``account_mismatch`` anomaly
  before anything is remembered of it;
- a notify_id seen before (per account) changes nothing (``duplicate``), unless the copy says
  something else (another amount, status, trade number, ...): a ``notify_id_conflict`` anomaly;
- a notification before its order waits in ``pending`` (at most MAX_PENDING per account); the
  order applies it (payments first, then closes, then refunds by cumulative total, whatever their
  arrival order) and reports other accounts' as ``account_mismatch``;
- currency (and for a payment, amount) must match the order, else an anomaly;
- every event carries the order's status after it and its version (the change counter);
- the first valid payment emits ``order.paid``, also after an unpaid close (the order is
  ``paid``: money taken wins, and a ``paid_after_close`` anomaly reports it); a later one of the
  same provider trade nothing (``already_paid``: also reconciliation's query of a payment a
  webhook brought, or the reverse, whose notify ids differ), one of another trade a
  ``duplicate_payment`` anomaly (a double charge);
- a refund waits for the payment, then emits one ``order.refunded`` per refund id;
- a close before payment emits ``order.closed``; a close after payment (Alipay: "fully refunded")
  emits nothing, and a tick reports it if the refunds never cover the payment;
- a tick reports notifications that waited longer than the timeout (once each) and forgets
  terminal orders idle for longer than the retention.
"""

from __future__ import annotations

from datetime import datetime

from gateway.records import Notification
from stream import facts
from stream.records import CLOSED, CREATED, PAID, Anomaly, ExpectedOrder
from stream.refunds import apply_refund, order_for_drain
from stream.state import (
    EXPIRING_STATUSES,
    MAX_PENDING,
    MAX_SEEN,
    Input,
    OrderState,
    Output,
    Tick,
    Transition,
    close_unmatched,
    content_digest,
    evolve,
    later,
    parse_time,
    remember,
    seen_digest,
    state_from_dict,
    state_to_dict,
    waiting_of,
)

__all__ = [
    "MAX_PENDING",
    "MAX_SEEN",
    "Input",
    "OrderState",
    "Output",
    "Tick",
    "Transition",
    "apply",
    "state_from_dict",
    "state_to_dict",
]


def apply(state: OrderState | None, event: Input) -> Transition:
    """Apply one input to an order's state (None: the order has seen nothing yet)."""
    current = state or OrderState()
    if isinstance(event, ExpectedOrder):
        return _apply_order(current, event)
    if isinstance(event, Tick):
        return _apply_tick(current, event)
    return _apply_notification(current, event)


def _apply_order(state: OrderState, order: ExpectedOrder) -> Transition:
    if state.order is not None:
        if _same_order(state.order, order):
            return Transition(state, (), "duplicate_order")
        detail = "a second expected order with different terms; the first one is kept"
        anomaly = facts.order_anomaly(order, "order_conflict", detail)
        return Transition(state, (anomaly,), "order_conflict")
    own = tuple(entry for entry in state.seen if entry[0] in (order.account, ""))
    current = evolve(state, order=order, status=CREATED, seen=own)
    drained = _drain(current)  # other accounts' waiting notifications: account_mismatch
    return Transition(drained.state, drained.emit, "order_recorded", drained.decided)


def _apply_notification(state: OrderState, note: Notification) -> Transition:
    if state.order is not None and note.account != state.order.account:
        return _decided(note, _apply_known(state, note))  # nothing is remembered of it
    touched = later(state.touched_at, note.received_at)
    known = seen_digest(state, note)
    if known is not None:
        if touched != state.touched_at:  # a copy received no later changes nothing
            state = evolve(state, touched_at=touched)
        return _apply_seen(state, note, known)
    if state.order is None:
        if waiting_of(state, note.account) >= MAX_PENDING:
            return _decided(note, _overflow(evolve(state, touched_at=touched), note))
        return _decided(note, _wait(remember(state, note, touched), note, "awaiting_order"))
    step = _apply_known(remember(state, note, touched), note)
    assert step.state is not None
    drained = _drain(step.state)
    decided = (note, step.reason)
    return Transition(
        drained.state,
        (*step.emit, *drained.emit),
        step.reason,
        (decided, *(d for d in drained.decided if d != decided)),  # a refund that still waits
    )


def _decided(note: Notification, step: Transition) -> Transition:
    """Return ``step`` with ``note`` decided by its reason."""
    return Transition(step.state, step.emit, step.reason, ((note, step.reason),))


def _apply_seen(state: OrderState, note: Notification, known: str) -> Transition:
    """A notify_id this account sent before: a copy changes nothing, a reshaped one is reported."""
    digest = content_digest(note)
    if known in ("", digest):
        return Transition(state, (), "duplicate")
    detail = f"notify_id {note.notify_id} seen before with other content; this copy is not applied"
    conflict = facts.anomaly(note, "notify_id_conflict", detail, fact=digest)
    return Transition(state, (conflict,), "notify_id_conflict")


def _overflow(state: OrderState, note: Notification) -> Transition:
    """Report a notification that finds no room; it is not remembered, so a retry can apply."""
    detail = f"more than {MAX_PENDING} notifications of {note.account} wait for this order"
    overflow = facts.anomaly(note, "pending_overflow", detail)
    return Transition(state, (overflow,), "pending_overflow")


def _wait(state: OrderState, note: Notification, reason: str) -> Transition:
    if waiting_of(state, note.account) >= MAX_PENDING:
        return _overflow(state, note)
    return Transition(evolve(state, pending=(*state.pending, note)), (), reason)


def _drain(state: OrderState) -> Transition:
    """Retry every waiting notification; those that still cannot apply keep waiting (and are
    decided again: still waiting, or what applied them)."""
    if not state.pending or state.order is None:
        return Transition(state, (), "drained")
    waiting = sorted(state.pending, key=order_for_drain)
    current = evolve(state, pending=())
    emitted: list[Output] = []
    decided: list[tuple[Notification, str]] = []
    for note in waiting:
        step = _apply_known(current, note)
        assert step.state is not None
        current, emitted = step.state, [*emitted, *step.emit]
        decided.append((note, step.reason))
    return Transition(current, tuple(emitted), "drained", tuple(decided))


def _apply_known(state: OrderState, note: Notification) -> Transition:
    """Apply a notification to an order whose expected terms are known."""
    assert state.order is not None
    mismatch = facts.mismatch_of(state.order, note)
    if mismatch is not None:
        reason, detail = mismatch
        return Transition(state, (facts.anomaly(note, reason, detail),), reason)
    if note.kind == "payment":
        return _apply_payment(state, note)
    if note.kind == "close":
        return _apply_close(state, note)
    if not state.is_paid:
        return _wait(state, note, "refund_before_payment")
    return apply_refund(state, note)


def _apply_payment(state: OrderState, note: Notification) -> Transition:
    assert state.order is not None
    if state.is_paid:
        if state.paid_trade_no and note.provider_trade_no not in ("", state.paid_trade_no):
            detail = (
                f"second payment {note.provider_trade_no} of an order paid by "
                f"{state.paid_trade_no}; the merchant must refund it"
            )
            return Transition(
                state, (facts.anomaly(note, "duplicate_payment", detail),), "duplicate_payment"
            )
        return Transition(state, (), "already_paid")
    new = evolve(
        state,
        status=PAID,
        paid_notify_id=note.notify_id,
        paid_minor=note.amount_minor,
        paid_trade_no=note.provider_trade_no,
        version=state.version + 1,
    )
    event = facts.paid(state.order, note, status=PAID, version=new.version)
    if state.status != CLOSED:
        return Transition(new, (event,), "paid")
    detail = "paid after the provider said the order was closed; the payment is reported"
    return Transition(new, (event, facts.anomaly(note, "paid_after_close", detail)), "paid")


def _apply_close(state: OrderState, note: Notification) -> Transition:
    assert state.order is not None
    if state.closed_notify_id is not None:
        return Transition(state, (), "already_closed")
    new = evolve(state, closed_notify_id=note.notify_id)
    if state.is_paid:
        return Transition(new, (), "closed_after_payment")
    new = evolve(new, status=CLOSED, version=state.version + 1)
    event = facts.closed(state.order, note, status=CLOSED, version=new.version)
    return Transition(new, (event,), "closed")


def _apply_tick(state: OrderState, tick: Tick) -> Transition:
    now = parse_time(tick.now)
    if now is None:
        return Transition(state, (), "tick_unreadable")
    overdue = [n for n in state.pending if _older(n.received_at, now, tick.pending_timeout_s)]
    overdue = [n for n in overdue if n.notify_id not in state.reported]
    timeouts = [_timeout(state, n, tick.pending_timeout_s) for n in overdue]
    decided = tuple((n, a.reason) for n, a in zip(overdue, timeouts, strict=True))
    emitted: list[Output] = list(timeouts)
    reported = [n.notify_id for n in overdue]
    if close_unmatched(state) and _older(state.touched_at, now, tick.pending_timeout_s):
        emitted.append(_close_unmatched_anomaly(state))
        reported.append(str(state.closed_notify_id))
    new = evolve(state, reported=(*state.reported, *reported))
    if emitted:
        return Transition(new, tuple(emitted), "timed_out", decided)
    if _expired(new, now, tick.retention_s):
        return Transition(None, (), "expired")
    return Transition(new, (), "nothing_due")


def _older(stamp: str, now: datetime, seconds: float) -> bool:
    at = parse_time(stamp)
    return at is not None and (now - at).total_seconds() >= seconds


def _expired(state: OrderState, now: datetime, retention_s: float) -> bool:
    unreported = [n for n in state.pending if n.notify_id not in state.reported]
    return (
        state.status in EXPIRING_STATUSES
        and not unreported
        and _older(state.touched_at, now, retention_s)
    )


def _timeout(state: OrderState, note: Notification, timeout_s: float) -> Anomaly:
    if state.order is None:
        detail = f"no expected order within {timeout_s:.0f}s; the notification keeps waiting"
        return facts.anomaly(note, "order_missing", detail)
    detail = f"{note.kind} still waits for the payment after {timeout_s:.0f}s"
    return facts.anomaly(note, "payment_missing", detail)


def _close_unmatched_anomaly(state: OrderState) -> Output:
    assert state.order is not None
    detail = (
        f"closed after payment (provider: fully refunded) but refunds cover "
        f"{state.refunded_minor} of {state.paid_minor}"
    )
    return facts.order_anomaly(state.order, "closed_without_refund", detail)


def _same_order(a: ExpectedOrder, b: ExpectedOrder) -> bool:
    return (a.account, a.amount_minor, a.currency) == (b.account, b.amount_minor, b.currency)
