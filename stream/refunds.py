"""Refunds of a paid order: one ``order.refunded`` per refund id, never above what was paid.

Providers say a refund's amount in one of two ways: this refund's amount (WeChat ``amount.refund``,
Stripe, Standard Webhooks, Adyen) or the cumulative refunded total (``refund_total_minor``). A
cumulative total T means "T refunded so far": this refund is what T adds to what is already
applied, so a copy or an older total arriving late adds nothing (its event carries amount 0) and
the refunded total is never counted twice.
"""

from __future__ import annotations

from gateway.records import Notification
from stream import facts
from stream.records import PARTIALLY_REFUNDED, REFUNDED
from stream.state import OrderState, Transition, evolve


def refund_id_of(note: Notification) -> str:
    """Return the refund's own id, or the notification's when the provider gives none."""
    return note.refund_id or note.notify_id


def apply_refund(state: OrderState, note: Notification) -> Transition:
    """Apply one refund notification to a paid order."""
    assert state.order is not None
    refund_id = refund_id_of(note)
    if any(known == refund_id for known, _ in state.refunds):
        return Transition(state, (), "duplicate_refund")
    if not note.succeeded:
        detail = f"refund {refund_id} did not succeed (status {note.status})"
        return Transition(state, (facts.anomaly(note, "refund_failed", detail),), "refund_failed")
    amounts = _amounts(state, note)
    if amounts is None:
        detail = f"refund {refund_id} carries neither its amount nor a refunded total"
        return Transition(
            state, (facts.anomaly(note, "refund_amount_missing", detail),), "refund_amount_missing"
        )
    amount, total = amounts
    if amount < 0 or total > state.paid_minor:
        detail = f"refund {refund_id} would bring refunds to {total}, paid {state.paid_minor}"
        return Transition(
            state, (facts.anomaly(note, "refund_exceeds_payment", detail),), "refund_exceeds"
        )
    status = REFUNDED if total >= state.paid_minor else PARTIALLY_REFUNDED
    version = state.version + 1
    event = facts.refunded(
        state.order, note, refund_id, amount, total, status=status, version=version
    )
    new = evolve(
        state,
        status=status,
        refunds=(*state.refunds, (refund_id, amount)),
        refunded_minor=total,
        version=version,
    )
    return Transition(new, (event,), status)


def _amounts(state: OrderState, note: Notification) -> tuple[int, int] | None:
    if note.refund_amount_minor is not None:
        return note.refund_amount_minor, state.refunded_minor + note.refund_amount_minor
    if note.refund_total_minor is not None:
        total = max(state.refunded_minor, note.refund_total_minor)
        return total - state.refunded_minor, total
    return None


def order_for_drain(note: Notification) -> tuple[int, int]:
    """Sort key of waiting notifications: payments, then closes, then refunds by total."""
    rank = {"payment": 0, "close": 1}.get(note.kind, 2)
    return rank, note.refund_total_minor or 0
