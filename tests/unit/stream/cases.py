"""Orders, notifications and histories shared by the state machine's tests."""

from __future__ import annotations

from gateway.records import Notification
from stream.records import ExpectedOrder
from stream.transitions import Input, OrderState, Output, Tick, Transition, apply

ORDER = ExpectedOrder("o-1", "shop", 100, "CNY", "2026-11-26T10:00:00+08:00")
RECEIVED = "2026-11-26T02:00:02+00:00"


def note(
    notify_id: str = "n-1",
    *,
    kind: str = "payment",
    amount: int = 100,
    status: str = "TRADE_SUCCESS",
    account: str = "shop",
    currency: str = "CNY",
    refund_id: str | None = None,
    refund_amount: int | None = None,
    refund_total: int | None = None,
    received_at: str = RECEIVED,
    trade_no: str = "t-1",
) -> Notification:
    return Notification(
        provider="alipay",
        account=account,
        notify_id=notify_id,
        out_trade_no="o-1",
        kind=kind,
        status=status,
        amount_minor=amount,
        currency=currency,
        provider_trade_no=trade_no,
        occurred_at="2026-11-26T10:00:01+08:00",
        received_at=received_at,
        raw_body_b64="",
        succeeded=True,
        refund_id=refund_id,
        refund_amount_minor=refund_amount,
        refund_total_minor=refund_total,
    )


def refund(notify_id: str, refund_id: str, amount: int) -> Notification:
    """A refund that names its own amount (WeChat, Stripe, Adyen, Standard Webhooks)."""
    return note(notify_id, kind="refund", status="REFUND.SUCCESS", refund_id=refund_id,
                refund_amount=amount)  # fmt: skip


def alipay_refund(notify_id: str, out_biz_no: str, total: int) -> Notification:
    """An Alipay refund: cumulative ``refund_fee``; a full refund says TRADE_CLOSED."""
    status = "TRADE_CLOSED" if total >= ORDER.amount_minor else "TRADE_SUCCESS"
    return note(notify_id, kind="refund", status=status, refund_id=out_biz_no, refund_total=total)


def close(notify_id: str = "c-1") -> Notification:
    return note(notify_id, kind="close", status="TRADE_CLOSED")


def tick(now: str = "2026-11-26T03:00:03+00:00", timeout: float = 3600.0) -> Tick:
    return Tick(now=now, pending_timeout_s=timeout, retention_s=30 * 86400.0)


def run(*inputs: Input) -> tuple[OrderState | None, list[Transition]]:
    state: OrderState | None = None
    steps = []
    for item in inputs:
        step = apply(state, item)
        state = step.state
        steps.append(step)
    return state, steps


def final(*inputs: Input) -> tuple[OrderState, list[Transition]]:
    state, steps = run(*inputs)
    assert state is not None
    return state, steps


def emitted(steps: list[Transition]) -> list[Output]:
    return [out for step in steps for out in step.emit]


def ids(outs: list[Output]) -> list[str]:
    return sorted(getattr(o, "event_id", None) or getattr(o, "anomaly_id", "") for o in outs)
