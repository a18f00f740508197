"""Play a plan against a running gateway (the I/O half of the simulator).

Every delivery of a notification starts at its planned moment (the order's start plus the
provider's own delay, both divided by ``time_factor``) and is retried on the provider's schedule,
also compressed, until the answer is the provider's exact success form. Forged and tampered
requests are sent once. ``rate`` caps requests per second (orders are spread to match it) and
``concurrency`` caps requests in flight; a burst takes its slots at once, so that its copies
really arrive together.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from paynotify.simulator.plan import Delivery, Message, Plan, PlannedOrder
from paynotify.simulator.report import Report
from paynotify.simulator.schedules import compressed, is_success
from paynotify.simulator.signers import Prepared, SigningKeys, prepare
from stream.records import ExpectedOrder

DEFAULT_PATH = "/notify/{provider}/{account}"
# A ``late`` webhook waits for the reconciler's query of its order at most this long (seconds).
HOLD_LIMIT_S = 120.0


@dataclass(frozen=True)
class Target:
    """Where to send: the gateway's base URL and, per provider, another path or whole URL
    (``{provider}`` and ``{account}`` are filled in)."""

    base_url: str
    endpoints: Mapping[str, str] = field(default_factory=dict)

    def url(self, provider: str, account: str) -> str:
        """Return the URL a provider posts to for ``account``."""
        template = self.endpoints.get(provider, DEFAULT_PATH)
        if "://" not in template:
            template = self.base_url.rstrip("/") + "/" + template.lstrip("/")
        return template.format(provider=provider, account=account)


class Pacer:
    """Hand out send slots at most ``rate`` per second, first come first served."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next = 0.0

    async def wait(self, slots: int = 1) -> None:
        if not self.interval:
            return
        now = asyncio.get_running_loop().time()
        start = max(now, self.next)
        self.next = start + slots * self.interval
        if start > now:
            await asyncio.sleep(start - now)


def expected_orders(plan: Plan, created_at: str) -> list[ExpectedOrder]:
    """Return the merchant's expected orders of the plan (for the ``orders`` topic)."""
    return [
        ExpectedOrder(o.out_trade_no, o.account, o.amount_minor, o.currency, created_at)
        for o in plan.orders
    ]


async def simulate(
    plan: Plan,
    target: Target,
    keys: Mapping[tuple[str, str], SigningKeys],
    *,
    rate: float = 200.0,
    concurrency: int = 32,
    time_factor: float = 1000.0,
    request_timeout: float = 10.0,
    transport: httpx.AsyncBaseTransport | None = None,
    progress: Callable[[Report], None] | None = None,
    clock: Callable[[], float] = time.time,
    queried: Callable[[str], bool] | None = None,
) -> Report:
    """Send every planned notification, retrying as each provider does; return the counts.
    ``queried(out_trade_no)`` says whether the provider's query API was asked about an order: a
    ``late`` webhook waits for it (at most ``HOLD_LIMIT_S``).

    Raises:
        SigningKeyError: an order's account has no signing keys.
    """
    runner = _Runner(plan, target, keys, rate, concurrency, time_factor, progress, clock)
    runner.queried = queried
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    started = time.monotonic()
    async with httpx.AsyncClient(
        timeout=request_timeout, limits=limits, transport=transport
    ) as client:
        runner.client = client
        await runner.run()
    runner.report.elapsed_s = time.monotonic() - started
    return runner.report


class _Runner:
    def __init__(
        self,
        plan: Plan,
        target: Target,
        keys: Mapping[tuple[str, str], SigningKeys],
        rate: float,
        concurrency: int,
        time_factor: float,
        progress: Callable[[Report], None] | None,
        clock: Callable[[], float],
    ) -> None:
        self.plan, self.target, self.keys = plan, target, keys
        self.factor = time_factor
        self.pacer = Pacer(rate)
        self.slots = asyncio.Semaphore(concurrency)
        self.report = Report(plan)
        self.progress = progress or (lambda _report: None)
        self.clock = clock
        self.client: httpx.AsyncClient | None = None
        self.spacing = _spacing(plan, rate)
        self.queried: Callable[[str], bool] | None = None

    async def run(self) -> None:
        start = asyncio.get_running_loop().time()
        for order in self.plan.orders:
            tally = self.report.tally(order.provider)
            tally.notifications += sum(1 for m in order.messages if m.deliveries)
            tally.lost += sum(1 for m in order.messages if not m.deliveries)
        tasks = [
            self._deliver(order, message, delivery, start + i * self.spacing)
            for i, order in enumerate(self.plan.orders)
            for message in order.messages
            for delivery in message.deliveries
        ]
        await asyncio.gather(*tasks)

    async def _deliver(
        self, order: PlannedOrder, message: Message, delivery: Delivery, order_start: float
    ) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, order_start + delivery.at / self.factor - loop.time()))
        if message.after_query and self.queried is not None:
            await _until(lambda: self.queried is not None and self.queried(order.out_trade_no))
        keys = self.keys[(order.provider, order.account)]
        prepared = prepare(order, message, keys, now=self.clock())
        self.report.tally(order.provider).deliveries += delivery.copies
        await self.pacer.wait(delivery.copies)
        copies = (self._chain(order, message, prepared) for _ in range(delivery.copies))
        await asyncio.gather(*copies)

    async def _chain(self, order: PlannedOrder, message: Message, prepared: Prepared) -> None:
        """Send one copy until acknowledged, retrying on the provider's compressed schedule."""
        tally = self.report.tally(order.provider)
        intervals = compressed(order.provider, self.factor)
        for attempt in range(len(intervals) + 1):
            if attempt:
                await asyncio.sleep(intervals[attempt - 1])
                await self.pacer.wait()
                tally.retried += 1
            status, text = await self._post(order, prepared)
            if not message.genuine:
                self._judge(order.provider, message.authenticity, refused=400 <= status < 500)
                return
            if is_success(order.provider, status, text):
                tally.acknowledged += 1
                return
        tally.gave_up += 1

    def _judge(self, provider: str, authenticity: str, *, refused: bool) -> None:
        """Count a forged or tampered request: refused with a 4xx, or else accepted (a defect:
        a 2xx, or an error the sender cannot tell from a temporary failure)."""
        name = f"{authenticity}_{'rejected' if refused else 'accepted'}"
        tally = self.report.tally(provider)
        setattr(tally, name, getattr(tally, name) + 1)

    async def _post(self, order: PlannedOrder, prepared: Prepared) -> tuple[int, str]:
        assert self.client is not None
        url = self.target.url(order.provider, order.account)
        async with self.slots:
            headers = prepared.headers(self.clock())
            try:
                response = await self.client.post(url, content=prepared.body, headers=headers)
                status, text = response.status_code, response.text
            except httpx.HTTPError as exc:
                status, text = 0, type(exc).__name__
        tally = self.report.tally(order.provider)
        tally.requests += 1
        tally.answers[f"{status} {text[:24]}".strip()] += 1
        self.progress(self.report)
        return status, text


async def _until(condition: Callable[[], bool], limit_s: float = HOLD_LIMIT_S) -> None:
    """Wait until ``condition`` holds, or ``limit_s`` passed (then go on regardless)."""
    deadline = asyncio.get_running_loop().time() + limit_s
    # Polled: the query server answers on its own threads, which know no event loop.
    while not condition() and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)


def _spacing(plan: Plan, rate: float) -> float:
    """Return the seconds between order starts so that first deliveries come at ``rate``."""
    if rate <= 0 or not plan.orders:
        return 0.0
    copies = sum(d.copies for o in plan.orders for m in o.messages for d in m.deliveries)
    return copies / len(plan.orders) / rate


def now_iso() -> str:
    """Return the current time as ISO-8601 (the runner is an edge: it may read the clock)."""
    return datetime.now(UTC).isoformat()
