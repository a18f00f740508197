"""``--verify``: read what landed and compare every order with its expected end state.

The database (``orders``, ``anomalies``, ``notifications``: every genuine notification once, with
the stream's decision) is read through SQLAlchemy, the ``order-paid`` topic by
a fresh ``read_committed`` consumer, as a downstream service would. Both are read again until
everything matches or the timeout passes; what still differs is reported per order.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from confluent_kafka import Consumer, TopicPartition
from sqlalchemy import Engine, select

from paynotify.simulator.plan import Plan, PlannedOrder
from sinks.rows import anomalies, notifications, orders
from stream.records import CREATED
from stream.state import PAID_STATUSES

PROBLEMS = (
    "lost payment",
    "duplicate order.paid",
    "forged effect",
    "unexpected payment",
    "wrong status",
    "wrong refunded amount",
    "missing anomaly",
    "unexpected anomaly",
    "missing order",
    "unrecorded notification",
)


@dataclass(frozen=True)
class Observed:
    """What landed for one order."""

    status: str | None = None  # None: no row in ``orders``
    refunded_minor: int = 0
    anomalies: tuple[str, ...] = ()
    paid_events: int = 0  # committed ``order-paid`` records on the topic
    notifications: int = 0  # webhook rows in ``notifications`` (each with the stream's decision)
    queried: int = 0  # rows of notifications reconciliation proved by querying the provider


@dataclass(frozen=True)
class Discrepancy:
    out_trade_no: str
    problem: str  # one of PROBLEMS
    detail: str


@dataclass
class Verification:
    """The result of ``verify``."""

    checked: int = 0
    discrepancies: list[Discrepancy] = field(default_factory=list)
    paid_events: int = 0
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.discrepancies

    def counts(self) -> Counter[str]:
        return Counter(d.problem for d in self.discrepancies)

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "paid_events_on_topic": self.paid_events,
            "problems": {p: self.counts()[p] for p in PROBLEMS},
            "discrepancies": [vars(d) for d in self.discrepancies],
        }


def compare(order: PlannedOrder, seen: Observed) -> list[Discrepancy]:
    """Return how what landed for ``order`` differs from its expected end state."""
    want, number = order.expected, order.out_trade_no
    found: list[tuple[str, str]] = []
    if seen.paid_events > 1:
        found.append(("duplicate order.paid", f"{seen.paid_events} order.paid events"))
    if seen.status is None:
        found.append(("missing order", f"no row in orders, {seen.paid_events} order.paid"))
    elif not want.paid_events and (seen.paid_events or seen.status in PAID_STATUSES):
        problem = "forged effect" if "forged" in order.scenario else "unexpected payment"
        found.append((problem, f"status {seen.status}, {seen.paid_events} order.paid"))
    elif want.paid_events and (seen.status == CREATED or not seen.paid_events):
        found.append(("lost payment", f"status {seen.status}, {seen.paid_events} order.paid"))
    elif seen.status != want.status:
        found.append(("wrong status", f"{seen.status}, expected {want.status}"))
    if seen.status is not None and seen.refunded_minor != want.refunded_minor:
        detail = f"{seen.refunded_minor}, expected {want.refunded_minor}"
        found.append(("wrong refunded amount", detail))
    sent = {m.notify_id for m in order.messages if m.authenticity == "genuine" and m.deliveries}
    if seen.notifications != len(sent):
        detail = f"{seen.notifications} notifications on record, {len(sent)} genuine sent"
        found.append(("unrecorded notification", detail))
    if order.scenario[0] in ("lost", "late") and not seen.queried:
        found.append(("unrecorded notification", "no query notification on record"))
    missing = Counter(want.anomalies) - Counter(seen.anomalies)
    extra = set(seen.anomalies) - set(want.anomalies)
    found += [("missing anomaly", reason) for reason in sorted(missing)]
    found += [("unexpected anomaly", reason) for reason in sorted(extra)]
    return [Discrepancy(number, problem, detail) for problem, detail in found]


def read_database(engine: Engine, prefix: str) -> dict[str, Observed]:
    """Return the status, refunded amount and anomaly reasons of every order under ``prefix``."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(orders.c.out_trade_no, orders.c.status, orders.c.refunded_minor).where(
                orders.c.out_trade_no.startswith(prefix, autoescape=True)
            )
        ).all()
        odd = conn.execute(
            select(anomalies.c.out_trade_no, anomalies.c.reason).where(
                anomalies.c.out_trade_no.startswith(prefix, autoescape=True)
            )
        ).all()
        sources = conn.execute(
            select(notifications.c.out_trade_no, notifications.c.source).where(
                notifications.c.out_trade_no.startswith(prefix, autoescape=True)
            )
        ).all()
    # Reconciliation's notifications (source "query") are counted apart: how many there are
    # depends on when the reconciler asked, not on what the provider sent.
    noted = Counter(number for number, source in sources if source != "query")
    queried = Counter(number for number, source in sources if source == "query")
    reasons: dict[str, list[str]] = {}
    for number, reason in odd:
        reasons.setdefault(number, []).append(reason)
    seen = {
        number: Observed(
            status,
            int(refunded or 0),
            tuple(sorted(reasons.pop(number, []))),
            notifications=noted[number],
            queried=queried[number],
        )
        for number, status, refunded in rows
    }
    for number, found in reasons.items():
        seen[number] = Observed(
            anomalies=tuple(sorted(found)), notifications=noted[number], queried=queried[number]
        )
    for number in (set(noted) | set(queried)) - set(seen):
        seen[number] = Observed(notifications=noted[number], queried=queried[number])
    return seen


def count_paid_events(bootstrap_servers: str, topic: str, prefix: str) -> Counter[str]:
    """Count committed ``order-paid`` records per order whose number starts with ``prefix``."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"paynotify-count-{uuid.uuid4()}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    metadata = consumer.list_topics(topic, timeout=10).topics[topic]
    parts = [TopicPartition(topic, p) for p in metadata.partitions]
    ends = {p.partition: consumer.get_watermark_offsets(p, timeout=10)[1] for p in parts}
    consumer.assign([TopicPartition(topic, p.partition, 0) for p in parts])
    counts: Counter[str] = Counter()
    done: set[int] = {p for p, end in ends.items() if end == 0}
    deadline = time.monotonic() + 30
    while len(done) < len(parts) and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None or message.error():
            continue
        key = (message.key() or b"").decode()
        if key.startswith(prefix):
            counts[key] += 1
        partition, offset = message.partition(), message.offset()
        if partition is not None and offset is not None and offset + 1 >= ends[partition]:
            done.add(partition)
    consumer.close()
    return counts


def _check(plan: Plan, db: dict[str, Observed], paid: Counter[str] | None) -> list[Discrepancy]:
    """Compare every order; without ``paid`` (topic not read yet) assume the topic is right."""
    out: list[Discrepancy] = []
    for order in plan.orders:
        seen = db.get(order.out_trade_no, Observed())
        events = order.expected.paid_events if paid is None else paid[order.out_trade_no]
        out += compare(
            order,
            replace(seen, paid_events=events),
        )
    return out


def verify(
    plan: Plan,
    engine: Engine,
    read_paid: Callable[[], Counter[str]],
    *,
    timeout: float = 60.0,
    poll_s: float = 1.0,
    alive: Callable[[], None] = lambda: None,
) -> Verification:
    """Wait until every order is as expected (or ``timeout``); return what still differs.

    ``read_paid`` counts the ``order-paid`` events per order (``count_paid_events``).
    """
    prefix = f"{plan.options.run_id}-"
    started = time.monotonic()
    paid: Counter[str] = Counter()
    while True:
        db = read_database(engine, prefix)
        found = _check(plan, db, None)
        late = time.monotonic() - started > timeout
        if not found or late:  # the database is as expected (or time is up): now the topic
            paid = read_paid()
            found = _check(plan, db, paid)
            if not found or late:
                break
        alive()
        time.sleep(poll_s)
    return Verification(
        checked=len(plan.orders),
        discrepancies=found,
        paid_events=sum(paid.values()),
        elapsed_s=time.monotonic() - started,
    )


def describe(result: Verification, limit: int = 20) -> Iterable[str]:
    """Yield the lines that report a verification."""
    counts = result.counts()
    shown = [p for i, p in enumerate(PROBLEMS) if i < 5 or counts[p]]  # the key five, then any
    figures = ", ".join(f"{counts[p]} {p}" for p in shown)
    verdict = "OK" if result.ok else "FAILED"
    yield (
        f"verify: {result.checked} orders checked in {result.elapsed_s:.1f}s, "
        f"{result.paid_events} order.paid events on the topic: {figures}: {verdict}"
    )
    for d in result.discrepancies[:limit]:
        yield f"  {d.out_trade_no}: {d.problem} ({d.detail})"
    if len(result.discrepancies) > limit:
        yield f"  ... and {len(result.discrepancies) - limit} more"
