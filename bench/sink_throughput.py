"""Events per second the database sink writes from a pre-filled ``order-paid`` topic.

The topic holds ``--events`` records: order.paid events of distinct orders plus ``--duplicates``
(30 %) redelivered copies, shuffled. A fresh database (migrated) and a fresh topic prefix per
run; the sink runs in this process; the rate is taken from the first written batch to the last,
so the consumer group's join is not counted. Prints one line per run and the median.

    .venv/bin/python bench/sink_throughput.py --bootstrap 127.0.0.1:9092 \\
        --database postgresql+psycopg://paynotify@127.0.0.1:5432/paynotify --runs 5
    .venv/bin/python bench/sink_throughput.py --bootstrap 127.0.0.1:9092 --database sqlite --runs 5
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

from confluent_kafka import Producer
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from paynotify.topics import ensure_topics
from sinks.consumer import KafkaSink
from sinks.rows import order_events
from sinks.schema import create_db_engine, upgrade
from sinks.settings import SinkSettings
from sinks.writer import SINK_TOPICS
from stream.records import ORDER_PAID_TOPIC, OrderPaid, event_id


def fill(bootstrap: str, prefix: str, events: int, duplicates: float, seed: int) -> int:
    """Produce the events; return how many distinct ones there are."""
    ensure_topics(bootstrap, [prefix + t for t in SINK_TOPICS], 8)
    distinct = round(events / (1 + duplicates))
    values = [_paid(f"b-{n}") for n in range(distinct)]
    rng = random.Random(seed)
    values += [rng.choice(values) for _ in range(events - distinct)]
    rng.shuffle(values)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "acks": "all"})
    for key, value in values:
        while True:
            try:
                producer.produce(prefix + ORDER_PAID_TOPIC, value, key=key)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(60) == 0
    return distinct


def _paid(out_trade_no: str) -> tuple[bytes, bytes]:
    event = OrderPaid(
        event_id=event_id("shop", out_trade_no, "paid"),
        out_trade_no=out_trade_no,
        account="shop",
        provider="alipay",
        provider_trade_no=f"2026112622001{abs(hash(out_trade_no)) % 10**12:012d}",
        amount_minor=100,
        currency="CNY",
        paid_at="2026-11-26T10:00:01+08:00",
        notify_id=f"n-{out_trade_no}",
        status="paid",
        version=1,
    )
    return out_trade_no.encode(), event.to_bytes()


def fresh_database(url: str, folder: Path) -> str:
    """Return the URL of a new empty database next to ``url`` (or a new SQLite file)."""
    if url == "sqlite":
        return f"sqlite:///{folder / f'{uuid.uuid4().hex}.db'}"
    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def run_once(args: argparse.Namespace, folder: Path, seed: int) -> tuple[float, int]:
    prefix = f"bench{uuid.uuid4().hex[:8]}-"
    distinct = fill(args.bootstrap, prefix, args.events, args.duplicates, seed)
    engine = create_db_engine(fresh_database(args.database, folder))
    upgrade(engine)
    settings = SinkSettings(
        database_url=str(engine.url),
        bootstrap_servers=args.bootstrap,
        topic_prefix=prefix,
        group_id=f"{prefix}sink",
        batch_size=args.batch_size,
        flush_interval_s=args.flush_interval,
    )
    sink = KafkaSink(settings, engine)
    stop = threading.Event()
    thread = threading.Thread(target=sink.run, args=(stop,))
    thread.start()
    first_at, first = 0.0, 0
    deadline = time.monotonic() + 600
    while sink.written.records < args.events and time.monotonic() < deadline:
        if not first and sink.written.records:
            first_at, first = time.monotonic(), sink.written.records
        time.sleep(0.002)
    done_at = time.monotonic()
    stop.set()
    thread.join()
    with engine.connect() as conn:
        rows = conn.scalar(select(func.count()).select_from(order_events))
    engine.dispose()
    assert rows == distinct, (rows, distinct)
    return (sink.written.records - first) / (done_at - first_at), rows or 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--database", required=True, help="a PostgreSQL URL, or 'sqlite'")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--duplicates", type=float, default=0.3)
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--flush-interval", type=float, default=0.2)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rates: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            rate, rows = run_once(args, Path(tmp), seed=run)
            rates.append(rate)
            print(f"run {run + 1}: {rate:,.0f} events/s ({args.events} events, {rows} rows)")
    print(
        f"median {statistics.median(rates):,.0f} events/s "
        f"(min {min(rates):,.0f}, max {max(rates):,.0f})"
    )


if __name__ == "__main__":
    main()
