from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.records import Notification
from stream.records import Anomaly, ExpectedOrder, OrderPaid, event_id
from stream.transitions import (
    MAX_PENDING,
    MAX_SEEN,
    OrderState,
    Transition,
    apply,
    state_from_dict,
    state_to_dict,
)

ORDER = ExpectedOrder("o-1", "shop", 100, "CNY", "2026-11-26T10:00:00+08:00")


def note(
    notify_id: str = "n-1",
    *,
    kind: str = "payment",
    amount: int = 100,
    status: str = "TRADE_SUCCESS",
    account: str = "shop",
    currency: str = "CNY",
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
        provider_trade_no="t-1",
        occurred_at="2026-11-26T10:00:01+08:00",
        received_at="2026-11-26T02:00:02+00:00",
        raw_body_b64="",
    )


def run(*inputs: ExpectedOrder | Notification) -> tuple[OrderState, list[Transition]]:
    state: OrderState | None = None
    steps = []
    for item in inputs:
        step = apply(state, item)
        state = step.state
        steps.append(step)
    assert state is not None
    return state, steps


def emitted(steps: list[Transition]) -> list[OrderPaid | Anomaly]:
    return [out for step in steps for out in step.emit]


def test_apply_order_on_nothing_creates_it() -> None:
    step = apply(None, ORDER)
    assert (step.state.status, step.emit, step.reason) == ("created", (), "order_recorded")


def test_apply_payment_before_order_waits_pending() -> None:
    step = apply(None, note())
    assert (step.state.status, step.emit, step.reason) == ("awaiting_order", (), "awaiting_order")
    assert step.state.pending == (note(),)


def test_apply_order_after_pending_payment_emits_paid() -> None:
    state, steps = run(note(), ORDER)
    [paid] = emitted(steps)
    assert isinstance(paid, OrderPaid) and state.status == "paid" and state.pending == ()


def test_apply_payment_on_created_emits_one_paid_with_deterministic_id() -> None:
    state, steps = run(ORDER, note())
    [paid] = emitted(steps)
    assert isinstance(paid, OrderPaid)
    assert paid.event_id == event_id("shop", "o-1", "paid")
    assert (paid.amount_minor, paid.notify_id, paid.type) == (100, "n-1", "order.paid")
    assert (state.status, steps[-1].reason) == ("paid", "paid")


def test_apply_same_notify_id_again_is_a_duplicate() -> None:
    _, steps = run(ORDER, note(), note())
    assert (steps[-1].reason, steps[-1].emit) == ("duplicate", ())


def test_apply_finished_after_success_emits_nothing() -> None:
    _, steps = run(ORDER, note("n-1"), note("n-2", status="TRADE_FINISHED"))
    assert (steps[-1].reason, steps[-1].emit) == ("already_paid", ())


@pytest.mark.parametrize(
    ("changed", "reason"),
    [
        ({"amount": 99}, "amount_mismatch"),
        ({"currency": "USD"}, "currency_mismatch"),
        ({"account": "other"}, "account_mismatch"),
    ],
)
def test_apply_mismatched_payment_is_an_anomaly_not_a_payment(
    changed: dict[str, object], reason: str
) -> None:
    state, steps = run(ORDER, note("n-9", **changed))  # type: ignore[arg-type]
    [anomaly] = emitted(steps)
    assert isinstance(anomaly, Anomaly) and anomaly.reason == reason
    assert state.status == "created"


def test_apply_mismatch_after_paid_is_still_an_anomaly() -> None:
    state, steps = run(ORDER, note("n-1"), note("n-2", amount=1))
    assert state.status == "paid" and steps[-1].reason == "amount_mismatch"


def test_apply_correct_payment_after_mismatch_pays() -> None:
    state, steps = run(ORDER, note("n-1", amount=1), note("n-2"))
    assert state.status == "paid" and steps[-1].reason == "paid"


def test_apply_same_order_twice_is_a_duplicate() -> None:
    _, steps = run(ORDER, ORDER)
    assert (steps[-1].reason, steps[-1].emit) == ("duplicate_order", ())


def test_apply_conflicting_order_keeps_the_first_and_reports() -> None:
    state, steps = run(ORDER, replace(ORDER, amount_minor=200))
    assert steps[-1].reason == "order_conflict" and state.order == ORDER


@pytest.mark.parametrize("kind", ["refund", "close"])
def test_apply_refund_or_close_is_reported_until_applied(kind: str) -> None:
    state, steps = run(ORDER, note("n-5", kind=kind))
    assert steps[-1].reason == "unhandled_kind" and state.status == "created"


def test_apply_pending_is_bounded() -> None:
    state, steps = run(*(note(f"n-{i}") for i in range(MAX_PENDING + 1)))
    assert len(state.pending) == MAX_PENDING and steps[-1].reason == "pending_overflow"


def test_apply_seen_is_bounded() -> None:
    state, _ = run(ORDER, *(note(f"n-{i}", amount=1) for i in range(MAX_SEEN + 10)))
    assert len(state.seen) == MAX_SEEN


def test_state_roundtrips_through_its_stored_form() -> None:
    state, _ = run(note("n-1"), note("n-2", amount=5))
    assert state_from_dict(state_to_dict(state)) == state
    paid, _ = run(ORDER, note())
    assert state_from_dict(state_to_dict(paid)) == paid


HISTORY: list[ExpectedOrder | Notification] = [
    ORDER,
    note("n-1"),
    note("n-2", status="TRADE_FINISHED"),
    note("n-3", amount=5),
    note("n-4", kind="refund", status="TRADE_CLOSED"),
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(range(len(HISTORY))), min_size=0, max_size=12), st.randoms())
def test_apply_any_duplication_and_order_gives_same_result(extra: list[int], rnd: object) -> None:
    inputs = [*HISTORY, *(HISTORY[i] for i in extra)]
    rnd.shuffle(inputs)  # type: ignore[attr-defined]
    state, steps = run(*inputs)
    outs = emitted(steps)
    ids = sorted(o.event_id if isinstance(o, OrderPaid) else o.anomaly_id for o in outs)
    reference_state, reference_steps = run(*HISTORY)
    reference = sorted(
        o.event_id if isinstance(o, OrderPaid) else o.anomaly_id for o in emitted(reference_steps)
    )
    assert ids == reference
    assert sum(isinstance(o, OrderPaid) for o in outs) == 1
    assert (state.status, state.order, set(state.seen)) == (
        reference_state.status,
        reference_state.order,
        set(reference_state.seen),
    )
