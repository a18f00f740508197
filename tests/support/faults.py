"""The fault-injection harness: the whole stack as real processes, the simulator at load, one
kind of fault injected while it runs, and the invariants counted afterwards.

``FaultStack`` runs gateway, stream and sink (``tests.support.stack.Service``) against a broker and
a PostgreSQL database; it may own a private broker or server so that a test can kill it.
``run_with_faults`` plays a simulator plan (every provider, every scenario) and calls a fault
``times`` during the first deliveries; ``Outcome`` holds what the simulator sent and what the
database and the ``order-paid`` topic say, and ``Outcome.figures()`` is the line a run prints.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select

from gateway.settings import load_settings
from paynotify.broker import LocalBroker
from paynotify.orders import publish_orders
from paynotify.simulator import keys as signing
from paynotify.simulator.command import verify_run
from paynotify.simulator.plan import Options, Plan, PlannedOrder, plan
from paynotify.simulator.report import Report
from paynotify.simulator.runner import Target, expected_orders, now_iso, simulate
from paynotify.simulator.signers import SigningKeys
from paynotify.simulator.verification import Verification
from paynotify.topics import ensure_topics
from sinks.rows import order_events
from sinks.schema import create_db_engine
from stream.records import ALL_TOPICS, ORDERS_TOPIC
from tests.support import wechatpay_signer
from tests.support.postgres import LocalPostgres
from tests.support.stack import Service, wait_http, write_providers_config

SERVICES = ("gateway", "stream", "sink")
# What counts as an unhandled error in a service's log.
UNHANDLED = re.compile(r"Traceback \(most recent call last\)|Unhandled|Crashed|CRITICAL")


@dataclass(frozen=True)
class Size:
    """How big a run is: orders, request rate and how many times the fault is injected."""

    orders: int
    rate: float
    faults: int
    down_s: float = 1.0  # how long a killed service stays down before its restart
    time_factor: float = 1000.0
    verify_timeout: float = 120.0


SIZES = {
    "short": Size(orders=100, rate=30.0, faults=1),
    "long": Size(orders=600, rate=30.0, faults=3, down_s=3.0, verify_timeout=600.0),
}


def mix(orders: int, seed: int, run_id: str) -> Options:
    """Return the scenario mix of the fault runs: every scenario the simulator knows."""
    return Options(
        orders=orders,
        duplicates=0.3,
        burst_ratio=0.2,
        burst_size=4,
        out_of_order=0.3,
        mismatches=0.1,
        forged=0.1,
        tampered=0.2,
        refunds=0.4,
        closes=0.15,
        seed=seed,
        run_id=run_id,
    )


@dataclass
class FaultStack:
    """Gateway, stream and sink on one configuration; optionally a broker and PostgreSQL of
    their own (to kill or stop)."""

    folder: Path
    bootstrap: str
    database_url: str
    broker: LocalBroker | None = None
    postgres: LocalPostgres | None = None
    services: dict[str, Service] = field(default_factory=dict)
    config: Path = field(init=False)
    port: int = field(init=False)
    private_keys: dict[str, Path] = field(init=False)

    def __post_init__(self) -> None:
        os.environ.setdefault("SIM_TEST_APIV3_KEY", wechatpay_signer.APIV3_KEY)
        self.config, self.port, _prefix, self.private_keys = write_providers_config(
            self.folder, self.bootstrap, self.database_url
        )
        self.services = {name: Service(name, self.config) for name in SERVICES}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Apply the migrations, start every service, wait for the gateway."""
        subprocess.run(
            [sys.executable, "-m", "paynotify.cli", "--config", str(self.config), "db", "upgrade"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        for service in self.services.values():
            service.start()
        self.wait_gateway()

    def wait_gateway(self) -> None:
        wait_http(f"{self.url}/healthz", service=self.services["gateway"])

    def restart(self, name: str, down_s: float) -> None:
        """kill -9 one service, leave it down ``down_s``, start it again."""
        service = self.services[name]
        service.kill()
        time.sleep(down_s)
        service.start()
        if name == "gateway":
            self.wait_gateway()

    def stop(self) -> dict[str, int | None]:
        """Stop every service (SIGTERM); return their exit codes."""
        return {name: service.stop() for name, service in self.services.items()}

    def exited(self) -> dict[str, int]:
        """Return the services whose process ended on its own, with their exit codes."""
        return {
            name: code
            for name, service in self.services.items()
            if service.process is not None and (code := service.process.poll()) is not None
        }

    def unhandled(self) -> dict[str, list[str]]:
        """Return, per service, the log lines that show an unhandled error."""
        found: dict[str, list[str]] = {}
        for name, service in self.services.items():
            lines = [line for line in service.output().splitlines() if UNHANDLED.search(line)]
            if lines:
                found[name] = lines
        return found

    def trouble(self, lines: int = 12) -> list[str]:
        """Return the last warnings and errors each service logged itself (what a failed run
        prints, so that a CI log shows why: a worker that restarted, could not start, ...)."""
        found = []
        for name, service in self.services.items():
            own = [
                line
                for line in service.output().splitlines()
                if '"logger":"paynotify' in line and '"level":"info"' not in line
            ]
            found += [f"{name}: {line[:400]}" for line in own[-lines:]]
        return found


Fault = Callable[[FaultStack], None]


@dataclass
class Outcome:
    """What one faulted run sent and what landed."""

    fault: str
    plan: Plan
    report: Report
    verification: Verification
    injected: int
    injected_under_load: int
    db_duplicates: int
    unhandled: dict[str, list[str]]
    exited: dict[str, int] = field(default_factory=dict)  # services that died by themselves
    fault_seconds: list[float] = field(default_factory=list)
    trouble: list[str] = field(default_factory=list)  # the services' own warnings and errors

    @property
    def problems(self) -> Counter[str]:
        return self.verification.counts()

    @property
    def lost(self) -> int:
        """Return orders that should be paid and are not (or have no ``order.paid``)."""
        missing_paid = sum(
            1
            for d in self.verification.discrepancies
            if d.problem == "missing order" and self._expected(d.out_trade_no).expected.paid_events
        )
        return self.problems["lost payment"] + missing_paid

    @property
    def duplicated(self) -> int:
        """Return orders with more than one ``order.paid`` on the topic or in ``order_events``."""
        return self.problems["duplicate order.paid"] + self.db_duplicates

    @property
    def forged_effects(self) -> int:
        """Return effects of forged, tampered or mismatched notifications (verify's view): a
        payment nobody made, a mismatch without its anomaly, or an anomaly a tampered amount
        would leave. Late cumulative refund totals (``stale_refunds``) are counted apart."""
        kinds = ("forged effect", "unexpected payment", "missing anomaly")
        return (
            sum(self.problems[k] for k in kinds)
            + self.problems["unexpected anomaly"]
            - len(self.stale_refunds)
        )

    @property
    def stale_refunds(self) -> list[str]:
        """Return orders whose only fault is a ``refund_invalid`` anomaly: a refund notification
        carrying an older cumulative total (Stripe ``amount_refunded``) handled after a newer
        one, which the stream emits as an ``order.refunded`` of 0 and the sink refuses. The
        refunded total is right; the anomaly is spurious (reported, not a lost or double effect)."""
        by_order: dict[str, set[tuple[str, str]]] = {}
        for d in self.verification.discrepancies:
            by_order.setdefault(d.out_trade_no, set()).add((d.problem, d.detail))
        only = {("unexpected anomaly", "refund_invalid")}
        return sorted(number for number, found in by_order.items() if found == only)

    @property
    def refused_or_unreached(self) -> tuple[int, int]:
        """Return (forged/tampered requests refused with a 4xx, those answered otherwise)."""
        total = self.report.total()
        refused = total.forged_rejected + total.tampered_rejected
        return refused, total.forged_accepted + total.tampered_accepted

    def _expected(self, number: str) -> PlannedOrder:
        return next(o for o in self.plan.orders if o.out_trade_no == number)

    def figures(self) -> str:
        """Return the figures line of the run."""
        total = self.report.total()
        refused, other = self.refused_or_unreached
        errors = sum(n for answer, n in total.answers.items() if answer[:1] not in "1234")
        return (
            f"faults[{self.fault}]: {len(self.plan.orders)} orders, "
            f"{total.notifications} notifications sent ({total.deliveries} copies, "
            f"{total.requests} requests, {total.retried} retries, {errors} answered 5xx or "
            f"unreachable), {total.duplicates} duplicates, {self.injected} faults injected "
            f"({self.injected_under_load} under load, "
            f"{', '.join(f'{s:.1f}s' for s in self.fault_seconds)}), "
            f"{total.acknowledged} acknowledged, {total.gave_up} gave up, "
            f"lost {self.lost}, duplicated effects {self.duplicated}, "
            f"forged/tampered/mismatch effects {self.forged_effects} "
            f"(spurious refund_invalid anomalies {len(self.stale_refunds)}) "
            f"(forged/tampered refused {refused}, not refused {other}), "
            f"{self.verification.paid_events} order.paid on the topic, "
            f"unhandled errors {sum(len(v) for v in self.unhandled.values())}, "
            f"services exited by themselves {self.exited or 0}; "
            f"simulated {self.report.elapsed_s:.0f}s, verified {self.verification.elapsed_s:.0f}s"
        )

    def as_json(self) -> dict[str, object]:
        total = self.report.total()
        refused, other = self.refused_or_unreached
        return {
            "fault": self.fault,
            "orders": len(self.plan.orders),
            "notifications": total.notifications,
            "copies": total.deliveries,
            "requests": total.requests,
            "retries": total.retried,
            "duplicates": total.duplicates,
            "acknowledged": total.acknowledged,
            "gave_up": total.gave_up,
            "faults_injected": self.injected,
            "under_load": self.injected_under_load,
            "lost": self.lost,
            "duplicated_effects": self.duplicated,
            "forged_effects": self.forged_effects,
            "stale_refund_anomalies": self.stale_refunds,
            "forged_refused": refused,
            "forged_not_refused": other,
            "paid_events": self.verification.paid_events,
            "problems": dict(self.problems),
            "unhandled": {k: len(v) for k, v in self.unhandled.items()},
            "exited": self.exited,
            "answers": dict(total.answers),
        }


def publish(stack: FaultStack, the_plan: Plan) -> None:
    """Create the topics and publish the plan's expected orders."""
    settings = load_settings(stack.config)
    names = [settings.topic_prefix + t for t in ALL_TOPICS]
    ensure_topics(settings.bootstrap_servers, names, settings.partitions)
    orders = expected_orders(the_plan, now_iso())
    publish_orders(settings.bootstrap_servers, settings.topic_prefix + ORDERS_TOPIC, orders)


def make_plan(
    stack: FaultStack, size: Size, seed: int, run_id: str
) -> tuple[Plan, dict[tuple[str, str], SigningKeys]]:
    """Return the plan over every configured provider and the simulator's signing keys."""
    settings = load_settings(stack.config)
    keys = signing.select(settings.accounts, None, stack.private_keys)
    return plan(mix(size.orders, seed, run_id), signing.plan_accounts(keys)), keys


def duplicated_rows(stack: FaultStack, prefix: str) -> int:
    """Return orders with more than one ``order.paid`` row in ``order_events``."""
    engine = create_db_engine(stack.database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(order_events.c.out_trade_no, func.count())
                .where(order_events.c.type == "order.paid")
                .where(order_events.c.out_trade_no.startswith(prefix, autoescape=True))
                .group_by(order_events.c.out_trade_no)
                .having(func.count() > 1)
            ).all()
    finally:
        engine.dispose()
    return len(rows)


def check(stack: FaultStack, the_plan: Plan, timeout: float) -> Verification:
    """Run the simulator's verify against the stack's database and ``order-paid`` topic."""
    return verify_run(load_settings(stack.config), stack.database_url, the_plan, timeout)


def fault_times(the_plan: Plan, size: Size) -> list[float]:
    """Return when to inject (seconds after the start): spread over the first deliveries."""
    copies = sum(d.copies for o in the_plan.orders for m in o.messages for d in m.deliveries)
    span = copies / size.rate
    return [span * (k + 1) / (size.faults + 1) for k in range(size.faults)]


async def run_with_faults(
    stack: FaultStack,
    name: str,
    fault: Fault,
    size: Size,
    seed: int,
    at: list[float] | None = None,
) -> Outcome:
    """Play the plan at load, inject ``fault`` ``size.faults`` times (or at the seconds ``at``),
    verify; return the counts."""
    the_plan, keys = make_plan(stack, size, seed, f"f{seed}{name[:3]}")
    publish(stack, the_plan)
    sim = asyncio.create_task(
        simulate(
            the_plan,
            Target(stack.url),
            keys,
            rate=size.rate,
            concurrency=16,
            time_factor=size.time_factor,
        )
    )
    started = time.monotonic()
    under_load, seconds = 0, []
    for when in fault_times(the_plan, size) if at is None else at:
        await asyncio.sleep(max(0.0, started + when - time.monotonic()))
        under_load += not sim.done()
        began = time.monotonic()
        await asyncio.to_thread(fault, stack)
        seconds.append(time.monotonic() - began)
    report = await sim
    verification = await asyncio.to_thread(check, stack, the_plan, size.verify_timeout)
    prefix = f"{the_plan.options.run_id}-"
    return Outcome(
        fault=name,
        plan=the_plan,
        report=report,
        verification=verification,
        injected=len(seconds),
        injected_under_load=under_load,
        db_duplicates=duplicated_rows(stack, prefix),
        unhandled={},  # filled in once the services stopped
        exited=stack.exited(),
        fault_seconds=seconds,
    )
