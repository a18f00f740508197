"""How fast can one stream worker go on this machine, whatever it does, for each engine? (issue
4's "if faust itself is the ceiling, say so"; issue 11's "is Quix Streams?").

Pre-fills ``orders`` and ``payment-notifications`` (every payment twice, as in
``bench/stream_throughput.py``), then runs, one after another on fresh topics, workers that do
less and less than ``paynotify stream``. faust:

- ``noop``: an agent over the same three input topics that only iterates the events;
- ``table``: plus one get and one set of a RocksDB table (changelog) per record;
- ``table-send``: plus one transactional send per record to an output topic (not awaited, as the
  real worker does under exactly_once), through the same commit gate
  (``stream/engines/faust_internals.py``);
- ``paynotify``: the real ``paynotify stream`` worker with ``engine = "faust"``.

Quix Streams (an ``Application`` over the same three topics merged with ``concat``, raw bytes):

- ``quix-bare``: iterate only;
- ``quix-state``: plus one ``state.get`` and one ``state.set`` per record (RocksDB, changelog);
- ``quix-state-produce``: plus one produce per record to an output topic (``to_topic``), in the
  exactly-once transaction when the guarantee is ``exactly_once``;
- ``paynotify-quix``: the real ``paynotify stream`` worker with ``engine = "quix"``;
- ``paynotify-quix-2``: two of them in one consumer group, each with its own data folder. Both
  start on empty topics; once the group holds both and each is ready, the topics are filled and
  the clock runs from the start of the filling (so no rebalance is timed, the filling is);
  "CPU" is then both workers' together.

Each is timed from its ready line until its consumer group has committed every input offset;
the rate is notifications (not orders) per second. Medians of ``--runs``.

    .venv/bin/python bench/stream_ceiling.py --orders 10000 --runs 3 --guarantee exactly_once
    .venv/bin/python bench/stream_ceiling.py --variant quix-state-produce --variant paynotify-quix
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.stream_throughput import wait_ready
from gateway.records import NOTIFICATIONS_TOPIC
from paynotify.broker import LocalBroker, free_port
from stream.engines.faust import BATCH_BYTES
from stream.records import ORDERS_TOPIC, TICKS_TOPIC
from tests.support.kafka_checks import committed, end_offsets, wait_group_members
from tests.support.stack import Service
from tests.support.stream_load import fill, write_stream_config

FAUST_VARIANTS = ("noop", "table", "table-send", "paynotify")
QUIX_VARIANTS = (
    "quix-bare",
    "quix-state",
    "quix-state-produce",
    "paynotify-quix",
    "paynotify-quix-2",
)
VARIANTS = FAUST_VARIANTS + QUIX_VARIANTS
SERVED = tuple(v for v in VARIANTS if not v.startswith("paynotify"))
READY_FAUST, READY_QUIX = "Worker ready", "stream worker ready"
INPUTS = (ORDERS_TOPIC, NOTIFICATIONS_TOPIC)


def serve_quix(variant: str, bootstrap: str, prefix: str, guarantee: str, data_dir: str) -> None:
    """Run one bare Quix Streams worker (in this process) until it is stopped."""
    from quixstreams import Application, State

    from paynotify.logs import setup_logging
    from stream.engines.quix import FETCH, LINGER_MS, STATS_INTERVAL_MS, ReadyLog

    setup_logging("INFO")
    exactly_once = guarantee == "exactly_once"
    app = Application(
        broker_address=bootstrap,
        consumer_group=f"{prefix}ceiling-{variant}",
        auto_offset_reset="earliest",
        commit_interval=1.0,
        processing_guarantee="exactly-once" if exactly_once else "at-least-once",
        state_dir=data_dir,
        loglevel=None,
        # the worker's own producer settings, so that the variants differ only in the work
        producer_extra_config={
            "partitioner": "murmur2_random",
            "linger.ms": LINGER_MS[exactly_once],
        },
        consumer_extra_config={
            "statistics.interval.ms": STATS_INTERVAL_MS,
            "stats_cb": ReadyLog(),
            **FETCH,
        },
    )
    raw = {"key_deserializer": "bytes", "value_deserializer": "bytes"}
    frames = [app.dataframe(app.topic(prefix + t, **raw)) for t in (*INPUTS, TICKS_TOPIC)]
    sdf = frames[0].concat(frames[1]).concat(frames[2])

    def keep(value: bytes, state: State) -> bytes:
        before = state.get("v")
        state.set("v", value.decode() if before is None else before)
        return value

    if variant == "quix-bare":
        sdf = sdf.update(lambda _value: None)
    else:
        sdf = sdf.apply(keep, stateful=True)
    if variant == "quix-state-produce":
        sdf.to_topic(app.topic(prefix + "order-paid", value_serializer="bytes"))
    app.run()


def serve(variant: str, bootstrap: str, prefix: str, guarantee: str, data_dir: str) -> None:
    """Run one bare faust worker (in this process) until it is stopped."""
    import faust

    from stream.engines.faust_internals import install_commit_gate

    app_id = f"{prefix}ceiling-{variant}"
    app = faust.App(
        app_id,
        broker=f"kafka://{bootstrap}",
        store="rocksdb://",
        datadir=data_dir,
        topic_partitions=8,
        topic_replication_factor=1,
        processing_guarantee=guarantee,
        broker_commit_interval=1.0,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        producer_acks=-1,
        producer_max_batch_size=BATCH_BYTES,
        producer_linger=0.005 if guarantee == "exactly_once" else 0.0,
    )
    raw = {"key_serializer": "raw", "value_serializer": "raw"}
    inputs = app.topic(*(prefix + t for t in (*INPUTS, TICKS_TOPIC)), partitions=8, **raw)
    table = app.Table("ceiling", partitions=8, key_type=str, value_type=bytes)
    output = prefix + "order-paid"
    pending: list[asyncio.Future[Any]] = []

    async def settle() -> None:
        while pending:
            await pending.pop()

    eos = guarantee == "exactly_once"
    gate = install_commit_gate(app, settle) if eos else asyncio.Lock()

    @app.agent(inputs, concurrency=1)
    async def agent(stream: Any) -> None:
        async for event in stream.events():
            async with gate:
                if variant == "noop":
                    continue
                message = event.message
                key = message.key.decode()
                before = table.get(key)
                table[key] = event.value if before is None else before
                if variant == "table-send":
                    group = app.assignor.group_for_topic(message.topic)
                    tid = f"{app.conf.id}-{group}-{message.partition}" if eos else None
                    future = await app.producer.send(
                        output, message.key, event.value, None, None, None, transactional_id=tid
                    )
                    if eos:
                        pending.append(future)
                    else:
                        await future

    faust.Worker(app, loglevel="INFO", quiet=True).execute_from_commandline()


def wait_text(process: subprocess.Popen[bytes], log: Path, text: str, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"no {text!r}:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.05)
    return time.monotonic()


def cpu_seconds(pid: int) -> float:
    """Return the user + system CPU time a process and its descendants have used so far
    (``paynotify stream`` runs its faust worker as a child)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(cpu_seconds(int(child)) for child in children)


def wait_consumed(bootstrap: str, group: str, ends: dict[str, dict[int, int]]) -> float:
    """Wait until ``group`` has committed every input offset; return when it had."""
    while True:
        done = all(
            committed(bootstrap, group, topic, 8).get(p, -1) >= end
            for topic, by_partition in ends.items()
            for p, end in by_partition.items()
        )
        if done:
            return time.monotonic()
        time.sleep(0.1)


def run_once(
    folder: Path, bootstrap: str, variant: str, guarantee: str, orders: int
) -> tuple[float, float]:
    """Return notifications per second for one variant on freshly filled topics, and the share
    of one core its worker used meanwhile."""
    engine = "quix" if variant in QUIX_VARIANTS else "faust"
    config, prefix = write_stream_config(
        folder, bootstrap, guarantee=guarantee, commit=1.0, engine=engine
    )
    numbers = [f"c-{i}" for i in range(orders)]
    if variant.startswith("paynotify"):
        workers = [Service("stream", config)]
        if variant.endswith("-2"):
            second, _ = write_stream_config(
                folder / "second", bootstrap, guarantee=guarantee, commit=1.0, engine=engine,
                prefix=prefix,
            )  # fmt: skip
            workers.append(Service("stream", second))
        if len(workers) == 1:
            fill(bootstrap, prefix, numbers, copies=2)
        for worker in workers:
            worker.start()
        try:
            if len(workers) == 1:
                started = wait_ready(workers[0], engine)
            else:  # both in the group and ready first, so that no rebalance is timed
                wait_group_members(bootstrap, f"{prefix}paynotify-stream", len(workers))
                for worker in workers:
                    wait_ready(worker, engine)
                started = time.monotonic()
                fill(bootstrap, prefix, numbers, copies=2)
            ends = {prefix + t: end_offsets(bootstrap, prefix + t) for t in INPUTS}
            pids = [worker.process.pid for worker in workers if worker.process is not None]
            used = sum(cpu_seconds(pid) for pid in pids)
            finished = wait_consumed(bootstrap, f"{prefix}paynotify-stream", ends)
            used = sum(cpu_seconds(pid) for pid in pids) - used
        finally:
            for worker in workers:
                worker.stop()
    else:
        fill(bootstrap, prefix, numbers, copies=2)
        ends = {prefix + t: end_offsets(bootstrap, prefix + t) for t in INPUTS}
        log = folder / f"{variant}-{uuid.uuid4().hex[:6]}.log"
        command = [sys.executable, __file__, "--serve", variant, "--bootstrap", bootstrap]
        command += ["--prefix", prefix, "--guarantee", guarantee]
        command += ["--data-dir", str(folder / f"data-{uuid.uuid4().hex[:6]}")]
        with log.open("wb") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        try:
            ready = READY_QUIX if engine == "quix" else READY_FAUST
            started = wait_text(process, log, ready, 120)
            used = cpu_seconds(process.pid)
            finished = wait_consumed(bootstrap, f"{prefix}ceiling-{variant}", ends)
            used = cpu_seconds(process.pid) - used
        finally:
            process.terminate()
            process.wait(30)
    return 2 * orders / (finished - started), used / (finished - started)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--guarantee", default="exactly_once")
    parser.add_argument("--variant", action="append", choices=VARIANTS, default=[])
    parser.add_argument("--serve", choices=SERVED, help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        run = serve_quix if args.serve in QUIX_VARIANTS else serve
        run(args.serve, args.bootstrap, args.prefix, args.guarantee, args.data_dir)
        return 0
    folder = Path(tempfile.mkdtemp(prefix="paynotify-ceiling-"))
    broker = LocalBroker(folder / "kafka", port=free_port())
    broker.start()
    results: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    try:
        for run in range(args.runs):
            for variant in args.variant or VARIANTS:
                rate, share = run_once(folder / f"{variant}-{run}", broker.bootstrap_servers,
                                       variant, args.guarantee, args.orders)  # fmt: skip
                results.setdefault(variant, []).append(rate)
                cpu.setdefault(variant, []).append(share)
                print(f"{args.guarantee} {variant} run {run}: {rate:,.0f} notifications/s, "
                      f"worker CPU {share:.0%} of a core, {share / rate * 1e6:.0f} us per "
                      "notification", flush=True)  # fmt: skip
    finally:
        broker.stop()
        shutil.rmtree(folder, ignore_errors=True)
    summary = {
        variant: {
            "median": round(statistics.median(rates)),
            "runs": [round(r) for r in rates],
            "cpu_share_median": round(statistics.median(cpu[variant]), 2),
            "cpu_us_per_notification_median": round(
                statistics.median(c / r * 1e6 for c, r in zip(cpu[variant], rates, strict=True))
            ),
        }
        for variant, rates in results.items()
    }
    print(json.dumps({"guarantee": args.guarantee, "orders": args.orders, **summary}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
