"""Property: any duplication and reordering of a valid history of an order gives the same final
state and the same set of emitted ids (events and anomalies)."""

from __future__ import annotations

import random
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from stream.records import Anomaly, OrderPaid, OrderRefunded
from stream.transitions import Input, OrderState
from tests.unit.stream.cases import (
    ORDER,
    alipay_refund,
    close,
    emitted,
    final,
    ids,
    note,
    refund,
    tick,
)

EARLY_TICK = tick("2026-11-26T02:30:00+00:00")

HISTORIES: dict[str, list[Input]] = {
    "paid_then_refunded_in_parts": [
        ORDER,
        note("n-1"),
        note("n-2", status="TRADE_FINISHED"),
        note("n-3", amount=5),
        refund("rn-1", "r-1", 30),
        refund("rn-2", "r-2", 70),
        EARLY_TICK,
    ],
    "alipay_cumulative_refunds": [
        ORDER,
        note("n-1"),
        alipay_refund("an-1", "b-1", 30),
        alipay_refund("an-2", "b-2", 100),
        note("n-4", currency="USD"),
    ],
    "closed_unpaid": [ORDER, close("c-1"), close("c-2"), EARLY_TICK],
    # another account's notifications, one reusing the genuine notify_id, and a provider's retry
    # (same facts, new received_at, occurred_at and body): the isolation of issue 12
    "other_account_and_retries": [
        ORDER,
        note("n-1"),
        note("n-1", account="other", amount=1),
        note("x-2", account="other", kind="refund", refund_id="r-9", refund_amount=100),
        replace(note("n-1"), received_at=EARLY_TICK.now, occurred_at=None, raw_body_b64="eA=="),
        refund("rn-1", "r-1", 30),
    ],
}
# Not here on purpose: a payment and a close of the same order. A close that overtakes the
# payment it follows cannot be told from a close before payment, so that reordering emits
# order.closed, then order.paid and a paid_after_close anomaly (see test_transitions.py).


def test_close_overtaking_its_payment_reports_paid_after_close() -> None:
    _, steps = final(ORDER, close("c-1"), note("n-1"), refund("rn-1", "r-1", 100))
    reasons = sorted(getattr(o, "reason", type(o).__name__) for o in emitted(steps))
    assert reasons == ["OrderClosed", "OrderPaid", "OrderRefunded", "paid_after_close"]


def summary(state: OrderState) -> tuple[object, ...]:
    return (
        state.status,
        state.order,
        frozenset(state.seen),
        state.pending,
        state.paid_notify_id is not None,
        state.refunded_minor,
        frozenset(r for r, _ in state.refunds),
        state.closed_notify_id is not None,
    )


def shuffled(name: str, extra: list[int], rnd: random.Random) -> tuple[str, list[Input]]:
    """Return a history with copies of some of its inputs (``extra``), in a shuffled order."""
    history = HISTORIES[name]
    inputs = [*history, *(history[i % len(history)] for i in extra)]
    rnd.shuffle(inputs)
    return name, inputs


SHUFFLED_HISTORIES = st.builds(
    shuffled,
    st.sampled_from(sorted(HISTORIES)),
    st.lists(st.integers(min_value=0, max_value=20), max_size=12),
    st.randoms(use_true_random=False),
)


@settings(max_examples=150, deadline=None)
@given(SHUFFLED_HISTORIES)
def test_any_duplication_and_order_gives_same_result(case: tuple[str, list[Input]]) -> None:
    name, inputs = case
    history = HISTORIES[name]
    state, steps = final(*inputs)
    reference_state, reference_steps = final(*history)
    outs = emitted(steps)
    assert set(ids(outs)) == set(ids(emitted(reference_steps)))
    # another account's copy is judged anew each time (nothing is remembered of it): it may repeat
    once = [o for o in outs if not (isinstance(o, Anomaly) and o.reason == "account_mismatch")]
    assert len(ids(once)) == len(set(ids(once))), "an id was emitted twice"
    assert summary(state) == summary(reference_state)
    assert sum(isinstance(o, OrderPaid) for o in outs) == (name != "closed_unpaid")
    refunded = sum(o.amount_minor for o in outs if isinstance(o, OrderRefunded))
    assert refunded == reference_state.refunded_minor <= ORDER.amount_minor
