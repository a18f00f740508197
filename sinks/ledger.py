"""How the facts about one order fold into its row: a pure function, no I/O.

Statuses only move forward, along ``created < paid < partially_refunded < refunded < closed``;
the status of an order is the latest one its facts imply, so the order in which the facts arrive
does not matter:

- a payment implies ``paid`` (only from ``created``: any later status stays);
- refunds are applied once the payment is known (its amount is the ceiling), smallest refund id
  first; the sum of applied refunds implies ``partially_refunded`` or ``refunded``; a refund that
  would take the sum above the paid amount is rejected (an anomaly, never applied);
- a close implies ``closed``, the last status (``order-closed`` means "closed unpaid": a close of a
  paid order is kept, and reported as a ``paid_and_closed`` anomaly).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

STATUS_RANK = {"created": 0, "paid": 1, "partially_refunded": 2, "refunded": 3, "closed": 4}


def later(current: str, implied: str) -> str:
    """Return whichever of two statuses comes later; a status never moves back."""
    return implied if STATUS_RANK[implied] > STATUS_RANK[current] else current


@dataclass(frozen=True, slots=True)
class Ledger:
    """What the ``orders`` row knows about one order's money."""

    status: str
    amount_minor: int
    refunded_minor: int
    paid: bool
    closed: bool


@dataclass(frozen=True, slots=True)
class Settlement:
    """The row after the pending facts, and what became of each pending refund."""

    ledger: Ledger
    applied: tuple[str, ...] = ()
    rejected: tuple[str, ...] = ()
    closed_now: bool = False

    @property
    def paid_and_closed(self) -> bool:
        """Whether the order is both paid and closed (reported once as an anomaly)."""
        return self.ledger.paid and self.ledger.closed


def settle(ledger: Ledger, refunds: Iterable[tuple[str, int]], close: bool) -> Settlement:
    """Apply pending refunds ``(refund_id, amount_minor)`` and, if ``close``, the close."""
    applied: list[str] = []
    rejected: list[str] = []
    if ledger.paid:
        for refund_id, amount in sorted(refunds):
            total = ledger.refunded_minor + amount
            if amount <= 0 or total > ledger.amount_minor:
                rejected.append(refund_id)
                continue
            applied.append(refund_id)
            implied = "refunded" if total >= ledger.amount_minor else "partially_refunded"
            ledger = replace(ledger, refunded_minor=total, status=later(ledger.status, implied))
    closed_now = close and not ledger.closed
    if closed_now:
        ledger = replace(ledger, closed=True, status=later(ledger.status, "closed"))
    return Settlement(ledger, tuple(applied), tuple(rejected), closed_now)
