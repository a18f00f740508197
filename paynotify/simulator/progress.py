"""A one-line progress bar on stderr (redrawn on a terminal, a line per tenth otherwise)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from paynotify.simulator.plan import Plan
from paynotify.simulator.report import Report, Tally

WIDTH = 30


def planned_copies(plan: Plan) -> int:
    """Return how many copies the plan delivers (each ends acknowledged, rejected or given up)."""
    return sum(d.copies for o in plan.orders for m in o.messages for d in m.deliveries)


def finished(total: Tally) -> int:
    """Return the deliveries that came to an end."""
    judged = total.forged_rejected + total.forged_accepted
    judged += total.tampered_rejected + total.tampered_accepted
    return total.acknowledged + total.gave_up + judged


class ProgressBar:
    """Draw ``[####......] done/total`` with the acknowledged, retried and rejected counts."""

    def __init__(self, total: int, stream: TextIO = sys.stderr, every_s: float = 0.1) -> None:
        self.total = max(total, 1)
        self.stream = stream
        self.tty = stream.isatty()
        self.every_s = every_s if self.tty else 5.0
        self.started = time.monotonic()
        self.last = 0.0
        self.last_tenth = -1

    def __call__(self, report: Report) -> None:
        now = time.monotonic()
        tenth = 10 * finished(report.total()) // self.total
        if tenth == self.last_tenth and now - self.last < self.every_s:
            return
        self.last, self.last_tenth = now, tenth
        self._draw(report, end="\r" if self.tty else "\n")

    def close(self, report: Report) -> None:
        """Draw the final state and end the line."""
        self._draw(report, end="\n")

    def _draw(self, report: Report, end: str) -> None:
        total = report.total()
        done = finished(total)
        filled = WIDTH * done // self.total
        bar = "#" * filled + "." * (WIDTH - filled)
        rejected = total.forged_rejected + total.tampered_rejected
        text = (
            f"[{bar}] {done}/{self.total} delivered, {total.acknowledged} acked, "
            f"{total.retried} retried, {total.gave_up} gave up, {rejected} forged/tampered "
            f"rejected, {time.monotonic() - self.started:.1f}s"
        )
        self.stream.write(text + end)
        self.stream.flush()
