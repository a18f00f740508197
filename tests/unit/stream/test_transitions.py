"""Every (state, input) pair of the order state machine, plus its bounds and stored form."""

from __future__ import annotations

from dataclasses import replace

import pytest

from stream.records import Anomaly, OrderClosed, OrderPaid, OrderRefunded, event_id
from stream.state import Transition, evolve
from stream.transitions import (
    MAX_PENDING,
    MAX_SEEN,
    Input,
    apply,
    state_from_dict,
    state_to_dict,
)
from tests.unit.stream.cases import (
    ORDER,
    RECEIVED,
    alipay_refund,
    close,
    emitted,
    final,
    note,
    refund,
    run,
    tick,
)

LATER = "2026-11-26T04:00:03+00:00"  # two hours after RECEIVED: past the 1 h pending timeout

STATES: dict[str, tuple[Input, ...]] = {
    "none": (),
    "awaiting_order": (note("n-0"),),
    "created": (ORDER,),
    "paid": (ORDER, note("n-1")),
    "partially_refunded": (ORDER, note("n-1"), refund("rn-1", "r-1", 30)),
    "refunded": (ORDER, note("n-1"), refund("rn-1", "r-1", 100)),
    "closed": (ORDER, close("c-0")),
    "paid_then_closed": (ORDER, note("n-1"), close("c-0")),
}

INPUTS: dict[str, Input] = {
    "order": ORDER,
    "conflicting_order": replace(ORDER, amount_minor=200),
    "payment": note("n-2", status="TRADE_FINISHED"),
    "wrong_amount": note("n-3", amount=1),
    "refund_40": refund("rn-2", "r-2", 40),
    "refund_150": refund("rn-3", "r-3", 150),
    "close": close("c-9"),
    "tick": tick(LATER),
    "other_account": note("x-1", account="other"),
    "second_charge": note("n-4", trade_no="t-2"),
    "reshaped_copy": note("n-1", amount=5),  # n-1 paid the order in the paid states
}

P, R, C, A = "paid", "refunded", "closed", "anomaly"
KIND = {OrderPaid: P, OrderRefunded: R, OrderClosed: C, Anomaly: A}

# (state, input) -> (new status, kinds emitted, reason)
EXPECTED: dict[tuple[str, str], tuple[str, tuple[str, ...], str]] = {
    ("none", "order"): ("created", (), "order_recorded"),
    ("none", "conflicting_order"): ("created", (), "order_recorded"),
    ("none", "payment"): ("awaiting_order", (), "awaiting_order"),
    ("none", "wrong_amount"): ("awaiting_order", (), "awaiting_order"),
    ("none", "refund_40"): ("awaiting_order", (), "awaiting_order"),
    ("none", "refund_150"): ("awaiting_order", (), "awaiting_order"),
    ("none", "close"): ("awaiting_order", (), "awaiting_order"),
    ("none", "tick"): ("awaiting_order", (), "nothing_due"),
    ("none", "other_account"): ("awaiting_order", (), "awaiting_order"),
    ("none", "second_charge"): ("awaiting_order", (), "awaiting_order"),
    ("none", "reshaped_copy"): ("awaiting_order", (), "awaiting_order"),
    ("awaiting_order", "order"): ("paid", (P,), "order_recorded"),
    ("awaiting_order", "conflicting_order"): ("created", (A,), "order_recorded"),
    ("awaiting_order", "payment"): ("awaiting_order", (), "awaiting_order"),
    ("awaiting_order", "wrong_amount"): ("awaiting_order", (), "awaiting_order"),
    ("awaiting_order", "refund_40"): ("awaiting_order", (), "awaiting_order"),
    ("awaiting_order", "refund_150"): ("awaiting_order", (), "awaiting_order"),
    ("awaiting_order", "close"): ("awaiting_order", (), "awaiting_order"),
    ("awaiting_order", "tick"): ("awaiting_order", (A,), "timed_out"),
    ("awaiting_order", "other_account"): ("awaiting_order", (), "awaiting_order"),
    ("awaiting_order", "second_charge"): ("awaiting_order", (), "awaiting_order"),
    ("awaiting_order", "reshaped_copy"): ("awaiting_order", (), "awaiting_order"),
    ("created", "order"): ("created", (), "duplicate_order"),
    ("created", "conflicting_order"): ("created", (A,), "order_conflict"),
    ("created", "payment"): ("paid", (P,), "paid"),
    ("created", "wrong_amount"): ("created", (A,), "amount_mismatch"),
    ("created", "refund_40"): ("created", (), "refund_before_payment"),
    ("created", "refund_150"): ("created", (), "refund_before_payment"),
    ("created", "close"): ("closed", (C,), "closed"),
    ("created", "tick"): ("created", (), "nothing_due"),
    ("created", "other_account"): ("created", (A,), "account_mismatch"),
    ("created", "second_charge"): ("paid", (P,), "paid"),
    ("created", "reshaped_copy"): ("created", (A,), "amount_mismatch"),
    ("paid", "order"): ("paid", (), "duplicate_order"),
    ("paid", "conflicting_order"): ("paid", (A,), "order_conflict"),
    ("paid", "payment"): ("paid", (), "already_paid"),
    ("paid", "wrong_amount"): ("paid", (A,), "amount_mismatch"),
    ("paid", "refund_40"): ("partially_refunded", (R,), "partially_refunded"),
    ("paid", "refund_150"): ("paid", (A,), "refund_exceeds"),
    ("paid", "close"): ("paid", (), "closed_after_payment"),
    ("paid", "tick"): ("paid", (), "nothing_due"),
    ("paid", "other_account"): ("paid", (A,), "account_mismatch"),
    ("paid", "second_charge"): ("paid", (A,), "duplicate_payment"),
    ("paid", "reshaped_copy"): ("paid", (A,), "notify_id_conflict"),
    ("partially_refunded", "order"): ("partially_refunded", (), "duplicate_order"),
    ("partially_refunded", "conflicting_order"): ("partially_refunded", (A,), "order_conflict"),
    ("partially_refunded", "payment"): ("partially_refunded", (), "already_paid"),
    ("partially_refunded", "wrong_amount"): ("partially_refunded", (A,), "amount_mismatch"),
    ("partially_refunded", "refund_40"): ("partially_refunded", (R,), "partially_refunded"),
    ("partially_refunded", "refund_150"): ("partially_refunded", (A,), "refund_exceeds"),
    ("partially_refunded", "close"): ("partially_refunded", (), "closed_after_payment"),
    ("partially_refunded", "tick"): ("partially_refunded", (), "nothing_due"),
    ("partially_refunded", "other_account"): ("partially_refunded", (A,), "account_mismatch"),
    ("partially_refunded", "second_charge"): ("partially_refunded", (A,), "duplicate_payment"),
    ("partially_refunded", "reshaped_copy"): ("partially_refunded", (A,), "notify_id_conflict"),
    ("refunded", "order"): ("refunded", (), "duplicate_order"),
    ("refunded", "conflicting_order"): ("refunded", (A,), "order_conflict"),
    ("refunded", "payment"): ("refunded", (), "already_paid"),
    ("refunded", "wrong_amount"): ("refunded", (A,), "amount_mismatch"),
    ("refunded", "refund_40"): ("refunded", (A,), "refund_exceeds"),
    ("refunded", "refund_150"): ("refunded", (A,), "refund_exceeds"),
    ("refunded", "close"): ("refunded", (), "closed_after_payment"),
    ("refunded", "tick"): ("refunded", (), "nothing_due"),
    ("refunded", "other_account"): ("refunded", (A,), "account_mismatch"),
    ("refunded", "second_charge"): ("refunded", (A,), "duplicate_payment"),
    ("refunded", "reshaped_copy"): ("refunded", (A,), "notify_id_conflict"),
    ("closed", "order"): ("closed", (), "duplicate_order"),
    ("closed", "conflicting_order"): ("closed", (A,), "order_conflict"),
    ("closed", "payment"): ("paid", (P, A), "paid"),
    ("closed", "wrong_amount"): ("closed", (A,), "amount_mismatch"),
    ("closed", "refund_40"): ("closed", (), "refund_before_payment"),
    ("closed", "refund_150"): ("closed", (), "refund_before_payment"),
    ("closed", "close"): ("closed", (), "already_closed"),
    ("closed", "tick"): ("closed", (), "nothing_due"),
    ("closed", "other_account"): ("closed", (A,), "account_mismatch"),
    ("closed", "second_charge"): ("paid", (P, A), "paid"),
    ("closed", "reshaped_copy"): ("closed", (A,), "amount_mismatch"),
    ("paid_then_closed", "order"): ("paid", (), "duplicate_order"),
    ("paid_then_closed", "conflicting_order"): ("paid", (A,), "order_conflict"),
    ("paid_then_closed", "payment"): ("paid", (), "already_paid"),
    ("paid_then_closed", "wrong_amount"): ("paid", (A,), "amount_mismatch"),
    ("paid_then_closed", "refund_40"): ("partially_refunded", (R,), "partially_refunded"),
    ("paid_then_closed", "refund_150"): ("paid", (A,), "refund_exceeds"),
    ("paid_then_closed", "close"): ("paid", (), "already_closed"),
    ("paid_then_closed", "tick"): ("paid", (A,), "timed_out"),
    ("paid_then_closed", "other_account"): ("paid", (A,), "account_mismatch"),
    ("paid_then_closed", "second_charge"): ("paid", (A,), "duplicate_payment"),
    ("paid_then_closed", "reshaped_copy"): ("paid", (A,), "notify_id_conflict"),
}


def test_expected_covers_every_state_and_input() -> None:
    assert set(EXPECTED) == {(s, i) for s in STATES for i in INPUTS}


@pytest.mark.parametrize(("state_name", "input_name"), sorted(EXPECTED))
def test_apply_every_state_and_input(state_name: str, input_name: str) -> None:
    before, _ = run(*STATES[state_name])
    step = apply(before, INPUTS[input_name])
    assert step.state is not None
    kinds = tuple(KIND[type(out)] for out in step.emit)
    assert (step.state.status, kinds, step.reason) == EXPECTED[(state_name, input_name)]


@pytest.mark.parametrize("state_name", [s for s in STATES if s not in ("none", "created")])
def test_apply_seen_notify_id_again_changes_nothing(state_name: str) -> None:
    history = STATES[state_name]
    seen = [item for item in history if item is not ORDER]
    before, _ = final(*history)
    step = apply(before, seen[-1])
    assert (step.emit, step.reason) == ((), "duplicate")
    assert step.state is not None and step.state.status == before.status


def test_apply_payment_emits_one_paid_with_deterministic_id() -> None:
    _state, steps = final(ORDER, note())
    [paid] = emitted(steps)
    assert isinstance(paid, OrderPaid)
    assert paid.event_id == event_id("shop", "o-1", "paid")
    assert (paid.amount_minor, paid.notify_id, paid.type) == (100, "n-1", "order.paid")


def test_apply_refunds_carry_amount_and_total_and_deterministic_id() -> None:
    _, steps = final(ORDER, note(), refund("rn-1", "r-1", 30), refund("rn-2", "r-2", 70))
    first, second = (o for o in emitted(steps) if isinstance(o, OrderRefunded))
    assert (first.amount_minor, first.refunded_total_minor) == (30, 30)
    assert (second.amount_minor, second.refunded_total_minor) == (70, 100)
    assert second.event_id == event_id("shop", "o-1", "refund:r-2")


def test_apply_alipay_cumulative_totals_become_per_refund_amounts() -> None:
    state, steps = final(
        ORDER, note(), alipay_refund("an-1", "b-1", 30), alipay_refund("an-2", "b-2", 100)
    )
    amounts = [o.amount_minor for o in emitted(steps) if isinstance(o, OrderRefunded)]
    assert amounts == [30, 70] and state.status == "refunded"


def test_apply_alipay_older_total_late_adds_nothing() -> None:
    state, steps = final(
        ORDER, note(), alipay_refund("an-2", "b-2", 50), alipay_refund("an-1", "b-1", 30)
    )
    events = [o for o in emitted(steps) if isinstance(o, OrderRefunded)]
    assert [(e.refund_id, e.amount_minor) for e in events] == [("b-2", 50), ("b-1", 0)]
    assert state.refunded_minor == 50


def test_apply_same_refund_id_in_a_new_notification_is_one_refund() -> None:
    _, steps = final(ORDER, note(), refund("rn-1", "r-1", 30), refund("rn-9", "r-1", 30))
    assert steps[-1].reason == "duplicate_refund" and steps[-1].emit == ()


def test_apply_refund_before_payment_applies_once_paid() -> None:
    state, steps = final(ORDER, refund("rn-1", "r-1", 30), note())
    kinds = [type(o) for o in emitted(steps)]
    assert kinds == [OrderPaid, OrderRefunded] and state.pending == ()


def test_apply_everything_before_order_applies_payment_first() -> None:
    state, steps = final(alipay_refund("an-1", "b-1", 30), close(), note(), ORDER)
    kinds = [type(o) for o in emitted(steps)]
    assert kinds == [OrderPaid, OrderRefunded] and state.status == "partially_refunded"


def test_apply_failed_refund_is_an_anomaly() -> None:
    failed = replace(refund("rn-1", "r-1", 30), status="ABNORMAL", succeeded=False)
    state, steps = final(ORDER, note(), failed)
    assert steps[-1].reason == "refund_failed" and state.refunded_minor == 0


def test_apply_refund_without_amount_is_an_anomaly() -> None:
    state, steps = final(ORDER, note(), note("rn-1", kind="refund", refund_id="r-1"))
    assert steps[-1].reason == "refund_amount_missing" and state.status == "paid"


def test_apply_refund_in_other_currency_is_an_anomaly() -> None:
    other = replace(refund("rn-1", "r-1", 30), currency="USD")
    _, steps = final(ORDER, note(), other)
    assert steps[-1].reason == "currency_mismatch"


def test_tick_reports_a_waiting_notification_once() -> None:
    state, steps = final(note("n-0"), tick(LATER), tick(LATER))
    assert [s.reason for s in steps[1:]] == ["timed_out", "nothing_due"]
    [anomaly] = emitted(steps)
    assert isinstance(anomaly, Anomaly) and anomaly.reason == "order_missing"
    assert state.pending == (note("n-0"),)


def test_tick_before_the_timeout_reports_nothing() -> None:
    _, steps = final(note("n-0"), tick("2026-11-26T02:30:00+00:00"))
    assert steps[-1].reason == "nothing_due"


def test_order_after_timeout_still_pays() -> None:
    state, steps = final(note("n-0"), tick(LATER), ORDER)
    assert state.status == "paid" and isinstance(steps[-1].emit[0], OrderPaid)


def test_tick_reports_refund_waiting_for_payment() -> None:
    _, steps = final(ORDER, refund("rn-1", "r-1", 30), tick(LATER))
    [anomaly] = steps[-1].emit
    assert isinstance(anomaly, Anomaly) and anomaly.reason == "payment_missing"


@pytest.mark.parametrize("name", ["closed", "refunded", "awaiting_order"])
def test_tick_after_retention_forgets_a_terminal_order(name: str) -> None:
    history = [*STATES[name], tick(LATER)]
    state, steps = run(*history, tick("2027-01-01T00:00:00+00:00"))
    assert (state, steps[-1].reason) == (None, "expired")


@pytest.mark.parametrize("name", ["created", "paid", "partially_refunded"])
def test_tick_after_retention_keeps_an_open_order(name: str) -> None:
    state, steps = run(*STATES[name], tick("2027-01-01T00:00:00+00:00"))
    assert state is not None and steps[-1].reason == "nothing_due"


def test_tick_with_unreadable_time_changes_nothing() -> None:
    _, steps = final(ORDER, tick("yesterday"))
    assert steps[-1].reason == "tick_unreadable"


def test_apply_pending_is_bounded() -> None:
    state, steps = final(*(note(f"n-{i}") for i in range(MAX_PENDING + 1)))
    assert len(state.pending) == MAX_PENDING and steps[-1].reason == "pending_overflow"


def test_apply_seen_is_bounded() -> None:
    state, _ = final(ORDER, *(note(f"n-{i}", amount=1) for i in range(MAX_SEEN + 10)))
    assert len(state.seen) == MAX_SEEN


@pytest.mark.parametrize("name", sorted(STATES))
def test_state_roundtrips_through_its_stored_form(name: str) -> None:
    state, _ = run(*STATES[name], note("n-7", amount=5))
    assert state is not None and state_from_dict(state_to_dict(state)) == state


def test_stored_waiting_refund_from_before_succeeded_keeps_its_failure() -> None:
    """A notification stored in a state before ``succeeded`` existed: WeChat Pay's failed refund
    statuses still read as failed, anything else as succeeded."""
    waiting = [replace(refund(f"rn-{s}", f"r-{s}", 30), status=s) for s in ("ABNORMAL", "SUCCESS")]
    stored = state_to_dict(evolve(final(ORDER)[0], pending=tuple(waiting)))
    for note_data in stored["pending"]:
        del note_data["succeeded"]
    assert [n.succeeded for n in state_from_dict(stored).pending] == [False, True]


def test_state_from_before_refunds_still_loads() -> None:
    old = {"order": None, "status": "awaiting_order", "seen": ["n-1"], "pending": []}
    assert state_from_dict(old).seen == (("", "n-1", ""),)


@pytest.mark.parametrize("name", sorted(STATES))
def test_evolve_is_dataclasses_replace(name: str) -> None:
    state, _ = run(*STATES[name], note("n-7", amount=5))
    assert state is not None
    changes = {"status": "paid", "paid_minor": 7, "reported": ("n-7",), "touched_at": RECEIVED}
    assert evolve(state, **changes) == replace(state, **changes)
    assert evolve(state) == state


EVENTS = (OrderPaid, OrderRefunded, OrderClosed)


@pytest.mark.parametrize(
    "inputs",
    [
        (ORDER, note(), refund("rn-1", "r-1", 30), refund("rn-2", "r-2", 70)),
        (refund("rn-1", "r-1", 30), note(), ORDER, refund("rn-2", "r-2", 70)),
        (alipay_refund("an-2", "b-2", 50), ORDER, note(), alipay_refund("an-1", "b-1", 30)),
        (ORDER, close(), note()),
    ],
    ids=["in_order", "drained", "late_total", "paid_after_close"],
)
def test_every_event_carries_the_status_after_it_and_the_next_version(
    inputs: tuple[Input, ...],
) -> None:
    """Versions count the order's events 1, 2, 3, ... (also several out of one input); each
    event's status is the state's right after it, and the last one is the state's."""
    state, steps = final(*inputs)
    events = [o for o in emitted(steps) if isinstance(o, EVENTS)]
    assert [e.version for e in events] == list(range(1, len(events) + 1))
    assert (events[-1].status, events[-1].version) == (state.status, state.version)
    for event in events:
        assert type(event).from_bytes(event.to_bytes()) == event  # the contract checks them


def test_payment_after_unpaid_close_is_paid_and_reported() -> None:
    state, steps = final(ORDER, close(), note())
    closed, paid, anomaly = emitted(steps)
    assert isinstance(closed, OrderClosed) and isinstance(paid, OrderPaid)
    assert [(closed.status, closed.version), (paid.status, paid.version)] == [
        ("closed", 1),
        ("paid", 2),
    ]
    assert isinstance(anomaly, Anomaly) and anomaly.reason == "paid_after_close"
    assert state.status == "paid"


def test_duplicates_and_anomalies_leave_the_version() -> None:
    state, _ = final(ORDER, note(), note(), replace(note("n-2"), amount_minor=5))
    assert state.version == 1


def decisions(steps: list[Transition]) -> list[tuple[str, str]]:
    return [(n.notify_id, reason) for step in steps for n, reason in step.decided]


def test_decisions_follow_a_notification_from_waiting_to_applied() -> None:
    _, steps = run(note("n-1"), refund("rn-1", "r-1", 30), note("n-1"), ORDER)
    assert decisions(steps) == [
        ("n-1", "awaiting_order"),
        ("rn-1", "awaiting_order"),
        # the exact copy of n-1 decides nothing new
        ("n-1", "paid"),  # the order applies what waited: payment first, then the refund
        ("rn-1", "partially_refunded"),
    ]


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        ((ORDER, note("n-1", account="other")), [("n-1", "account_mismatch")]),
        ((ORDER, note("n-1", amount=99)), [("n-1", "amount_mismatch")]),
        ((ORDER, note("n-1"), note("n-2")), [("n-1", "paid"), ("n-2", "already_paid")]),
        (
            (ORDER, note("n-1"), note("n-2", trade_no="t-2")),
            [("n-1", "paid"), ("n-2", "duplicate_payment")],
        ),
        ((ORDER, refund("rn-1", "r-1", 30)), [("rn-1", "refund_before_payment")]),
        ((note("n-1"), tick(LATER)), [("n-1", "awaiting_order"), ("n-1", "order_missing")]),
        ((ORDER, note("n-1"), note("n-1", amount=50)), [("n-1", "paid")]),  # conflict: anomaly
        ((ORDER, tick(LATER)), []),
    ],
)
def test_decisions_name_the_reason_of_each_notification(
    inputs: tuple[Input, ...], expected: list[tuple[str, str]]
) -> None:
    _, steps = run(*inputs)
    assert decisions(steps) == expected
