"""Stream benchmark: notifications per second through one worker, and end-to-end latency.

Throughput: ``orders`` and ``payment-notifications`` are filled first (every payment twice, so
half the notifications are duplicates); one worker (``--engine``, default quix) then starts
and the clock runs from its ready line until the last ``order-paid`` event becomes visible to
a read_committed reader (wall clock).

Latency: with the worker running, notifications are produced at a fixed rate (their orders
first); latency is from the notification record's timestamp to the moment a ``read_committed``
reader tailing ``order-paid`` receives the order's event (commit interval 0.1 s, the default).

    .venv/bin/python bench/stream_throughput.py --orders 20000 --rate 1000 --seconds 20 \
        --guarantee exactly_once --guarantee at_least_once --runs 3 --engine quix
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.records import NOTIFICATIONS_TOPIC
from paynotify.broker import LocalBroker, free_port
from stream.records import ORDERS_TOPIC
from tests.support.stack import Service
from tests.support.stream_load import (
    READY,
    fill,
    order,
    payment,
    producer,
    write_stream_config,
)


def committed_records(bootstrap: str, topic: str, settle: float = 1.0) -> list[tuple[str, int]]:
    """Return (key, timestamp ms) of every committed record of ``topic``."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{uuid.uuid4()}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in parts])
    out: list[tuple[str, int]] = []
    quiet = time.monotonic()
    while time.monotonic() - quiet < settle:
        for message in consumer.consume(1000, 0.2):
            if not message.error():
                out.append((message.key().decode(), message.timestamp()[1]))
                quiet = time.monotonic()
    consumer.close()
    return out


def count_paid(bootstrap: str, prefix: str) -> int:
    return len(committed_records(bootstrap, prefix + "order-paid", settle=0.5))


def wait_ready(worker: Service, engine: str, timeout: float = 120.0) -> float:
    deadline = time.monotonic() + timeout
    while READY[engine] not in worker.output():
        if time.monotonic() > deadline:
            raise SystemExit(f"worker not ready:\n{worker.output()[-2000:]}")
        time.sleep(0.05)
    return time.monotonic()


def throughput(folder: Path, bootstrap: str, engine: str, guarantee: str, orders: int) -> float:
    """Return notifications per second through one worker on pre-filled topics."""
    config, prefix = write_stream_config(
        folder, bootstrap, guarantee=guarantee, commit=1.0, engine=engine
    )
    fill(bootstrap, prefix, [f"b-{i}" for i in range(orders)], copies=2)
    visible = VisibleAt(bootstrap, prefix + "order-paid")
    worker = Service("stream", config)
    worker.start()
    try:
        started = wait_ready(worker, engine)
        wall_at_ready = time.time() - (time.monotonic() - started)
        while len(visible.seen) < orders:
            time.sleep(0.2)
        # when the last event became visible to a read_committed reader: record timestamps
        # would not do, Quix Streams gives an output its input's timestamp
        return 2 * orders / (max(visible.stop().values()) - wall_at_ready)
    finally:
        visible.stop()
        worker.stop()


class VisibleAt:
    """Tail a topic as a downstream ``read_committed`` reader would, and note when each key
    first became visible (wall clock): under exactly_once an event is visible only once its
    transaction commits, which its record timestamp (taken when it was produced) does not show."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.seen: dict[str, float] = {}
        self.done = threading.Event()
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"bench-{uuid.uuid4()}",
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 5,
            }
        )
        parts = self.consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self.consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.done.is_set():
            for message in self.consumer.consume(1000, 0.05):
                if not message.error():
                    self.seen.setdefault(message.key().decode(), time.time())
        self.consumer.close()

    def stop(self) -> dict[str, float]:
        self.done.set()
        self.thread.join(10)
        return self.seen


def latency(
    folder: Path, bootstrap: str, engine: str, guarantee: str, rate: int, seconds: int
) -> list[float]:
    """Return per-order latencies (ms) from a notification record's timestamp to the moment its
    ``order-paid`` event became visible to a ``read_committed`` reader."""
    config, prefix = write_stream_config(
        folder, bootstrap, guarantee=guarantee, commit=0.1, engine=engine
    )
    worker = Service("stream", config)
    worker.start()
    try:
        wait_ready(worker, engine)
        visible = VisibleAt(bootstrap, prefix + "order-paid")
        out = producer(bootstrap)
        sent = 0
        start = time.monotonic()
        while sent < rate * seconds:
            due = int((time.monotonic() - start) * rate)
            for i in range(sent, min(due, rate * seconds)):
                number = f"l-{i}"
                out.produce(prefix + ORDERS_TOPIC, order(number).to_bytes(), key=number.encode())
                note = payment(number, f"n-{number}").to_bytes()
                out.produce(prefix + NOTIFICATIONS_TOPIC, note, key=number.encode())
            sent = max(sent, due)
            out.poll(0)
            time.sleep(0.002)
        out.flush(30)
        deadline = time.monotonic() + 120
        while len(visible.seen) < rate * seconds and time.monotonic() < deadline:
            time.sleep(0.2)
        seen = visible.stop()
        notes = dict(committed_records(bootstrap, prefix + NOTIFICATIONS_TOPIC))
        return [1000.0 * at - notes[key] for key, at in seen.items()]
    finally:
        worker.stop()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=20000)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--guarantee", action="append", default=[])
    parser.add_argument("--latency-only", action="store_true")
    parser.add_argument("--throughput-only", action="store_true")
    parser.add_argument("--engine", choices=("quix", "faust"), default="quix")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="paynotify-bench-stream-"))
    broker = LocalBroker(folder / "kafka", port=free_port())
    broker.start()
    bootstrap = broker.bootstrap_servers
    results: dict[str, dict[str, object]] = {}
    engine = args.engine
    try:
        for guarantee in args.guarantee or ["exactly_once", "at_least_once"]:
            rates, p50s, p99s = [], [], []
            for run in range(args.runs):
                base = folder / f"{guarantee}-{run}"
                if not args.latency_only:
                    rates.append(throughput(base / "t", bootstrap, engine, guarantee, args.orders))
                if not args.throughput_only:
                    lat = latency(base / "l", bootstrap, engine, guarantee, args.rate, args.seconds)
                    p50s.append(percentile(lat, 0.50))
                    p99s.append(percentile(lat, 0.99))
                print(
                    guarantee,
                    run,
                    f"{rates[-1]:.0f}/s" if rates else "-",
                    f"p50 {p50s[-1]:.0f} ms" if p50s else "-",
                    f"p99 {p99s[-1]:.0f} ms" if p99s else "-",
                    flush=True,
                )
            results[guarantee] = {
                "notifications_per_s_median": round(statistics.median(rates)) if rates else None,
                "runs": [round(r) for r in rates],
                "latency_p50_ms_median": statistics.median(p50s) if p50s else None,
                "latency_p99_ms_median": statistics.median(p99s) if p99s else None,
            }
        print(json.dumps({"engine": engine, **results}, indent=2))
    finally:
        broker.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
