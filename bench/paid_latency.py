"""Notification to paid row: the latency of the whole stack at a steady rate, black-box.

Starts the stack of ``bench/side_by_side.py`` (local broker, gateway, stream, sink, PostgreSQL),
publishes the expected orders, then sends pre-signed Alipay RSA2 payments at ``--rate`` for
``--seconds`` over keep-alive connections (a small raw HTTP/1.1 client, so that the sender's own
CPU stays small beside the stack's) and notes the moment each order reads ``paid``: by default a
trigger the bench adds to its own throw-away database sends a ``NOTIFY`` when an order's row turns
``paid``, which PostgreSQL delivers when the sink's transaction commits (``--observe notify``);
``--observe poll`` asks ``orders`` every 5 ms instead (the earlier way: a query every 5 ms over
every order still waiting, from the sender's own process). Prints, per run and as the median of
the runs: the latency from sending a notification to its paid row (p50, p90, p99, max), the
acknowledgement latency, and the cores each process used during the run.

    .venv/bin/python bench/paid_latency.py --rate 1000 --seconds 10 --runs 3 --engine quix
    .venv/bin/python bench/paid_latency.py --rate 200 --seconds 10 --runs 3 --engine faust
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from confluent_kafka import OFFSET_END, Consumer, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the signers under tests/

from bench import broker_profile
from bench.peers.paynotify_stack import PaynotifyPeer
from bench.side_by_side_load import AMOUNT_MINOR, FixedRateResult, Probe, _pending, _poll, sign_all
from bench.stack_ack import compiler_cpu, label, own_cpu, processes
from stream.records import ORDER_PAID_TOPIC
from tests.support import alipay as signer
from tests.support.keys import write_public_pem

BROKER = "broker (JVM)"
JIT = "the broker's JIT compiler"  # a part of the broker's line
CONNECTIONS = 64
POLL_S = 0.005
CHANNEL = "paid_latency"
# The bench's own observer, added to its throw-away database: one NOTIFY per order turning paid.
PAID_TRIGGER = f"""
CREATE OR REPLACE FUNCTION paid_latency_notify() RETURNS trigger AS $$
BEGIN
  IF NEW.status = 'paid' AND (TG_OP = 'INSERT' OR OLD.status IS DISTINCT FROM 'paid') THEN
    PERFORM pg_notify('{CHANNEL}', NEW.out_trade_no);
  END IF;
  RETURN NULL;
END $$ LANGUAGE plpgsql;
CREATE OR REPLACE TRIGGER paid_latency AFTER INSERT OR UPDATE OF status ON orders
  FOR EACH ROW EXECUTE FUNCTION paid_latency_notify();
"""


@dataclass
class RunResult:
    """One measured run: its probes, how long the sending took and the cores per process."""

    probes: FixedRateResult
    seconds: float
    cores: dict[str, float]
    emitted: dict[str, float]  # order number -> when a read_committed reader saw its order-paid


def request_bytes(url: str, body: bytes) -> bytes:
    """Return one complete HTTP/1.1 POST of ``body`` to ``url``, keep-alive."""
    parts = urlsplit(url)
    head = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        "Content-Type: application/x-www-form-urlencoded; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def exchange(
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], request: bytes, probe: Probe
) -> None:
    """Send one request on an open connection and read its answer into ``probe``."""
    reader, writer = conn
    probe.sent = time.monotonic()
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body = await reader.readexactly(length)
    probe.answered = time.monotonic()
    probe.answer = f"{head.split(b' ')[1].decode()} {body[:24].decode(errors='replace')}"


async def send_at_rate(
    url: str, requests: dict[str, bytes], probes: list[Probe], rate: float
) -> None:
    """Send every probe's request at ``rate``/s, each on the next idle connection."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(CONNECTIONS):
        idle.put_nowait(await asyncio.open_connection(host, port))

    async def one(probe: Probe) -> None:
        conn = await idle.get()
        try:
            await exchange(conn, requests[probe.order], probe)
        except (OSError, asyncio.IncompleteReadError):
            probe.answer = "no answer"
            conn = await asyncio.open_connection(host, port)
        idle.put_nowait(conn)

    start, tasks = time.monotonic(), []
    for i, probe in enumerate(probes):
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        tasks.append(asyncio.create_task(one(probe)))
    await asyncio.gather(*tasks)
    while not idle.empty():
        idle.get_nowait()[1].close()


def watch_paid(
    bootstrap: str, emitted: dict[str, float], ready: threading.Event, stop: threading.Event
) -> None:
    """Note when a ``read_committed`` reader first sees each order's ``order-paid``."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"paid-latency-{time.monotonic_ns()}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
        }
    )
    try:
        partitions = consumer.list_topics(ORDER_PAID_TOPIC, timeout=10).topics[ORDER_PAID_TOPIC]
        consumer.assign(
            [TopicPartition(ORDER_PAID_TOPIC, p, OFFSET_END) for p in partitions.partitions]
        )
        while not consumer.assignment():
            time.sleep(0.01)
        consumer.consume(1, 1.0)  # the fetch positions are set once this returns
        ready.set()
        while not stop.is_set():
            for message in consumer.consume(1000, 0.01):
                key = message.key()
                if message.error() is None and key is not None:
                    emitted.setdefault(key.decode(), time.monotonic())
    finally:
        ready.set()
        consumer.close()


def listen_paid(
    connect: Callable[[], psycopg.Connection[tuple[object, ...]]],
    probes: list[Probe],
    ready: threading.Event,
    stop: threading.Event,
) -> None:
    """Note when each probe's order turned paid, from the trigger's notifications."""
    by_order = {p.order: p for p in probes}
    with connect() as conn:
        conn.execute(f"LISTEN {CHANNEL}")
        ready.set()
        while not stop.is_set():
            for note in conn.notifies(timeout=0.2):
                probe = by_order.get(note.payload)
                if probe is not None and probe.applied is None:
                    probe.applied = time.monotonic()


def measure(
    peer: PaynotifyPeer, bodies: dict[str, bytes], rate: float, observe: str = "notify"
) -> RunResult:
    """Send ``bodies`` at ``rate`` and wait (up to 60 s) for every acknowledged one to be paid."""
    requests = {no: request_bytes(peer.url, body) for no, body in bodies.items()}
    result = FixedRateResult(rate, [Probe(no) for no in bodies])
    emitted: dict[str, float] = {}
    stop, ready = threading.Event(), threading.Event()
    watcher = threading.Thread(target=watch_paid, args=(peer.bootstrap, emitted, ready, stop))
    watcher.start()
    ready.wait(30)
    names = processes()
    before = {pid: own_cpu(pid) for pid in names}
    compiled = {pid: compiler_cpu(pid) for pid in names if label(pid, names[pid]) == BROKER}
    mine = resource.getrusage(resource.RUSAGE_SELF)
    if observe == "poll":
        poller = threading.Thread(target=_poll, args=(peer.connect, result.probes, stop, POLL_S))
    else:
        listening = threading.Event()
        poller = threading.Thread(
            target=listen_paid, args=(peer.connect, result.probes, listening, stop)
        )
    poller.start()
    if observe != "poll":
        listening.wait(30)
    started = time.monotonic()
    try:
        asyncio.run(send_at_rate(peer.url, requests, result.probes, rate))
        seconds = time.monotonic() - started
        cores = cores_by_name(names, before, mine, seconds)
        cores[JIT] = (
            sum(  # a thread that ended meanwhile: its last slice is not counted
                cpu - compiled[pid].get(tid, 0.0)
                for pid in compiled
                for tid, cpu in compiler_cpu(pid).items()
            )
            / seconds
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(_pending(result.probes)):
            time.sleep(0.05)
    finally:
        stop.set()
        poller.join()
        watcher.join()
    return RunResult(result, seconds, cores, emitted)


def cores_by_name(
    names: dict[int, str], before: dict[int, float], mine: resource.struct_rusage, seconds: float
) -> dict[str, float]:
    """Return the cores each kind of process used since ``before``."""
    totals: dict[str, float] = {}
    for pid, command in names.items():
        name = label(pid, command)
        totals[name] = totals.get(name, 0.0) + (own_cpu(pid) - before[pid]) / seconds
    used = resource.getrusage(resource.RUSAGE_SELF)
    sender = used.ru_utime + used.ru_stime - mine.ru_utime - mine.ru_stime
    totals[label(os.getpid(), "")] = sender / seconds
    return {k: v for k, v in totals.items() if v >= 0.01}


def percentile(values: list[float], q: float) -> float:
    """Return the ``q`` quantile (0..1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def summary(run: RunResult) -> dict[str, float]:
    """Return the run's latency figures in ms and its counts."""
    e2e, ack = run.probes.e2e_ms("200 success"), run.probes.ack_ms()
    return {
        "sent": len(run.probes.probes),
        "acknowledged": sum(p.answer == "200 success" for p in run.probes.probes),
        "paid": len(e2e),
        "e2e_p50": statistics.median(e2e) if e2e else float("nan"),
        "e2e_p90": percentile(e2e, 0.90) if e2e else float("nan"),
        "e2e_p99": percentile(e2e, 0.99) if e2e else float("nan"),
        "e2e_max": max(e2e) if e2e else float("nan"),
        "ack_p50": statistics.median(ack) if ack else float("nan"),
        **stages(run),
        "ack_p99": percentile(ack, 0.99) if ack else float("nan"),
        "achieved_rate": len(run.probes.probes) / run.seconds,
    }


def stages(run: RunResult) -> dict[str, float]:
    """Split the latency of each paid order at its ``order-paid`` being readable: the stream's
    part (acknowledgement to readable, read_committed) and the sink's (readable to paid row)."""
    stream, sink = [], []
    for p in run.probes.probes:
        seen = run.emitted.get(p.order)
        if seen is not None and p.answered is not None and p.applied is not None:
            stream.append((seen - p.answered) * 1000)
            sink.append((p.applied - seen) * 1000)
    if not stream:
        return {}
    return {
        "stream_p50": statistics.median(stream),
        "stream_p99": percentile(stream, 0.99),
        "sink_p50": statistics.median(sink),
        "sink_p99": percentile(sink, 0.99),
    }


def print_run(index: int, figures: dict[str, float], cores: dict[str, float]) -> None:
    """Print one run's figures."""
    print(
        f"run {index}: sent {figures['sent']:.0f} at {figures['achieved_rate']:.0f}/s, "
        f"acknowledged {figures['acknowledged']:.0f}, paid {figures['paid']:.0f}; "
        f"notification -> paid row p50 {figures['e2e_p50']:.0f} ms, p90 {figures['e2e_p90']:.0f}, "
        f"p99 {figures['e2e_p99']:.0f}, max {figures['e2e_max']:.0f}; "
        f"ack p50 {figures['ack_p50']:.1f} ms, p99 {figures['ack_p99']:.1f}"
    )
    if "stream_p50" in figures:
        print(
            f"  acknowledged -> order-paid readable p50 {figures['stream_p50']:.0f} ms, "
            f"p99 {figures['stream_p99']:.0f}; readable -> paid row p50 "
            f"{figures['sink_p50']:.0f} ms, p99 {figures['sink_p99']:.0f}"
        )
    shares = sorted(((n, c) for n, c in cores.items() if n != JIT), key=lambda x: -x[1])
    jit = f" (its JIT compiler {cores[JIT]:.2f})" if JIT in cores else ""
    print("  cores: " + ", ".join(f"{n} {c:.2f}{jit if n == BROKER else ''}" for n, c in shares))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--engine", default="quix", choices=("quix", "faust"))
    parser.add_argument(
        "--commit-interval", type=float, help="[stream] commit_interval_seconds (default: 0.1)"
    )
    parser.add_argument(
        "--partitions",
        type=int,
        default=8,
        help="[kafka] partitions of every topic (default: 8, the configuration's default)",
    )
    parser.add_argument(
        "--warmup-runs", type=int, default=1, help="unmeasured runs first (the broker's JIT)"
    )
    parser.add_argument(
        "--broker-jfr",
        type=Path,
        help="record the broker with Java Flight Recorder during the last run into this file, "
        "then print where its CPU went (bench/broker_profile.py)",
    )
    parser.add_argument(
        "--observe",
        default="notify",
        choices=("notify", "poll"),
        help="how paid rows are seen: a trigger's NOTIFY, or polling orders every 5 ms",
    )
    args = parser.parse_args()
    count = int(args.rate * args.seconds)
    folder = Path(tempfile.mkdtemp(prefix="paynotify-paid-latency-"))
    public = write_public_pem(signer.key(0), folder / "alipay_public.pem")
    warmups = max(1, args.warmup_runs)
    numbers = [[f"l{r}-{i}" for i in range(count)] for r in range(warmups + args.runs)]
    print(f"signing {count * len(numbers)} notifications ...", flush=True)
    signed = sign_all(signer.key(0), [no for run in numbers for no in run])
    options: dict[str, str | float | int] = {"engine": args.engine}
    if args.commit_interval is not None:
        options["commit_interval_seconds"] = args.commit_interval
    with PaynotifyPeer(public, stream_options=options, partitions=args.partitions) as peer:
        peer.add_orders([(no, AMOUNT_MINOR) for no in signed])
        peer.wait_applied()
        if args.observe == "notify":
            with peer.connect() as conn:
                conn.execute(PAID_TRIGGER)
        for index, warm in enumerate(numbers[:warmups], start=1):  # the JVM's compiler first
            result = measure(peer, {no: signed[no] for no in warm}, args.rate, args.observe)
            print(
                f"warm-up {index}: p99 {summary(result)['e2e_p99']:.0f} ms, "
                f"the broker's JIT compiler {result.cores.get(JIT, 0.0):.2f} cores",
                flush=True,
            )
        figures = []
        for index, run in enumerate(numbers[warmups:], start=1):
            broker = broker_pid() if args.broker_jfr and index == args.runs else None
            if broker is not None:
                broker_profile.start(broker, args.broker_jfr.resolve())
            result = measure(peer, {no: signed[no] for no in run}, args.rate, args.observe)
            if broker is not None:
                broker_profile.stop(broker)
            figures.append(summary(result))
            print_run(index, figures[-1], result.cores)
    print(
        f"\n{args.engine}, {args.rate:.0f}/s for {args.seconds:.0f} s, median of {args.runs}: "
        f"notification -> paid row p50 {statistics.median(f['e2e_p50'] for f in figures):.0f} ms, "
        f"p99 {statistics.median(f['e2e_p99'] for f in figures):.0f} ms; "
        f"ack p99 {statistics.median(f['ack_p99'] for f in figures):.1f} ms"
    )
    if args.broker_jfr:
        broker_profile.report(args.broker_jfr)
    shutil.rmtree(folder, ignore_errors=True)
    return 0


def broker_pid() -> int:
    """The local broker's process id."""
    return next(pid for pid, command in processes().items() if label(pid, command) == BROKER)


if __name__ == "__main__":
    raise SystemExit(main())
