"""Where one stream worker spends its time on pre-filled topics (py-spy, sampled).

    .venv/bin/pip install py-spy
    .venv/bin/python bench/stream_profile.py --orders 20000 --seconds 15 --guarantee at_least_once

Prints the share of samples per leaf function, per top-level area (faust/mode, aiokafka,
json/dataclasses, RocksDB, our code) and, inclusive (a function counted once per sample whose
stack holds it), the functions that hold the most samples. ``--raw FILE`` analyses a profile kept
earlier with ``--keep FILE`` instead of running one.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.stream_throughput import wait_ready
from paynotify.broker import LocalBroker, free_port
from tests.support.stack import Service
from tests.support.stream_load import fill, write_stream_config

AREAS = (
    ("stream/", "paynotify stream code"),
    ("gateway/records", "record decoding (ours)"),
    ("aiokafka", "aiokafka"),
    ("faust", "faust"),
    ("quixstreams", "quixstreams"),
    ("confluent_kafka", "confluent-kafka"),
    ("mode", "mode (faust's service library)"),
    ("rocksdict", "RocksDB"),
    ("json", "json"),
    ("dataclasses", "dataclasses"),
    ("asyncio", "asyncio event loop"),
)


def area(frame: str) -> str:
    for needle, name in AREAS:
        if needle in frame:
            return name
    return "other"


def report(out: Path) -> None:
    """Print the shares of samples of a py-spy ``raw`` profile: areas, leaves, chains, inclusive."""
    leaves: collections.Counter[str] = collections.Counter()
    callers: collections.Counter[tuple[str, ...]] = collections.Counter()
    areas: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        n = int(count)
        total += n
        leaves[frames[-1]] += n
        callers[tuple(frames[-6:])] += n
        for function in {re.sub(r":\d+\)$", ")", frame) for frame in frames}:
            inclusive[function] += n
        ours = [f for f in frames if "stream/" in f or "gateway/records" in f]
        areas[area(frames[-1]) if not ours else area(ours[-1]) + " (and below)"] += n
    print(f"{total} samples")
    for name, n in areas.most_common(12):
        print(f"{100 * n / total:5.1f}%  {name}")
    print("top leaf frames:")
    for name, n in leaves.most_common(15):
        print(f"{100 * n / total:5.1f}%  {name}")
    print("top call chains (last six frames):")
    for chain, n in callers.most_common(8):
        print(f"{100 * n / total:5.1f}%  " + "\n        <- ".join(reversed(chain)))
    print("inclusive (the function or anything it calls):")
    for name, n in inclusive.most_common(40):
        if "(" in name and "threading.py" not in name and "runpy" not in name:
            print(f"{100 * n / total:5.1f}%  {name}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=20000)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--guarantee", default="at_least_once")
    parser.add_argument("--blocking", action="store_true", help="pause the worker per sample")
    parser.add_argument("--keep", help="copy the raw py-spy output here")
    parser.add_argument("--engine", choices=("quix", "faust"), default="quix")
    parser.add_argument("--raw", help="analyse this kept py-spy output; run nothing")
    args = parser.parse_args()
    if args.raw:
        report(Path(args.raw))
        return 0
    folder = Path(tempfile.mkdtemp(prefix="paynotify-profile-"))
    broker = LocalBroker(folder / "kafka", port=free_port())
    broker.start()
    try:
        config, prefix = write_stream_config(
            folder, broker.bootstrap_servers, guarantee=args.guarantee, engine=args.engine
        )
        fill(broker.bootstrap_servers, prefix, [f"p-{i}" for i in range(args.orders)], copies=2)
        worker = Service("stream", config)
        worker.start()
        wait_ready(worker, args.engine)
        assert worker.process is not None
        out = folder / "profile.txt"
        spy = Path(sys.executable).parent / "py-spy"
        mode = [] if args.blocking else ["--nonblocking"]
        subprocess.run(
            [str(spy), "record", "--pid", str(worker.process.pid), "--duration", str(args.seconds),
             "--format", "raw", "--output", str(out), "--subprocesses", *mode],
            check=True, capture_output=True,
        )  # fmt: skip
        worker.stop()
        if args.keep:
            shutil.copy(out, args.keep)
        report(out)
    finally:
        broker.stop()
        shutil.rmtree(folder, ignore_errors=True)
    time.sleep(0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
