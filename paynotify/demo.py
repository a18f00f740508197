"""The quick-start demonstration: a burst of signed Alipay notifications, duplicates, a forged
copy and an amount mismatch, then a check of the database and the ``order-paid`` topic."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from sqlalchemy import func, select

from gateway.settings import GatewaySettings
from paynotify.orders import publish_orders
from paynotify.simulator.keys import load_private_key, signing_keys_for
from paynotify.simulator.plan import Delivery, Expected, Message, Options, Plan, PlannedOrder
from paynotify.simulator.report import Tally
from paynotify.simulator.runner import Target, expected_orders, now_iso, simulate
from paynotify.simulator.verification import count_paid_events
from sinks.rows import anomalies, order_events, orders
from sinks.schema import create_db_engine
from sinks.settings import SinkSettings
from stream.records import ORDER_PAID_TOPIC, ORDERS_TOPIC

DEMO_CONFIG = """\
# Written by `paynotify up --demo`: a local stack with one Alipay account whose signing key
# (keys/alipay_private.pem) plays Alipay. Never use this key for anything real.
[gateway]
listen = "127.0.0.1:{port}"

[kafka]
bootstrap_servers = "{bootstrap}"
partitions = 8

[database]
url = "sqlite:///paynotify.db"

[stream]
data_dir = "stream-data"

[demo]
alipay_private_key = "keys/alipay_private.pem"

[[accounts]]
name = "shop-alipay"
provider = "alipay"
app_id = "2021000000000000"
alipay_public_keys = ["keys/alipay_public.pem"]
"""


def write_demo_config(folder: Path, port: int = 8000, bootstrap: str = "127.0.0.1:9092") -> Path:
    """Create the demo folder (config, generated key pair) unless it exists; return the file."""
    config = folder / "paynotify.toml"
    if not config.is_file():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        write_key_pair(key, folder / "keys")
        config.write_text(DEMO_CONFIG.format(port=port, bootstrap=bootstrap))
    return config


def write_key_pair(key: RSAPrivateKey, folder: Path) -> tuple[Path, Path]:
    """Write the private key (PKCS#8 PEM) and the public key (SPKI PEM); return both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    private = folder / "alipay_private.pem"
    public = folder / "alipay_public.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    private.chmod(0o600)
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


@dataclass
class DemoResult:
    orders: int
    stats: Tally
    paid_rows: int
    event_rows: int
    paid_events_on_topic: Counter[str]
    mismatch_paid: bool
    anomaly_rows: int

    @property
    def ok(self) -> bool:
        once = all(n == 1 for n in self.paid_events_on_topic.values())
        return (
            self.paid_rows == self.orders
            and self.event_rows == self.orders
            and once
            and len(self.paid_events_on_topic) == self.orders
            and not self.mismatch_paid
            and self.anomaly_rows >= 1
        )


def demo_plan(account: str, run: str, count: int, copies: int) -> Plan:
    """Return the burst as a simulator plan: ``count`` orders paid ``copies`` times each (one
    after another for even orders, all at once for odd ones), a tampered copy of the first
    payment, and an order paid twice with the wrong amount."""
    planned = []
    for i in range(count):
        at = (Delivery(0.0, copies),) if i % 2 else tuple(Delivery(n) for n in range(copies))
        messages = [Message("payment", uuid.uuid4().hex, 100 + 7 * i, at)]
        if i == 0:
            messages.append(
                Message("payment", messages[0].notify_id, 100, (Delivery(copies),), "tampered")
            )
        planned.append(
            _order(
                f"demo-{run}-{i:03d}",
                account,
                100 + 7 * i,
                messages,
                Expected("paid", paid_events=1),
            )
        )
    wrong = Message("payment", uuid.uuid4().hex, 50, (Delivery(0.0), Delivery(1.0)))
    mismatch = Expected("created", anomalies=("amount_mismatch",))
    planned.append(_order(f"demo-{run}-mismatch", account, 500, [wrong], mismatch))
    return Plan(Options(orders=len(planned), run_id=f"demo-{run}"), tuple(planned))


def _order(
    number: str, account: str, amount: int, messages: list[Message], expected: Expected
) -> PlannedOrder:
    return PlannedOrder(
        number,
        "alipay",
        account,
        amount,
        "CNY",
        ("demo",),
        tuple(messages),
        expected,
        uuid.uuid4().hex,
    )


async def run_demo(
    gateway: GatewaySettings,
    sink: SinkSettings,
    private_key: Path,
    *,
    count: int = 20,
    copies: int = 5,
    wait_s: float = 90.0,
    alive: Callable[[], None] = lambda: None,
) -> DemoResult:
    """Send the burst and wait until the sink has written its effects."""
    run = uuid.uuid4().hex[:8]
    account = next(a for (p, _), a in gateway.accounts.items() if p == "alipay")
    keys = {("alipay", account.name): signing_keys_for(account, load_private_key(private_key))}
    plan = demo_plan(account.name, run, count, copies)
    topic = gateway.topic_prefix + ORDERS_TOPIC
    publish_orders(gateway.bootstrap_servers, topic, expected_orders(plan, now_iso()))
    print(
        f"paynotify: sending {count} orders' payment notifications, {copies} copies each "
        "(sequential and concurrent), a forged copy and a wrong amount",
        flush=True,
    )
    target = Target(f"http://{gateway.host}:{gateway.port}")
    report = await simulate(plan, target, keys, rate=0, concurrency=copies, time_factor=20.0)
    stats = report.total()
    mismatch = plan.orders[-1].out_trade_no
    print(f"paynotify: {stats.requests} sent; waiting for the stream and the sink", flush=True)
    return await asyncio.to_thread(
        _collect, gateway, sink, run, count, stats, mismatch, wait_s, alive
    )


def _collect(
    gateway: GatewaySettings,
    sink: SinkSettings,
    run: str,
    count: int,
    stats: Tally,
    mismatch: str,
    timeout: float,
    alive: Callable[[], None],
) -> DemoResult:
    engine = create_db_engine(sink.database_url)
    like = f"demo-{run}-%"
    deadline = time.monotonic() + timeout
    while True:
        with engine.connect() as conn:
            paid = (
                conn.scalar(
                    select(func.count())
                    .select_from(orders)
                    .where(orders.c.out_trade_no.like(like), orders.c.status == "paid")
                )
                or 0
            )
            events = (
                conn.scalar(
                    select(func.count())
                    .select_from(order_events)
                    .where(order_events.c.out_trade_no.like(like))
                )
                or 0
            )
            odd = (
                conn.scalar(
                    select(func.count())
                    .select_from(anomalies)
                    .where(anomalies.c.out_trade_no == mismatch)
                )
                or 0
            )
        if (paid >= count and odd >= 1) or time.monotonic() > deadline:
            break
        alive()
        time.sleep(0.5)
    with engine.connect() as conn:
        mismatch_paid = (
            conn.scalar(select(orders.c.status).where(orders.c.out_trade_no == mismatch)) == "paid"
        )
    engine.dispose()
    on_topic = count_paid_events(
        gateway.bootstrap_servers, gateway.topic_prefix + ORDER_PAID_TOPIC, f"demo-{run}-"
    )
    return DemoResult(count, stats, paid, events, on_topic, mismatch_paid, odd)


def print_result(result: DemoResult) -> None:
    """Print what was sent and what landed, as a small table."""
    print("\npaynotify demo")
    print(f"  orders expected                 {result.orders} (+1 with a wrong amount)")
    print(f"  notifications sent              {result.stats.requests}")
    for answer, n in sorted(result.stats.answers.items()):
        print(f"    answered {answer!r:<24} {n}")
    topic_total = sum(result.paid_events_on_topic.values())
    print(
        f"  order-paid events on the topic  {topic_total}"
        f" for {len(result.paid_events_on_topic)} orders"
    )
    print(f"  paid rows in the database       {result.paid_rows}")
    print(f"  order_events rows               {result.event_rows}")
    print(f"  wrong-amount order paid?        {'YES (bug)' if result.mismatch_paid else 'no'}")
    print(f"  anomalies recorded for it       {result.anomaly_rows}")
    print(
        f"  result                          {'OK: one effect per order' if result.ok else 'FAILED'}"
    )
