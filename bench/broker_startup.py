"""Measure the local Kafka broker: seconds from `java` exec to a client listing topics, and the
JVM's resident memory when ready and after a small produce/consume load. Reports medians.

    .venv/bin/python bench/broker_startup.py --runs 5
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer

from paynotify.broker import KAFKA_VERSION, LocalBroker, ensure_jars, free_port
from paynotify.topics import ensure_topics


def one_run() -> tuple[float, float, float]:
    folder = Path(tempfile.mkdtemp(prefix="paynotify-bench-kafka-"))
    broker = LocalBroker(folder, port=free_port())
    try:
        seconds = broker.start()
        ready_rss = (broker.rss_bytes() or 0) / 2**20
        ensure_topics(broker.bootstrap_servers, ["bench"], 8)
        producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "acks": "all"})
        for i in range(20000):
            producer.produce("bench", value=b"x" * 300, key=str(i).encode())
            if i % 1000 == 0:
                producer.poll(0)
        producer.flush(30)
        consumer = Consumer(
            {
                "bootstrap.servers": broker.bootstrap_servers,
                "group.id": "bench",
                "auto.offset.reset": "earliest",
            }
        )
        consumer.subscribe(["bench"])
        got, deadline = 0, time.monotonic() + 60
        while got < 20000 and time.monotonic() < deadline:
            got += len(consumer.consume(1000, timeout=1))
        consumer.close()
        loaded_rss = (broker.rss_bytes() or 0) / 2**20
        return seconds, ready_rss, loaded_rss
    finally:
        broker.stop()
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    ensure_jars()
    results = []
    for run in range(1, args.runs + 1):
        results.append(one_run())
        start, ready, loaded = results[-1]
        print(
            f"run {run}: ready in {start:.2f}s, RSS {ready:.0f} MiB ready, {loaded:.0f} MiB loaded"
        )
    starts, readies, loads = zip(*results, strict=True)
    print(
        f"\nKafka {KAFKA_VERSION}, heap 512m, {args.runs} runs: median start "
        f"{statistics.median(starts):.2f}s (min {min(starts):.2f}, max {max(starts):.2f}); "
        f"median RSS {statistics.median(readies):.0f} MiB ready, "
        f"{statistics.median(loads):.0f} MiB after 20k records"
    )


if __name__ == "__main__":
    main()
