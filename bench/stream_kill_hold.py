"""How long does a ``kill -9`` of a stream worker hold ``read_committed`` readers?

Under exactly-once, a killed worker leaves its last transaction open; until it is aborted (a new
producer with the same ``transactional.id`` fences it, or ``transaction.timeout.ms`` passes), the
partitions it wrote keep their last stable offset, and a ``read_committed`` reader of
``order-paid`` sees nothing newer there, whoever processes the inputs meanwhile.

A private broker; orders with their payments produced steadily (``--rate`` orders/s); a reader
tailing ``order-paid`` (read_committed) notes when each record arrives, per partition. Then:

- ``restart``: one ``paynotify stream``; its worker process (the supervisor's child) gets SIGKILL
  and the supervisor starts a new one on the same data folder (same transactional id);
- ``takeover``: two ``paynotify stream`` (two data folders, two ids); the first one's whole
  process tree gets SIGKILL and is not restarted; the second takes its partitions once the group
  notices (``session_timeout_seconds``, 10 s here).

"Held" is, per ``order-paid`` partition, the longest time without a new visible record around
the kill; the figure is the largest over partitions (under steady load the normal gap is about
one commit interval).

    .venv/bin/python bench/stream_kill_hold.py --scenario restart --scenario takeover --runs 3
    .venv/bin/python bench/stream_kill_hold.py --engine faust --scenario restart --runs 3
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.stream_throughput import wait_ready
from gateway.records import NOTIFICATIONS_TOPIC
from paynotify.broker import LocalBroker, free_port
from stream.records import ORDERS_TOPIC
from tests.support.stack import Service
from tests.support.stream_load import order, payment, producer, write_stream_config


class Arrivals(threading.Thread):
    """Tail a topic read_committed; keep the arrival times per partition."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.times: dict[int, list[float]] = {}
        self.done = threading.Event()
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"hold-{uuid.uuid4()}",
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 10,
            }
        )
        self.consumer.assign([TopicPartition(topic, p, 0) for p in range(8)])

    def run(self) -> None:
        while not self.done.is_set():
            for message in self.consumer.consume(1000, 0.05):
                if not message.error():
                    self.times.setdefault(message.partition(), []).append(time.monotonic())
        self.consumer.close()


def feed(bootstrap: str, prefix: str, rate: int, stop: threading.Event) -> None:
    """Produce ``rate`` orders per second, each with its payment, until ``stop``."""
    out, sent, start = producer(bootstrap), 0, time.monotonic()
    while not stop.is_set():
        due = int((time.monotonic() - start) * rate)
        for i in range(sent, due):
            number = f"h-{i}"
            out.produce(prefix + ORDERS_TOPIC, order(number).to_bytes(), key=number.encode())
            note = payment(number, f"n-{number}").to_bytes()
            out.produce(prefix + NOTIFICATIONS_TOPIC, note, key=number.encode())
        sent = max(sent, due)
        out.poll(0)
        time.sleep(0.005)
    out.flush(30)


def worker_child(service: Service) -> int:
    """Return the pid of the worker process ``paynotify stream`` supervises."""
    assert service.process is not None
    pid = service.process.pid
    return int(Path(f"/proc/{pid}/task/{pid}/children").read_text().split()[0])


def longest_gap(times: list[float], killed: float, until: float) -> float:
    """Return the longest gap between arrivals from one second before the kill until ``until``
    (when the feeding stopped)."""
    around = [t for t in times if killed - 1.0 <= t <= until]
    marks = [killed - 1.0, *around, until]
    return max((b - a for a, b in itertools.pairwise(marks)), default=0.0)


def run_once(folder: Path, bootstrap: str, scenario: str, rate: int, engine: str) -> float:
    """Return the longest time, over partitions, a read_committed reader saw nothing new."""
    config, prefix = write_stream_config(
        folder / "a", bootstrap, guarantee="exactly_once", engine=engine
    )
    workers = [Service("stream", config)]
    if scenario == "takeover":
        other, _ = write_stream_config(
            folder / "b", bootstrap, guarantee="exactly_once", prefix=prefix, engine=engine
        )
        workers.append(Service("stream", other))
    stop, arrivals = threading.Event(), Arrivals(bootstrap, prefix + "order-paid")
    arrivals.start()
    feeder = threading.Thread(target=feed, args=(bootstrap, prefix, rate, stop), daemon=True)
    try:
        for worker in workers:
            worker.start()
            wait_ready(worker, engine)
        feeder.start()
        time.sleep(8)  # steady state, both workers holding partitions
        assert workers[0].process is not None
        first = workers[0].process.pid
        victim = worker_child(workers[0]) if scenario == "restart" else first
        killed = time.monotonic()
        os.kill(victim, signal.SIGKILL)  # takeover: the supervisor's child dies with it
        time.sleep(45)
        until = time.monotonic()
        stop.set()
        feeder.join(30)
        time.sleep(2)
    finally:
        arrivals.done.set()
        arrivals.join(10)
        for worker in workers:
            worker.stop()
    return max(longest_gap(times, killed, until) for times in arrivals.times.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", action="append", choices=("restart", "takeover"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--engine", default="quix", choices=("quix", "faust"))
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="paynotify-hold-"))
    broker = LocalBroker(folder / "kafka", port=free_port())
    broker.start()
    results: dict[str, list[float]] = {}
    try:
        for scenario in args.scenario or ["restart", "takeover"]:
            for run in range(args.runs):
                base = folder / f"{scenario}-{run}"
                held = run_once(base, broker.bootstrap_servers, scenario, args.rate, args.engine)
                results.setdefault(scenario, []).append(held)
                print(f"{scenario} run {run}: readers held {held:.1f} s", flush=True)
    finally:
        broker.stop()
    summary = {s: {"median_s": round(statistics.median(v), 1), "runs_s": [round(x, 1) for x in v]}
               for s, v in results.items()}  # fmt: skip
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
