"""CPU per record of the stream's own work, without Kafka: the Quix engine's stateful step.

Runs :class:`stream.engines.quix.OrderStep` (decode, state machine, stored form, due time) over
the records of ``bench/stream_throughput.py`` (one order and two copies of its payment per
number) with a dict of bytes standing in for Quix Streams' RocksDB state, and prints µs per
record: the part of a worker's CPU that is paynotify's, beside what Quix Streams and librdkafka
take (``bench/stream_ceiling.py``). Medians of ``--runs``; ``--profile`` adds cProfile's top.

    .venv/bin/python bench/stream_step.py --orders 20000 --runs 5
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.records import NOTIFICATIONS_TOPIC
from stream.engines.quix import OrderStep
from stream.records import ORDERS_TOPIC
from stream.settings import StreamSettings
from tests.support.quix_state import BytesState
from tests.support.stream_load import order, payment

SETTINGS = StreamSettings("127.0.0.1:1", 8, "", "bench-stream", Path("unused"), "exactly_once", 0.1)


def records(orders: int) -> list[tuple[str, bytes, bytes]]:
    """Return (topic, key, value) per record: each order, then its payment twice."""
    out: list[tuple[str, bytes, bytes]] = []
    for i in range(orders):
        number = f"o-{i}"
        key = number.encode()
        out.append((ORDERS_TOPIC, key, order(number).to_bytes()))
        note = payment(number, f"n-{number}").to_bytes()
        out += [(NOTIFICATIONS_TOPIC, key, note)] * 2
    return out


def run_once(step: OrderStep, batch: list[tuple[str, bytes, bytes]]) -> float:
    """Feed every record to the step with fresh states; return the CPU seconds it took (process
    time: steadier than wall time on a shared machine)."""
    states: dict[bytes, BytesState] = {}
    started = time.process_time()
    for topic, key, value in batch:
        state = states.get(key) or states.setdefault(key, BytesState())
        step.step(topic, 0, 0, key, value, state)  # type: ignore[arg-type]
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    step = OrderStep(SETTINGS)
    batch = records(args.orders)
    per_record = [run_once(step, batch) / len(batch) * 1e6 for _ in range(args.runs)]
    runs = "; ".join(f"{us:.1f}" for us in per_record)
    print(f"{len(batch)} records per run (orders, payments twice), us per record: {runs}")
    print(f"median {statistics.median(per_record):.1f} us per record")
    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(run_once, step, batch)
        pstats.Stats(profile).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
