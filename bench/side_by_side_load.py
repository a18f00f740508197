"""The pre-signed loads of ``bench/side_by_side.py`` and its fixed-rate end-to-end probe.

Loads are Alipay RSA2 notifications signed once with one generated key (the key of
``tests.support.alipay``) and written one a line, so that wrk replays the very same bytes to each
system. ``fixed_rate`` sends notifications at a steady rate from Python, records when each was
sent and acknowledged, and polls the system's database every ``poll_s`` for the moment its order
shows up paid.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from bench.gateway_load import write_bodies
from tests.support import alipay as signer

AMOUNT_MINOR = 100  # signer.payment's default total_amount, "1.00"
FORM = {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}
_worker_key: list[RSAPrivateKey] = []


@dataclass
class Load:
    """One pre-signed request sequence: its file, its distinct orders, its share of copies."""

    name: str
    bodies: Path
    orders: list[str]
    requests: int


def _load_key(pem: bytes) -> None:
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, RSAPrivateKey)
    _worker_key.append(key)


def _sign(numbers: list[str]) -> list[bytes]:
    return [signer.sign(signer.payment(no), _worker_key[0]) for no in numbers]


def sign_all(key: RSAPrivateKey, numbers: list[str], workers: int = 2) -> dict[str, bytes]:
    """Sign one TRADE_SUCCESS notification per order, in ``workers`` processes."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    chunks = [numbers[i : i + 2000] for i in range(0, len(numbers), 2000)]
    with ProcessPoolExecutor(workers, initializer=_load_key, initargs=(pem,)) as pool:
        signed = [body for chunk in pool.map(_sign, chunks) for body in chunk]
    return dict(zip(numbers, signed, strict=True))


def interleave(numbers: list[str], copies: float, rng: random.Random, window: int) -> list[str]:
    """Return the orders in turn plus ``copies`` x as many copies, each up to ``window`` later."""
    placed = [(float(i), no) for i, no in enumerate(numbers)]
    for _ in range(round(len(numbers) * copies)):
        i = rng.randrange(len(numbers))
        placed.append((i + rng.uniform(0.5, window), numbers[i]))
    return [no for _, no in sorted(placed)]


def make_loads(
    folder: Path, key: RSAPrivateKey, requests: int, runs: int, duplicates: float
) -> dict[str, list[Load]]:
    """Write ``runs`` loads of ``requests`` requests per mix: all unique, and with duplicates."""
    rng = random.Random(6)
    plans: dict[str, list[tuple[str, list[str]]]] = {"unique": [], "duplicates": []}
    for run in range(runs):
        unique = [f"u{run}-{i}" for i in range(requests)]
        plans["unique"].append((f"unique-{run}", unique))
        originals = [f"d{run}-{i}" for i in range(round(requests * (1 - duplicates)))]
        mixed = interleave(originals, duplicates / (1 - duplicates), rng, window=100)
        plans["duplicates"].append((f"duplicates-{run}", mixed))
    numbers = sorted({no for runs_ in plans.values() for _, seq in runs_ for no in seq})
    signed = sign_all(key, numbers)
    return {
        mix: [
            Load(
                name,
                write_bodies(folder / f"{name}.txt", (signed[no] for no in seq)),
                sorted(set(seq)),
                len(seq),
            )
            for name, seq in runs_
        ]
        for mix, runs_ in plans.items()
    }


@dataclass
class Probe:
    """One fixed-rate notification: when it was sent, answered (and how) and first seen paid."""

    order: str
    sent: float = 0.0
    answered: float | None = None
    answer: str = ""
    applied: float | None = None


@dataclass
class FixedRateResult:
    rate: float
    probes: list[Probe] = field(default_factory=list)

    def answers(self) -> Counter[str]:
        return Counter(p.answer for p in self.probes)

    def ack_ms(self) -> list[float]:
        return [(p.answered - p.sent) * 1000 for p in self.probes if p.answered is not None]

    def e2e_ms(self, success: str) -> list[float]:
        return [
            (p.applied - p.sent) * 1000
            for p in self.probes
            if p.applied is not None and p.answer == success
        ]

    def not_applied(self, success: str) -> int:
        return sum(p.applied is None and p.answer == success for p in self.probes)


def fixed_rate(
    url: str,
    connect: Callable[[], psycopg.Connection[tuple[object, ...]]],
    bodies: dict[str, bytes],
    rate: float,
    *,
    poll_s: float = 0.01,
    drain_s: float = 60.0,
) -> FixedRateResult:
    """Send ``bodies`` (order -> body) at ``rate``/s and poll the database for paid orders."""
    result = FixedRateResult(rate, [Probe(no) for no in bodies])
    stop = threading.Event()
    poller = threading.Thread(target=_poll, args=(connect, result.probes, stop, poll_s))
    poller.start()
    try:
        asyncio.run(_send(url, bodies, result.probes, rate))
        deadline = time.monotonic() + drain_s
        while time.monotonic() < deadline and any(_pending(result.probes)):
            time.sleep(0.1)
    finally:
        stop.set()
        poller.join()
    return result


def _pending(probes: list[Probe]) -> Iterator[Probe]:
    return (p for p in probes if p.applied is None and p.answer.startswith("200"))


async def _send(url: str, bodies: dict[str, bytes], probes: list[Probe], rate: float) -> None:
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        start = time.monotonic()
        tasks = []
        for i, probe in enumerate(probes):
            await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
            tasks.append(asyncio.create_task(_post(client, url, bodies[probe.order], probe)))
        await asyncio.gather(*tasks)


async def _post(client: httpx.AsyncClient, url: str, body: bytes, probe: Probe) -> None:
    probe.sent = time.monotonic()
    try:
        response = await client.post(url, content=body, headers=FORM)
    except httpx.TransportError:
        probe.answer = "no answer"
        return
    probe.answered = time.monotonic()
    probe.answer = f"{response.status_code} {response.text[:24]}"


def _poll(
    connect: Callable[[], psycopg.Connection[tuple[object, ...]]],
    probes: list[Probe],
    stop: threading.Event,
    poll_s: float,
) -> None:
    by_order = {p.order: p for p in probes}
    with connect() as conn:
        while not stop.is_set():
            waiting = [p.order for p in probes if p.applied is None and p.sent]
            if waiting:
                rows = conn.execute(
                    "SELECT out_trade_no FROM orders WHERE status = 'paid' "
                    "AND out_trade_no = ANY(%s)",
                    (waiting,),
                )
                seen = time.monotonic()
                for (no,) in rows:
                    by_order[str(no)].applied = seen
            stop.wait(poll_s)
