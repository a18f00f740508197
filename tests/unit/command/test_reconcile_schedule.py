"""The reconciler's stateless schedule: doubling attempts, capped gaps, last at the deadline."""

from __future__ import annotations

import itertools

from paynotify.reconcile.schedule import GRACE_S, Schedule


def test_attempts_double_then_cap_and_end_at_the_deadline() -> None:
    ages = Schedule(after_s=300, horizon_s=25 * 3600).attempts()
    assert ages[:6] == [300, 600, 1200, 2400, 4800, 9600]
    assert all(b - a <= 2 * 3600 for a, b in itertools.pairwise(ages))
    assert ages[-1] == 300 + 25 * 3600 and len(ages) < 24


def test_due_when_an_attempt_falls_since_the_previous_round() -> None:
    schedule = Schedule(after_s=10, horizon_s=100)
    assert schedule.due(20.5, 19.5)
    assert not schedule.due(25, 21)
    assert not schedule.due(9, 8)


def test_restarted_reconciler_queries_every_open_order_once() -> None:
    schedule = Schedule(after_s=10, horizon_s=100)
    assert schedule.due(55, None) and not schedule.due(5, None)
    assert not schedule.due(110 + GRACE_S + 1, None)


def test_final_only_in_the_round_that_crosses_the_deadline() -> None:
    schedule = Schedule(after_s=10, horizon_s=100)
    assert schedule.final(110.2, 109.9) and schedule.due(110.2, 109.9)
    assert not schedule.final(111, 110.2) and not schedule.final(109, 108)
    assert schedule.final(200, None)
