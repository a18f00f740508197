"""What a simulation sent and how it was answered, per provider; the summary table and JSON."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from paynotify.simulator.plan import PROVIDERS, Plan
from stream.records import CLOSED, CREATED, PAID, PARTIALLY_REFUNDED, REFUNDED


@dataclass
class Tally:
    """One provider's counts. A delivery is one copy of a notification arriving, retried until
    the provider hears its success form or its schedule runs out."""

    notifications: int = 0  # planned notifications (copies share one)
    lost: int = 0  # payments whose every webhook is lost: reconciliation must recover them
    deliveries: int = 0  # copies delivered: first deliveries, redeliveries, burst copies
    requests: int = 0  # HTTP requests, retries included
    acknowledged: int = 0  # genuine deliveries answered with the provider's success form
    retried: int = 0  # requests that were retries
    gave_up: int = 0  # genuine deliveries never acknowledged before the schedule ran out
    forged_rejected: int = 0
    forged_accepted: int = 0  # a defect: a forged request got the success form
    tampered_rejected: int = 0
    tampered_accepted: int = 0  # a defect
    answers: Counter[str] = field(default_factory=Counter)

    @property
    def duplicates(self) -> int:
        """Return the copies beyond one per notification."""
        return self.deliveries - self.notifications


@dataclass
class Report:
    """The outcome of ``simulate``."""

    plan: Plan
    tallies: dict[str, Tally] = field(default_factory=dict)
    elapsed_s: float = 0.0

    def tally(self, provider: str) -> Tally:
        return self.tallies.setdefault(provider, Tally())

    def total(self) -> Tally:
        """Return the sum over providers."""
        out = Tally()
        for tally in self.tallies.values():
            for name, value in vars(tally).items():
                if name == "answers":
                    out.answers.update(value)
                else:
                    setattr(out, name, getattr(out, name) + value)
        return out

    @property
    def defects(self) -> int:
        """Return forged or tampered requests that were accepted."""
        total = self.total()
        return total.forged_accepted + total.tampered_accepted

    def to_json(self) -> dict[str, Any]:
        """Return the summary and every order's expected end state as plain JSON values."""
        tallies = {p: _tally_json(t) for p, t in sorted(self.tallies.items())}
        return {
            "options": asdict(self.plan.options),
            "elapsed_s": round(self.elapsed_s, 3),
            "providers": tallies,
            "total": _tally_json(self.total()),
            "expected": dict(expected_counts(self.plan)),
            "orders": [
                {
                    "out_trade_no": o.out_trade_no,
                    "provider": o.provider,
                    "account": o.account,
                    "amount_minor": o.amount_minor,
                    "currency": o.currency,
                    "scenario": list(o.scenario),
                    "expected": asdict(o.expected),
                }
                for o in self.plan.orders
            ],
        }

    def write_json(self, path: Path, extra: dict[str, Any] | None = None) -> None:
        """Write ``to_json()`` (plus ``extra``, e.g. the verification) to ``path``."""
        path.write_text(json.dumps({**self.to_json(), **(extra or {})}, indent=2) + "\n")


def _tally_json(tally: Tally) -> dict[str, Any]:
    values = {k: v for k, v in vars(tally).items() if k != "answers"}
    return {
        **values,
        "duplicates": tally.duplicates,
        "answers": dict(sorted(tally.answers.items())),
    }


def expected_counts(plan: Plan) -> Counter[str]:
    """Count the orders per expected status, and the ``order.paid`` events expected."""
    counts: Counter[str] = Counter(o.expected.status for o in plan.orders)
    counts["order.paid events"] = sum(o.expected.paid_events for o in plan.orders)
    counts["anomalies"] = sum(len(o.expected.anomalies) for o in plan.orders)
    return counts


ROWS = (
    ("notifications", "notifications"),
    ("lost", "lost (all webhooks)"),
    ("deliveries", "copies delivered"),
    ("duplicates", "  of which duplicates"),
    ("requests", "requests sent"),
    ("retried", "  of which retries"),
    ("acknowledged", "acknowledged"),
    ("gave_up", "gave up (not acked)"),
    ("forged_rejected", "forged, rejected"),
    ("tampered_rejected", "tampered, rejected"),
    ("forged_accepted", "forged, ACCEPTED"),
    ("tampered_accepted", "tampered, ACCEPTED"),
)


def format_summary(report: Report) -> str:
    """Return the summary table: what was sent and answered, then the expected end state."""
    plan, options = report.plan, report.plan.options
    names = [p for p in PROVIDERS if p in report.tallies]
    columns = [*(report.tallies[p] for p in names), report.total()]
    lines = [
        f"paynotify simulate: {len(plan.orders)} orders, run {options.run_id}, seed {options.seed},"
        f" {report.elapsed_s:.1f}s",
        "",
        f"{'':<22}" + "".join(f"{_short(n):>12}" for n in [*names, "total"]),
    ]
    for attr, label in ROWS:
        lines.append(f"{label:<22}" + "".join(f"{getattr(t, attr):>12}" for t in columns))
    lines += ["", "answers:"]
    for name in names:
        answers = sorted(report.tallies[name].answers.items())
        lines.append(f"  {name:<18}" + ", ".join(f"{a!r} x{n}" for a, n in answers))
    counts = expected_counts(plan)
    statuses = (PAID, PARTIALLY_REFUNDED, REFUNDED, CLOSED, CREATED)
    state = ", ".join(f"{s} {counts[s]}" for s in statuses if counts[s])
    lines.append(f"expected end state: {state}")
    lines.append(
        f"expected order.paid events: {counts['order.paid events']}, "
        f"anomalies: {counts['anomalies']} (amount mismatches)"
    )
    scenarios: Counter[str] = Counter(s for o in plan.orders for s in o.scenario)
    lines.append("scenarios: " + ", ".join(f"{s} {n}" for s, n in sorted(scenarios.items())))
    return "\n".join(lines)


def _short(provider: str) -> str:
    return {"standardwebhooks": "stdwebhooks"}.get(provider, provider)
