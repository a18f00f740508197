"""The simulator's scenarios and faults, played against the seed peer and counted.

Each scenario uses fresh order numbers, sends real signed (or forged) Alipay notifications over
HTTP and returns a ``Measurement``: what the peer answered, and from the database which orders
were paid, which were lost (a genuine notification answered ``SUCCESS``, the order left unpaid)
and which had their effect applied more than once.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Protocol

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from paynotify.simulator.payloads import alipay_params
from paynotify.simulator.plan import Delivery, Expected, Message, PlannedOrder
from paynotify.simulator.signers import FORM, encode_form, sign_alipay


class Counts(Protocol):
    """Which orders are paid, and how many effects each set off."""

    paid: set[str]
    effects: dict[str, int]


if TYPE_CHECKING:
    from tests.support.seed_peer.gin import SeedPeer


class Peer(Protocol):
    """What the generic scenarios need of a system: the seed peer, or paynotify's stack."""

    @property
    def url(self) -> str: ...

    @property
    def success_answer(self) -> str: ...

    def add_orders(self, orders: list[tuple[str, int]]) -> None: ...

    def counts(self) -> Counts: ...


APP_ID = "2021000000000000"
AMOUNT_MINOR = 4200
TTL = 5.0  # the article's lock TTL


@dataclass
class Measurement:
    """What one scenario sent, what the peer answered and what the database holds afterwards."""

    scenario: str
    orders: list[str]
    answers: Counter[str] = field(default_factory=Counter)
    paid: int = 0
    lost: int = 0
    duplicated: int = 0
    effects: int = 0
    facts: dict[str, object] = field(default_factory=dict)

    def line(self) -> str:
        answers = ", ".join(f"{n}x {a}" for a, n in sorted(self.answers.items()))
        facts = "".join(f" {k}={v}" for k, v in self.facts.items())
        return (
            f"{self.scenario}: orders={len(self.orders)} paid={self.paid} lost={self.lost} "
            f"effects={self.effects} duplicated={self.duplicated} answers=[{answers}]{facts}"
        )


@cache
def forger_key() -> RSAPrivateKey:
    """Return a key that is not Alipay's: what a forger signs with."""
    return generate_key()


def new_orders(peer: Peer, n: int) -> list[str]:
    """Insert ``n`` fresh unpaid orders and return their numbers."""
    numbers = [f"seed-{uuid.uuid4().hex[:16]}" for _ in range(n)]
    peer.add_orders([(no, AMOUNT_MINOR) for no in numbers])
    return numbers


def generate_key() -> RSAPrivateKey:
    """Return a fresh 2048-bit RSA key (playing Alipay's, or a forger's)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def notification(out_trade_no: str, key: RSAPrivateKey, **changes: str) -> bytes:
    """Return a signed TRADE_SUCCESS form body for the order (``changes`` before signing)."""
    message = Message("payment", uuid.uuid4().hex, AMOUNT_MINOR, (Delivery(0.0),))
    order = PlannedOrder(
        out_trade_no=out_trade_no,
        provider="alipay",
        account="seed",
        amount_minor=AMOUNT_MINOR,
        currency="CNY",
        scenario=("paid",),
        messages=(message,),
        expected=Expected("paid", paid_events=1),
        payment_ref=uuid.uuid4().hex,
    )
    params = alipay_params(order, message, app_id=APP_ID, seller_id=None, now=time.time())
    return encode_form(sign_alipay({**params, **changes}, key))


def send(client: httpx.Client, url: str, body: bytes) -> str:
    """POST one notification; return ``"<status> <text>"`` or ``"no answer"``."""
    try:
        response = client.post(url, content=body, headers={"content-type": FORM})
    except httpx.TransportError:
        return "no answer"
    return f"{response.status_code} {response.text}"


def measure(
    peer: Peer, scenario: str, orders: list[str], genuine: dict[str, list[str]]
) -> Measurement:
    """Count paid, lost and duplicated orders; ``genuine`` maps order -> its genuine answers."""
    counts = peer.counts()
    result = Measurement(scenario, orders)
    for no in orders:
        result.answers.update(genuine.get(no, []))
        paid = no in counts.paid
        effects = counts.effects.get(no, 0)
        result.paid += paid
        result.effects += effects
        result.duplicated += effects > 1
        result.lost += (not paid) and peer.success_answer in genuine.get(no, [])
    return result


def genuine_copies(peer: Peer, key: RSAPrivateKey, copies: int) -> Measurement:
    """One order, ``copies`` genuine copies one after another."""
    [no] = new_orders(peer, 1)
    with httpx.Client(timeout=30) as client:
        answers = [send(client, peer.url, notification(no, key)) for _ in range(copies)]
    return measure(peer, f"genuine x{copies}", [no], {no: answers})


def genuine_burst(peer: Peer, key: RSAPrivateKey, orders: int, copies: int) -> Measurement:
    """For each order, ``copies`` genuine copies at once: one holds the lock, the rest lose it."""
    numbers = new_orders(peer, orders)
    answers: dict[str, list[str]] = {}
    with httpx.Client(timeout=30) as client, ThreadPoolExecutor(copies) as pool:
        for no in numbers:
            bodies = [notification(no, key) for _ in range(copies)]
            answers[no] = list(pool.map(lambda body: send(client, peer.url, body), bodies))
    return measure(peer, f"genuine burst x{copies}", numbers, answers)


def forged_probe(peer: Peer) -> Measurement:
    """A forged notification for a real order and one for an order that does not exist."""
    [no] = new_orders(peer, 1)
    missing = f"seed-missing-{uuid.uuid4().hex[:8]}"
    with httpx.Client(timeout=30) as client:
        real = send(client, peer.url, notification(no, forger_key()))
        absent = send(client, peer.url, notification(missing, forger_key()))
    result = measure(peer, "forged", [no], {})
    result.facts.update(forged_real_order=real, forged_unknown_order=absent)
    return result


def wrong_status_and_amount(peer: Peer, key: RSAPrivateKey) -> Measurement:
    """Genuinely signed, but TRADE_CLOSED and for a tenth of the amount: must not pay."""
    [no] = new_orders(peer, 1)
    body = notification(no, key, trade_status="TRADE_CLOSED", total_amount="0.42")
    with httpx.Client(timeout=30) as client:
        answers = [send(client, peer.url, body)]
    return measure(peer, "TRADE_CLOSED, wrong amount", [no], {no: answers})


def _slow_holder(
    peer: SeedPeer,
    key: RSAPrivateKey,
    delay: float,
    scenario: str,
    fault: Callable[[], None],
    recover: Callable[[], None] = lambda: None,
) -> Measurement:
    """Restart with a slow database; copy A takes the lock, copies B-D lose it; then ``fault``."""
    [no] = new_orders(peer, 1)
    peer.serve(db_delay=delay)
    try:
        with httpx.Client(timeout=30) as client, ThreadPoolExecutor(1) as pool:
            holder = pool.submit(send, client, peer.url, notification(no, key))
            time.sleep(0.3)
            losers = [send(client, peer.url, notification(no, key)) for _ in range(3)]
            unpaid_when_answered = no not in peer.counts().paid
            fault()
            answers = [holder.result(), *losers]
    finally:
        recover()
        peer.serve(db_delay=0)
    result = measure(peer, scenario, [no], {no: answers})
    result.facts["losers_answered_while_unpaid"] = unpaid_when_answered
    return result


def loser_then_holder_killed(peer: SeedPeer, key: RSAPrivateKey) -> Measurement:
    """Copies B-D lose the lock while A sleeps in the database; then kill -9 the server."""
    return _slow_holder(peer, key, 2.0, "lock losers, holder killed -9", peer.kill_server)


def postgres_stopped_mid_update(peer: SeedPeer, key: RSAPrivateKey) -> Measurement:
    """PostgreSQL stops while the holder sleeps in it: the update fails, its error is ignored."""
    return _slow_holder(
        peer, key, 2.0, "PostgreSQL stopped mid-update", peer.stop_postgres, peer.start_postgres
    )


def redis_stopped(peer: SeedPeer, key: RSAPrivateKey) -> Measurement:
    """Redis is down: SETNX fails, which the handler takes for a lost race."""
    [no] = new_orders(peer, 1)
    peer.stop_redis()
    try:
        with httpx.Client(timeout=30) as client:
            answers = [send(client, peer.url, notification(no, key))]
    finally:
        peer.start_redis()
    return measure(peer, "Redis stopped", [no], {no: answers})


def ttl_expiry(peer: SeedPeer, key: RSAPrivateKey, margin: float = 0.5) -> Measurement:
    """The database is slower than the lock's TTL: copy B takes the expired lock of copy A."""
    [no] = new_orders(peer, 1)
    lock = f"lock:pay:{no}"
    peer.serve(db_delay=TTL + 2 * margin)
    try:
        with httpx.Client(timeout=30) as client, ThreadPoolExecutor(2) as pool:
            first = pool.submit(send, client, peer.url, notification(no, key))
            time.sleep(TTL + margin)
            second = pool.submit(send, client, peer.url, notification(no, key))
            time.sleep(margin / 2)
            b_holds_lock = peer.redis_exists(lock)
            first_answer = first.result()
            lock_after_a_released = peer.redis_exists(lock)
            b_in_flight = not second.done()
            answers = [first_answer, second.result()]
    finally:
        peer.serve(db_delay=0)
    result = measure(peer, "lock TTL expired under a slow database", [no], {no: answers})
    result.facts.update(
        b_held_lock=b_holds_lock,
        b_lock_left_after_a_del=lock_after_a_released,
        b_in_flight_then=b_in_flight,
    )
    return result


def forged_flood(
    peer: Peer, key: RSAPrivateKey, orders: int = 20, senders: int = 4, padding: int = 65536
) -> Measurement:
    """Forged copies (with a long ``body`` field) hammer each order; one genuine copy is sent."""
    numbers = new_orders(peer, orders)
    genuine: dict[str, list[str]] = {}
    forged: Counter[str] = Counter()
    with httpx.Client(timeout=30) as client, ThreadPoolExecutor(senders) as pool:
        for no in numbers:
            stop = threading.Event()
            body = notification(no, forger_key(), body="x" * padding)
            futures = [pool.submit(_flood, client, peer.url, body, stop) for _ in range(senders)]
            time.sleep(0.05)
            genuine[no] = [send(client, peer.url, notification(no, key))]
            stop.set()
            forged.update(_answers(futures))
    result = measure(peer, f"forged flood ({senders} senders)", numbers, genuine)
    result.facts["forged_answers"] = dict(forged)
    return result


def _flood(client: httpx.Client, url: str, body: bytes, stop: threading.Event) -> Counter[str]:
    answers: Counter[str] = Counter()
    while not stop.is_set():
        answers[send(client, url, body)] += 1
    return answers


def _answers(futures: list[Future[Counter[str]]]) -> Iterator[str]:
    for future in futures:
        yield from future.result().elements()


def run_all(peer: SeedPeer, key: RSAPrivateKey, *, flood_orders: int = 20) -> Iterator[Measurement]:
    """Run every scenario in turn."""
    yield genuine_copies(peer, key, 1)
    yield genuine_copies(peer, key, 5)
    yield genuine_burst(peer, key, 20, 8)
    yield forged_probe(peer)
    yield wrong_status_and_amount(peer, key)
    yield loser_then_holder_killed(peer, key)
    yield redis_stopped(peer, key)
    yield postgres_stopped_mid_update(peer, key)
    yield forged_flood(peer, key, orders=flood_orders)
    yield ttl_expiry(peer, key)
