"""The fault matrix of the seed peer: the simulator's Alipay scenarios against the seed article's
handler (``bench/peers/seed-gin``), with each fault injected while they run, counted.

Faults: none, kill -9 of the Go server (restarted), Redis stopped and started, PostgreSQL stopped
and started, a slow database (``-db-delay`` longer than the lock's 5 s TTL, for a while) and a
forged flood (forged notifications for the same orders, sent concurrently). Two ways of judging
the seed's answer: ``alipay`` (Alipay's rule: only ``success`` stops the retries, so the seed's
``SUCCESS`` never does) and ``seed`` (``SUCCESS`` taken as success, as the article assumes).

Counted per run, from the seed's own database: lost (a genuine payment answered ``200 SUCCESS``,
the order never paid), duplicated effects (orders with more than one ``payment_effects`` row) and
forged/mismatch effects (orders paid that must not be: forged only, wrong amount, closed unpaid);
also unpaid (a genuine payment planned, the order not paid at the end, answered or not).

    PYTHONPATH=. .venv/bin/python -m bench.faults_seed --orders 60 --json var/faults_seed.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs

import httpx

from gateway.settings import load_settings
from paynotify.simulator import keys as signing
from paynotify.simulator.plan import Plan, plan
from paynotify.simulator.runner import Target, simulate
from paynotify.simulator.signers import SigningKeys, prepare
from tests.support.faults import mix
from tests.support.seed_peer.gin import SeedPeer
from tests.support.stack import write_providers_config

FAULTS = (
    "none",
    "server kill -9",
    "redis stop/start",
    "postgres stop/start",
    "slow db",
    "forged flood",
)


class Recorder(httpx.AsyncBaseTransport):
    """Send through the real transport and note every answer per order; with ``lenient``, hand
    the seed's ``SUCCESS`` to the simulator as Alipay's ``success``."""

    def __init__(self, lenient: bool) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.lenient = lenient
        self.answers: dict[str, Counter[str]] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        number = parse_qs(request.content.decode()).get("out_trade_no", ["?"])[0]
        response = await self.inner.handle_async_request(request)
        body = await response.aread()
        self.answers.setdefault(number, Counter())[f"{response.status_code} {body.decode()}"] += 1
        if self.lenient and body == b"SUCCESS":
            body = b"success"
        return httpx.Response(response.status_code, content=body, request=request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class Row:
    fault: str
    judged: str
    orders: int
    notifications: int = 0
    duplicates: int = 0
    requests: int = 0
    acknowledged: int = 0
    gave_up: int = 0
    faults_injected: int = 0
    paid: int = 0
    lost: int = 0
    unpaid: int = 0
    duplicated: int = 0
    forged_effects: int = 0
    forged_sent: int = 0
    answers: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        return (
            f"seed[{self.fault}, {self.judged}]: {self.orders} orders, {self.notifications} "
            f"notifications sent ({self.requests} requests), {self.duplicates} duplicates, "
            f"{self.faults_injected} faults injected, {self.forged_sent} flood requests, "
            f"acked {self.acknowledged}, gave up {self.gave_up}, paid {self.paid}, "
            f"lost {self.lost}, unpaid {self.unpaid}, duplicated effects {self.duplicated}, "
            f"forged/mismatch effects {self.forged_effects}"
        )


def count(peer: SeedPeer, the_plan: Plan, recorder: Recorder, row: Row) -> None:
    """Fill in paid, lost, duplicated and forged/mismatch effects from the seed's database."""
    state = peer.counts()
    for order in the_plan.orders:
        number = order.out_trade_no
        paid = number in state.paid
        answered = recorder.answers.get(number, Counter())
        row.paid += paid
        row.duplicated += state.effects.get(number, 0) > 1
        if order.expected.paid_events and not paid:
            row.unpaid += 1
            row.lost += answered["200 SUCCESS"] > 0
        if not order.expected.paid_events and paid:
            row.forged_effects += 1
    row.answers = dict(sum(recorder.answers.values(), Counter()))


def flood(peer: SeedPeer, the_plan: Plan, keys: SigningKeys, stop: threading.Event) -> int:
    """Send forged payments for the plan's orders until ``stop``; return how many."""
    bodies = []
    for order in the_plan.orders:
        payment = next((m for m in order.messages if m.kind == "payment"), None)
        if payment is not None:
            bodies.append(prepare(order, payment, keys.forged(), now=time.time()))
    sent = 0
    with httpx.Client(timeout=10) as client:
        while not stop.is_set():
            prepared = random.choice(bodies)
            with contextlib.suppress(httpx.HTTPError):
                client.post(peer.url, content=prepared.body, headers=prepared.headers(time.time()))
            sent += 1
    return sent


def injector(peer: SeedPeer, fault: str, down_s: float) -> Callable[[], None]:
    """Return the blocking action that injects ``fault`` once and recovers from it."""

    def pause_then(recover: Callable[[], None]) -> None:
        time.sleep(down_s)
        recover()

    actions: dict[str, Callable[[], None]] = {
        "none": lambda: None,
        "server kill -9": lambda: (peer.kill_server(), pause_then(peer.serve)),
        "redis stop/start": lambda: (peer.stop_redis(), pause_then(peer.start_redis)),
        "postgres stop/start": lambda: (peer.stop_postgres(), pause_then(peer.start_postgres)),
        "slow db": lambda: (peer.serve(db_delay=6.0), pause_then(lambda: peer.serve(0.0))),
    }
    return actions.get(fault, lambda: None)


async def run_one(
    peer: SeedPeer,
    keys: dict[tuple[str, str], SigningKeys],
    fault: str,
    lenient: bool,
    args: argparse.Namespace,
) -> Row:
    """Play one plan against the seed with one fault; return the counts."""
    seed = args.seed + FAULTS.index(fault)
    # The same mix as paynotify's fault suite; one run id per fault and way of judging.
    options = mix(args.orders, seed, f"seed{seed}{'s' if lenient else 'a'}")
    the_plan = plan(options, signing.plan_accounts(keys))
    peer.add_orders([(o.out_trade_no, o.amount_minor) for o in the_plan.orders])
    recorder = Recorder(lenient)
    target = Target("http://127.0.0.1", {"alipay": peer.url})
    sim = asyncio.create_task(
        simulate(
            the_plan,
            target,
            keys,
            rate=args.rate,
            concurrency=16,
            time_factor=args.time_factor,
            transport=recorder,
        )
    )
    row = Row(fault, "seed" if lenient else "alipay", len(the_plan.orders))
    await asyncio.sleep(args.fault_at)
    stop = threading.Event()
    flooding = None
    if fault == "forged flood":
        [account_keys] = keys.values()
        flooding = asyncio.create_task(asyncio.to_thread(flood, peer, the_plan, account_keys, stop))
    if flooding is not None:
        await asyncio.sleep(args.down * args.repeat)
        stop.set()
        row.forged_sent = await flooding
        row.faults_injected += 1
    elif fault != "none":
        for _ in range(args.repeat):
            await asyncio.to_thread(injector(peer, fault, args.down))
            row.faults_injected += 1
    report = await sim
    total = report.total()
    row.notifications, row.duplicates, row.requests = (
        total.notifications,
        total.duplicates,
        total.requests,
    )
    row.acknowledged, row.gave_up = total.acknowledged, total.gave_up
    count(peer, the_plan, recorder, row)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--orders", type=int, default=60)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--time-factor", type=float, default=2000.0)
    parser.add_argument("--fault-at", type=float, default=2.0, help="seconds after the start")
    parser.add_argument("--down", type=float, default=2.0, help="seconds a fault lasts")
    parser.add_argument("--repeat", type=int, default=1, help="times each fault is injected")
    parser.add_argument("--seed", type=int, default=7, help="plan seed (plus the fault's index)")
    parser.add_argument("--faults", default=",".join(FAULTS))
    parser.add_argument("--judged", default="seed,alipay", help="seed and/or alipay")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rows = []
    os.environ.setdefault("SIM_TEST_APIV3_KEY", "0" * 32)  # the config's WeChat account; unused
    with tempfile.TemporaryDirectory(prefix="paynotify-seed-faults-") as folder:
        config, _port, _prefix, private = write_providers_config(
            Path(folder), "127.0.0.1:1", "sqlite://"
        )
        settings = load_settings(config)
        keys = signing.select(settings.accounts, ["alipay"], {"shop": private["shop"]})
        with SeedPeer(Path(folder) / "keys" / "alipay_public.pem") as peer:
            for judged in args.judged.split(","):
                for fault in args.faults.split(","):
                    row = asyncio.run(run_one(peer, keys, fault, judged == "seed", args))
                    print(row.line(), flush=True)
                    rows.append(row)
    if args.json is not None:
        args.json.write_text(json.dumps([vars(r) for r in rows], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
