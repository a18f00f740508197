from __future__ import annotations

import itertools

from sinks.ledger import STATUS_RANK, Ledger, later, settle

PAID = Ledger("paid", 100, 0, paid=True, closed=False)


def test_later_never_moves_back() -> None:
    for a, b in itertools.product(STATUS_RANK, repeat=2):
        assert STATUS_RANK[later(a, b)] == max(STATUS_RANK[a], STATUS_RANK[b])


def test_settle_unpaid_order_keeps_refunds_pending() -> None:
    created = Ledger("created", 100, 0, paid=False, closed=False)
    done = settle(created, [("r1", 10)], close=False)
    assert (done.ledger, done.applied, done.rejected) == (created, (), ())


def test_settle_refunds_partial_then_full() -> None:
    done = settle(PAID, [("r2", 60), ("r1", 40)], close=False)
    assert done.applied == ("r1", "r2")
    assert (done.ledger.status, done.ledger.refunded_minor) == ("refunded", 100)


def test_settle_refund_above_paid_rejected() -> None:
    done = settle(PAID, [("r1", 70), ("r2", 40), ("r3", 0)], close=False)
    assert (done.applied, done.rejected) == (("r1",), ("r2", "r3"))
    assert (done.ledger.status, done.ledger.refunded_minor) == ("partially_refunded", 70)


def test_settle_close_of_paid_order_is_closed_and_flagged() -> None:
    done = settle(PAID, [], close=True)
    assert (done.ledger.status, done.closed_now, done.paid_and_closed) == ("closed", True, True)
    again = settle(done.ledger, [], close=True)
    assert not again.closed_now
