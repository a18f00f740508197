"""Drive the stream worker on a real broker: write orders and notifications, read what it emitted.

Used by the stream's integration tests and by ``bench/stream_throughput.py``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from gateway.records import NOTIFICATIONS_TOPIC, Notification
from paynotify.topics import ensure_topics
from stream.records import ALL_TOPICS, ORDERS_TOPIC, ExpectedOrder

STREAM_CONFIG = """\
[kafka]
bootstrap_servers = "{bootstrap}"
partitions = {partitions}
topic_prefix = "{prefix}"

[database]
url = "{database}"

[stream]
engine = "{engine}"
data_dir = "{data_dir}"
processing_guarantee = "{guarantee}"
commit_interval_seconds = {commit}
standby_replicas = {standbys}
session_timeout_seconds = 10
tick_interval_seconds = {tick}
pending_timeout_seconds = {pending}
"""


READY = {"quix": "stream worker ready", "faust": "Worker ready"}  # each engine's log line


def write_stream_config(
    folder: Path,
    bootstrap: str,
    *,
    guarantee: str = "at_least_once",
    data_dir: str = "stream-data",
    partitions: int = 8,
    prefix: str | None = None,
    commit: float = 0.5,
    standbys: int = 1,
    engine: str = "quix",
    database: str = "sqlite:///unused.db",
    tick: float = 2.0,
    pending: float = 3600.0,
    metrics_listen: str | None = None,
) -> tuple[Path, str]:
    """Write a stream-only config for ``engine`` with a fresh topic prefix; create its topics."""
    prefix = prefix or f"s{uuid.uuid4().hex[:10]}-"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"stream-{data_dir}.toml"
    path.write_text(
        STREAM_CONFIG.format(
            bootstrap=bootstrap,
            partitions=partitions,
            prefix=prefix,
            data_dir=data_dir,
            guarantee=guarantee,
            commit=commit,
            standbys=standbys,
            engine=engine,
            database=database,
            tick=tick,
            pending=pending,
        )
        + (f'metrics_listen = "{metrics_listen}"\n' if metrics_listen else "")
    )
    ensure_topics(bootstrap, [prefix + t for t in ALL_TOPICS], partitions)
    return path, prefix


def order(number: str, amount: int = 100) -> ExpectedOrder:
    """Return the expected order ``number`` of the test shop."""
    return ExpectedOrder(number, "shop", amount, "CNY", "2026-11-26T10:00:00+08:00")


def payment(number: str, notify_id: str, amount: int = 100) -> Notification:
    """Return a verified Alipay-like payment notification for ``number``."""
    now = datetime.now(UTC).isoformat()
    return Notification(
        provider="alipay",
        account="shop",
        notify_id=notify_id,
        out_trade_no=number,
        kind="payment",
        status="TRADE_SUCCESS",
        amount_minor=amount,
        currency="CNY",
        provider_trade_no=f"t-{number}",
        occurred_at=now,
        received_at=now,
        raw_body_b64="",
        succeeded=True,
    )


def producer(bootstrap: str) -> Producer:
    """Return an idempotent producer that partitions like faust (murmur2)."""
    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "partitioner": "murmur2_random",
            "enable.idempotence": True,
            "linger.ms": 5,
        }
    )


def fill(bootstrap: str, prefix: str, numbers: list[str], *, copies: int = 2) -> None:
    """Publish one order and ``copies`` copies of its payment for each number."""
    out = producer(bootstrap)
    for number in numbers:
        out.produce(prefix + ORDERS_TOPIC, order(number).to_bytes(), key=number.encode())
        note = payment(number, f"n-{number}").to_bytes()
        for _ in range(copies):
            out.produce(prefix + NOTIFICATIONS_TOPIC, note, key=number.encode())
        out.poll(0)
    assert out.flush(60) == 0


def read_committed(bootstrap: str, topic: str, *, settle: float = 2.0) -> list[dict[str, Any]]:
    """Read every committed record of ``topic`` (as a downstream consumer would) as JSON."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"probe-{uuid.uuid4()}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in parts])
    values: list[dict[str, Any]] = []
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < settle:
        message = consumer.poll(0.2)
        if message is None or message.error():
            continue
        values.append(json.loads(message.value()))
        quiet_since = time.monotonic()
    consumer.close()
    return values


def paid_per_order(bootstrap: str, prefix: str) -> Counter[str]:
    """Count committed ``order-paid`` events per order."""
    return Counter(v["out_trade_no"] for v in read_committed(bootstrap, prefix + "order-paid"))


def wait_paid(bootstrap: str, prefix: str, expected: int, timeout: float = 120.0) -> Counter[str]:
    """Wait until ``expected`` orders have a committed ``order-paid`` event; return the counts."""
    deadline = time.monotonic() + timeout
    counts = paid_per_order(bootstrap, prefix)
    while len(counts) < expected and time.monotonic() < deadline:
        time.sleep(1.0)
        counts = paid_per_order(bootstrap, prefix)
    return counts
