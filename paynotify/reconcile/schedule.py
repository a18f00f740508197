"""When to ask a provider about an unpaid order: a stateless schedule from the order's age.

An order created at ``created_at`` is queried at the ages ``after``, ``2·after``, ``4·after``, ...
(each gap at most ``MAX_GAP_S``), and one last time at its deadline, ``after + horizon`` (the
provider's webhook retry horizon: past it, no notification will come). Nothing is remembered per
order: a round at time ``now`` queries the orders one of whose attempt ages falls since the
previous round, so a restarted reconciler (no previous round) queries every open order once and
then follows the schedule; so does an order seen for the first time (the sink wrote it late), so
that its deadline is not missed. Pure: the caller passes the ages.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_GAP_S = 2 * 3600.0
# A reconciler started this long after an order's deadline leaves it alone (older orders were
# settled, or reported ``unconfirmed``, by an earlier run).
GRACE_S = 86400.0


@dataclass(frozen=True, slots=True)
class Schedule:
    """The attempt ages of one account: first at ``after_s``, doubling, last at the deadline."""

    after_s: float
    horizon_s: float
    max_gap_s: float = MAX_GAP_S

    @property
    def deadline_s(self) -> float:
        """Return the age of the last attempt, after which an unpaid order is ``unconfirmed``."""
        return self.after_s + self.horizon_s

    def attempts(self) -> list[float]:
        """Return every attempt age, in order, the deadline last."""
        ages = [self.after_s]
        while ages[-1] < self.deadline_s:
            ages.append(min(ages[-1] + min(ages[-1], self.max_gap_s), self.deadline_s))
        return ages

    def due(self, age_s: float, previous_age_s: float | None) -> bool:
        """Return whether an attempt falls in (previous_age_s, age_s]; with no previous round,
        whether the order is old enough and not past its deadline by more than ``GRACE_S``."""
        if previous_age_s is None:
            return self.after_s <= age_s <= self.deadline_s + GRACE_S
        return any(previous_age_s < at <= age_s for at in self.attempts())

    def final(self, age_s: float, previous_age_s: float | None) -> bool:
        """Return whether this round makes the last attempt (the deadline is in its window)."""
        if previous_age_s is None:
            return self.deadline_s <= age_s <= self.deadline_s + GRACE_S
        return previous_age_s < self.deadline_s <= age_s
