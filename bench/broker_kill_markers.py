"""Does a single-node broker finish the transactions it had prepared when it was killed?

A transactional commit is two steps on the broker: the coordinator writes "prepare commit" to
``__transaction_state`` and answers the producer, then writes the commit markers to every
partition of the transaction. A ``kill -9`` between the two leaves the markers to the restarted
broker. Kafka 4.4.0's coordinator, restarting on one node, looks the partitions up while the
node's metadata still lacks them, logs "Couldn't find leader endpoint ... likely deleted", and
closes the transaction without its markers: the partitions keep an open transaction for ever.
``read_committed`` readers stop at it and the consumer group's offsets stay "unstable", so a
restarted stream worker fails in every partition assignment (docs/reliability.md, "A broker
kill that hung the stream").

Each trial: a private broker, one ``paynotify stream`` (exactly-once) fed orders and payments
steadily, the broker killed ``--delay`` seconds (a random pick in the range) after the worker's
first assignment, when its first commits are in flight, started again a second later. Counted
after ``--watch`` seconds: the broker's dropped-marker lines, and whether the worker fell into a
restart loop.

    .venv/bin/python bench/broker_kill_markers.py --trials 8
    PAYNOTIFY_KAFKA_VERSION=4.4.0 .venv/bin/python bench/broker_kill_markers.py --trials 8
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.records import NOTIFICATIONS_TOPIC
from paynotify.broker import KAFKA_VERSION, LocalBroker, free_port
from stream.engines.failfast import LOST_EXCEPTION
from stream.records import ORDERS_TOPIC
from tests.support.stack import Service
from tests.support.stream_load import READY, order, payment, producer, write_stream_config

DROPPED = "Couldn't find leader endpoint"  # the coordinator's line for markers it gave up on
RESUMED = "Sending txn markers for"  # a loading coordinator finishing a prepared transaction


def feed(bootstrap: str, prefix: str, stop: threading.Event) -> None:
    """Publish an order and its payment every 10 ms until ``stop``."""
    out = producer(bootstrap)
    number = 0
    while not stop.is_set():
        key = f"k{number:07d}"
        out.produce(prefix + ORDERS_TOPIC, order(key).to_bytes(), key=key.encode())
        note = payment(key, f"n-{key}").to_bytes()
        out.produce(prefix + NOTIFICATIONS_TOPIC, note, key=key.encode())
        out.poll(0)
        number += 1
        time.sleep(0.01)
    out.flush(30)


def trial(delay: float, watch: float) -> tuple[int, int, int]:
    """Run one trial; return the prepared transactions the restarted broker resumed, its
    dropped-marker lines, and the worker's failed assignments after the restart."""
    folder = Path(tempfile.mkdtemp(prefix="paynotify-kill-markers-"))
    broker = LocalBroker(folder / "broker", port=free_port())
    broker.start()
    stop = threading.Event()
    stream: Service | None = None
    feeder: threading.Thread | None = None
    try:
        config, prefix = write_stream_config(
            folder, broker.bootstrap_servers, guarantee="exactly_once", commit=0.1
        )
        stream = Service("stream", config)
        stream.start()
        feeder = threading.Thread(target=feed, args=(broker.bootstrap_servers, prefix, stop))
        feeder.start()
        deadline = time.monotonic() + 120
        while READY["quix"] not in stream.output():
            if time.monotonic() > deadline:
                raise SystemExit("the stream worker never got its partitions")
            time.sleep(0.005)
        time.sleep(delay)
        broker.kill()
        time.sleep(1.0)
        seen = len(stream.output())
        broker.start()
        time.sleep(watch)
        looping = stream.output()[seen:].count(LOST_EXCEPTION)
        log = (broker.data_dir / "logs" / "server.log").read_text(errors="replace")
        return log.count(RESUMED), log.count(DROPPED), looping
    finally:
        stop.set()
        if feeder is not None:
            feeder.join(60)
        if stream is not None:
            stream.stop()
        broker.stop()
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument(
        "--delay", type=float, nargs=2, default=(0.08, 0.25), metavar=("MIN", "MAX")
    )
    parser.add_argument("--watch", type=float, default=30.0, help="seconds after the restart")
    args = parser.parse_args()
    hung = hit = 0
    for number in range(1, args.trials + 1):
        delay = random.uniform(*args.delay)
        resumed, dropped, looping = trial(delay, args.watch)
        hit += resumed > 0
        hung += dropped > 0
        print(
            f"trial {number}: killed {delay:.2f} s after ready; prepared transactions resumed "
            f"{resumed}, dropped-marker lines {dropped}, failed assignments {looping}",
            flush=True,
        )
    print(
        f"Kafka {KAFKA_VERSION}: {hit} of {args.trials} kills caught a prepared transaction; "
        f"{hung} left markers unwritten"
    )


if __name__ == "__main__":
    main()
