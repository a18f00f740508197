"""Build the events and anomalies the state machine emits, each with a deterministic id."""

from __future__ import annotations

from gateway.records import Notification
from stream.records import (
    Anomaly,
    ExpectedOrder,
    NotificationDecision,
    OrderClosed,
    OrderPaid,
    OrderRefunded,
    event_id,
    uuid5_text,
)


def paid(order: ExpectedOrder, note: Notification, *, status: str, version: int) -> OrderPaid:
    """Return the order's one ``order.paid`` event, taken from its first valid payment;
    ``status`` and ``version`` are the order's after it."""
    return OrderPaid(
        event_id=event_id(order.account, order.out_trade_no, "paid"),
        out_trade_no=note.out_trade_no,
        account=note.account,
        provider=note.provider,
        provider_trade_no=note.provider_trade_no,
        amount_minor=note.amount_minor,
        currency=note.currency,
        paid_at=note.occurred_at,
        notify_id=note.notify_id,
        status=status,
        version=version,
    )


def refunded(
    order: ExpectedOrder,
    note: Notification,
    refund_id: str,
    amount: int,
    total: int,
    *,
    status: str,
    version: int,
) -> OrderRefunded:
    """Return the ``order.refunded`` event of one refund (``status``, ``version``: after it)."""
    return OrderRefunded(
        event_id=event_id(order.account, order.out_trade_no, f"refund:{refund_id}"),
        out_trade_no=note.out_trade_no,
        account=note.account,
        provider=note.provider,
        provider_trade_no=note.provider_trade_no,
        refund_id=refund_id,
        amount_minor=amount,
        refunded_total_minor=total,
        currency=note.currency,
        refunded_at=note.occurred_at,
        notify_id=note.notify_id,
        status=status,
        version=version,
    )


def closed(order: ExpectedOrder, note: Notification, *, status: str, version: int) -> OrderClosed:
    """Return the order's one ``order.closed`` event (``status``, ``version``: after it)."""
    return OrderClosed(
        event_id=event_id(order.account, order.out_trade_no, "closed"),
        out_trade_no=note.out_trade_no,
        account=note.account,
        provider=note.provider,
        provider_trade_no=note.provider_trade_no,
        closed_at=note.occurred_at,
        notify_id=note.notify_id,
        status=status,
        version=version,
    )


def anomaly(note: Notification, reason: str, detail: str, fact: str = "") -> Anomaly:
    """Return the anomaly ``reason`` about one notification (same notification, same id).

    ``fact`` tells apart several anomalies of one reason about one notify_id (the digests of
    reshaped copies).
    """
    key = f"{note.account}\x1f{note.notify_id}\x1f{reason}" + (f"\x1f{fact}" if fact else "")
    return Anomaly(
        anomaly_id=uuid5_text(key),
        out_trade_no=note.out_trade_no,
        reason=reason,
        detail=detail,
        account=note.account,
        provider=note.provider,
        notify_id=note.notify_id,
        detected_at=note.received_at,
    )


def order_anomaly(order: ExpectedOrder, reason: str, detail: str) -> Anomaly:
    """Return the anomaly ``reason`` about an expected order (same terms, same id)."""
    terms = f"{order.amount_minor}{order.currency}"
    key = f"{order.account}\x1f{order.out_trade_no}\x1f{reason}\x1f{terms}"
    return Anomaly(
        anomaly_id=uuid5_text(key),
        out_trade_no=order.out_trade_no,
        reason=reason,
        detail=detail,
        account=order.account,
        detected_at=order.created_at,
    )


def mismatch_of(order: ExpectedOrder, note: Notification) -> tuple[str, str] | None:
    """Return (reason, detail) when a notification does not match its expected order.

    Every kind must name the order's account and currency; a payment must also carry its amount.
    """
    if note.account != order.account:
        return (
            "account_mismatch",
            f"notification for account {note.account}, order of {order.account}",
        )
    if note.currency != order.currency:
        return "currency_mismatch", f"{note.kind} in {note.currency}, expected {order.currency}"
    if note.kind == "payment" and note.amount_minor != order.amount_minor:
        return "amount_mismatch", f"paid {note.amount_minor}, expected {order.amount_minor}"
    return None


def decision(note: Notification, reason: str, version: int) -> NotificationDecision:
    """Return what the stream decided about one notification (``reason``), the order being at
    ``version`` after it; the raw body stays on ``payment-notifications``."""
    return NotificationDecision(
        notify_id=note.notify_id,
        out_trade_no=note.out_trade_no,
        account=note.account,
        provider=note.provider,
        kind=note.kind,
        status=note.status,
        amount_minor=note.amount_minor,
        currency=note.currency,
        provider_trade_no=note.provider_trade_no,
        received_at=note.received_at,
        occurred_at=note.occurred_at,
        source=note.source,
        decision=reason,
        version=version,
        refund_id=note.refund_id,
        refund_amount_minor=note.refund_amount_minor,
        refund_total_minor=note.refund_total_minor,
    )
