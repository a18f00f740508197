"""Accounts are isolated, reshaped copies and double charges are reported: the (state, input)
pairs of issue 12 beyond the table in test_transitions.py."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace

from stream.records import Anomaly, OrderPaid
from stream.transitions import MAX_PENDING, MAX_SEEN, apply, state_from_dict, state_to_dict
from tests.unit.stream.cases import ORDER, emitted, final, note, refund

OTHER = "other"


def reasons(outs: list[object]) -> list[str]:
    return [getattr(o, "reason", type(o).__name__) for o in outs]


def test_apply_other_account_before_order_is_reported_when_the_order_arrives() -> None:
    state, steps = final(note("x-1", account=OTHER), ORDER, note())
    assert reasons(emitted(steps)) == ["account_mismatch", "OrderPaid"]
    assert state.pending == () and all(entry[0] == "shop" for entry in state.seen)


def test_apply_other_account_after_order_remembers_nothing() -> None:
    before, _ = final(ORDER, note())
    first = apply(before, note("x-1", account=OTHER))
    again = apply(first.state, note("x-1", account=OTHER))
    assert first.state == before and again.state == before
    assert reasons(list(first.emit)) == ["account_mismatch"]
    assert first.emit == again.emit  # the same anomaly id: recognised downstream


def test_apply_other_account_cannot_fill_the_pending_queue() -> None:
    flood = [note(f"x-{i}", account=OTHER) for i in range(MAX_PENDING + 5)]
    _, steps = final(*flood, note())
    assert steps[-1].reason == "awaiting_order"
    assert reasons(emitted(steps)) == ["pending_overflow"] * 5
    state, steps = final(*flood, note(), ORDER)
    assert state.status == "paid" and state.pending == ()
    assert reasons(list(steps[-1].emit)).count("account_mismatch") == MAX_PENDING
    assert sum(isinstance(o, OrderPaid) for o in steps[-1].emit) == 1


def test_apply_other_account_cannot_claim_a_notify_id() -> None:
    _, steps = final(note("n-1", account=OTHER, amount=1), note("n-1"), ORDER)
    assert [s.reason for s in steps] == ["awaiting_order", "awaiting_order", "order_recorded"]
    paid = [o for o in emitted(steps) if isinstance(o, OrderPaid)]
    assert [(p.account, p.notify_id, p.amount_minor) for p in paid] == [("shop", "n-1", 100)]
    assert sorted(reasons(emitted(steps))) == ["OrderPaid", "account_mismatch"]


def test_apply_other_account_cannot_evict_what_an_account_has_seen() -> None:
    flood = [note(f"x-{i}", account=OTHER) for i in range(MAX_SEEN + 10)]
    state, steps = final(note("n-1"), *flood, note("n-1"))
    assert steps[-1].reason == "duplicate"
    # only what waits is remembered: the other account's entries are bounded by its queue
    assert sum(1 for entry in state.seen if entry[0] == OTHER) == MAX_PENDING


def test_apply_seen_is_bounded_per_account() -> None:
    own = [note(f"n-{i}", amount=1) for i in range(MAX_SEEN + 10)]
    state, steps = final(note("x-1", account=OTHER), ORDER, *own, own[-1], own[0])
    assert [s.reason for s in steps[-2:]] == ["duplicate", "amount_mismatch"]  # n-0 forgotten
    assert len(state.seen) == MAX_SEEN


def test_apply_overflowing_notification_is_not_remembered_and_applies_when_retried() -> None:
    early = [refund(f"rn-{i}", f"r-{i}", 1) for i in range(MAX_PENDING)]
    state, steps = final(*early, note())
    assert steps[-1].reason == "pending_overflow"
    state, steps = final(*early, note(), ORDER, note())
    assert steps[-1].reason == "paid" and state.refunded_minor == MAX_PENDING


def test_apply_retry_with_other_times_and_body_is_a_duplicate() -> None:
    retry = replace(note(), received_at=ORDER.created_at, occurred_at=None, raw_body_b64="eA==")
    _, steps = final(ORDER, note(), retry)
    assert (steps[-1].reason, steps[-1].emit) == ("duplicate", ())


def test_apply_reshaped_copy_is_reported_never_applied() -> None:
    copies = [
        note("n-1", amount=5),
        note("n-1", status="TRADE_CLOSED"),
        note("n-1", trade_no="t-9"),
        note("n-1", kind="refund", refund_id="r-1", refund_amount=100),
        note("n-1", currency="USD"),
    ]
    for copy in copies:
        state, steps = final(ORDER, note(), copy, copy)
        assert [s.reason for s in steps[2:]] == ["notify_id_conflict"] * 2
        assert steps[2].emit == steps[3].emit  # the same copy again: the same anomaly id
        assert state.status == "paid" and state.refunded_minor == 0
    ids = {final(ORDER, note(), c)[1][-1].emit[0].anomaly_id for c in copies}  # type: ignore[union-attr]
    assert len(ids) == len(copies)


def test_apply_reshaped_copy_while_waiting_keeps_the_first() -> None:
    state, steps = final(note("n-1"), note("n-1", amount=1), ORDER)
    assert reasons(emitted(steps)) == ["notify_id_conflict", "OrderPaid"]
    assert state.paid_minor == 100


def test_apply_second_payment_of_the_same_trade_is_already_paid() -> None:
    _, steps = final(ORDER, note("n-1"), note("n-2", status="TRADE_FINISHED"))
    assert (steps[-1].reason, steps[-1].emit) == ("already_paid", ())


def test_apply_double_charge_is_reported_and_the_order_paid_once_in_any_order() -> None:
    inputs = [ORDER, note("n-1"), note("n-2", trade_no="t-2"), refund("rn-1", "r-1", 100)]
    for order in itertools.permutations(inputs):
        state, steps = final(*order)
        outs = emitted(steps)
        assert sum(isinstance(o, OrderPaid) for o in outs) == 1
        dup = [o for o in outs if isinstance(o, Anomaly) and o.reason == "duplicate_payment"]
        assert len(dup) == 1 and state.status == "refunded"
        paid = next(o for o in outs if isinstance(o, OrderPaid))
        assert dup[0].notify_id != paid.notify_id and state.paid_trade_no == paid.provider_trade_no


def test_state_roundtrips_through_json() -> None:
    state, _ = final(note("x-1", account=OTHER), note("n-0"), ORDER, note("n-1", trade_no="t-2"))
    assert state_from_dict(json.loads(json.dumps(state_to_dict(state)))) == state


def test_state_stored_before_accounts_were_remembered_still_works() -> None:
    old = {
        "order": json.loads(ORDER.to_bytes()),
        "status": "paid",
        "seen": ["n-1", "x-1"],
        "pending": [],
        "paid_notify_id": "n-1",
        "paid_minor": 100,
        "refunds": [],
        "refunded_minor": 0,
        "closed_notify_id": None,
        "reported": [],
        "touched_at": "2026-11-26T02:00:02+00:00",
    }
    state = state_from_dict(old)
    assert apply(state, note("n-1", amount=5)).reason == "duplicate"  # no digest to compare
    assert apply(state, note("n-2", trade_no="t-2")).reason == "already_paid"  # trade unknown
    assert apply(state, note("x-1", account=OTHER)).reason == "account_mismatch"
    new = apply(state, refund("rn-1", "r-1", 40)).state
    assert new is not None and state_from_dict(state_to_dict(new)) == new
