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

import httpx
from confluent_kafka import Consumer, TopicPartition
from sqlalchemy import func, select

from gateway.settings import GatewaySettings
from paynotify.orders import publish_orders
from paynotify.simulator import (
    SendStats,
    alipay_payment,
    generate_key,
    load_private_key,
    now_utc,
    send_copies,
    sign_alipay,
    write_key_pair,
)
from sinks.rows import anomalies, order_events, orders
from sinks.schema import create_db_engine
from sinks.settings import SinkSettings
from stream.records import ORDER_PAID_TOPIC, ORDERS_TOPIC, ExpectedOrder

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
        write_key_pair(generate_key(), folder / "keys")
        config.write_text(DEMO_CONFIG.format(port=port, bootstrap=bootstrap))
    return config


@dataclass
class DemoResult:
    orders: int
    stats: SendStats
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
    key = load_private_key(private_key)
    run = uuid.uuid4().hex[:8]
    account = next(a for (p, _), a in gateway.accounts.items() if p == "alipay")
    app_id = account.app_id  # type: ignore[union-attr]
    created = now_utc().isoformat()
    numbers = [f"demo-{run}-{i:03d}" for i in range(count)]
    mismatch = f"demo-{run}-mismatch"
    expected = [
        ExpectedOrder(n, account.name, 100 + 7 * i, "CNY", created) for i, n in enumerate(numbers)
    ]
    expected.append(ExpectedOrder(mismatch, account.name, 500, "CNY", created))
    publish_orders(gateway.bootstrap_servers, gateway.topic_prefix + ORDERS_TOPIC, expected)
    url = f"http://{gateway.host}:{gateway.port}/notify/alipay/{account.name}"
    stats = SendStats()
    print(
        f"paynotify: sending {count} orders' payment notifications, {copies} copies each "
        "(sequential and concurrent), a forged copy and a wrong amount",
        flush=True,
    )
    async with httpx.AsyncClient(timeout=15) as client:
        for i, order in enumerate(expected[:count]):
            params = alipay_payment(
                app_id=app_id,
                out_trade_no=order.out_trade_no,
                amount_minor=order.amount_minor,
                notify_id=uuid.uuid4().hex,
                now=now_utc(),
            )
            body = sign_alipay(params, key)
            await send_copies(client, url, body, copies, concurrent=i % 2 == 1, stats=stats)
            if i == 0:
                forged = body.replace(b"total_amount=1.00", b"total_amount=0.01")
                await send_copies(client, url, forged, 1, concurrent=False, stats=stats)
        wrong = alipay_payment(
            app_id=app_id,
            out_trade_no=mismatch,
            amount_minor=50,
            notify_id=uuid.uuid4().hex,
            now=now_utc(),
        )
        await send_copies(client, url, sign_alipay(wrong, key), 2, concurrent=False, stats=stats)
    print(f"paynotify: {stats.sent} sent; waiting for the stream and the sink", flush=True)
    return await asyncio.to_thread(
        _collect, gateway, sink, run, count, stats, mismatch, wait_s, alive
    )


def _collect(
    gateway: GatewaySettings,
    sink: SinkSettings,
    run: str,
    count: int,
    stats: SendStats,
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
        if message.offset() + 1 >= ends[message.partition()]:
            done.add(message.partition())
    consumer.close()
    return counts


def print_result(result: DemoResult) -> None:
    """Print what was sent and what landed, as a small table."""
    print("\npaynotify demo")
    print(f"  orders expected                 {result.orders} (+1 with a wrong amount)")
    print(f"  notifications sent              {result.stats.sent}")
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
