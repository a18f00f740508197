"""Acknowledgement latency at a steady low rate with the whole stack running, and where it goes.

Starts the stack of ``bench/paid_latency.py`` (local broker, ``paynotify`` gateway, stream and
sink, PostgreSQL), publishes the expected orders, and sends pre-signed Alipay RSA2 payments at
``--rate`` for ``--seconds`` per run. The sender is either a small raw HTTP/1.1 client over
keep-alive connections (``--sender raw``, the default: a few µs of CPU per request) or the httpx
client of ``bench/side_by_side.py`` (``--sender httpx``: one task per notification, a database
poller thread in the same process). Beside the black-box acknowledgement latency it reports:

- the gateway's own view of the broker's acknowledgement (``paynotify_gateway_publish_seconds``
  scraped before and after the run: which of its buckets holds the median and the 99th
  percentile), which tells the broker's share from the gateway's and the client's;
- the sender's own event-loop lag (a callback due every 5 ms, how late it ran): a sender whose
  loop runs late measures its own queue, not the gateway.

    .venv/bin/python bench/gateway_ack_latency.py --rate 200 --seconds 15 --runs 3
    .venv/bin/python bench/gateway_ack_latency.py --rate 200 --seconds 15 --runs 1 --sender httpx
"""

from __future__ import annotations

import argparse
import asyncio
import re
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the signers under tests/

from bench.paid_latency import request_bytes, send_at_rate
from bench.peers.paynotify_stack import PaynotifyPeer
from bench.side_by_side_load import AMOUNT_MINOR, FixedRateResult, Probe, _poll, _send, sign_all
from bench.stack_ack import own_cpu
from tests.support import alipay as signer
from tests.support.keys import write_public_pem

BUCKET = re.compile(r'^paynotify_gateway_publish_seconds_bucket\{le="([^"]+)"\} ([0-9.e+]+)$')
LAG_EVERY_S = 0.005


def publish_buckets(url: str) -> dict[float, float]:
    """Return the gateway's cumulative publish-latency histogram: upper bound (s) -> count."""
    text = httpx.get(url.split("/notify/")[0] + "/metrics", timeout=5).text
    found = (BUCKET.match(line) for line in text.splitlines())
    return {float(m[1]): float(m[2]) for m in found if m}


def bucket_of(before: dict[float, float], after: dict[float, float], q: float) -> str:
    """Return the histogram bucket that holds quantile ``q`` of the observations in between."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1]
    if total <= 0:
        return "none"
    for i, (bound, count) in enumerate(zip(bounds, counts, strict=True)):
        if count >= q * total:
            low = 0.0 if i == 0 else bounds[i - 1]
            return f"{low * 1000:g}-{bound * 1000:g} ms"
    return "?"


async def with_lag(sending: Awaitable[None], lags: list[float]) -> None:
    """Run ``sending`` while noting how late a callback due every 5 ms runs (ms)."""
    loop = asyncio.get_running_loop()
    stop = False

    async def watch() -> None:
        due = loop.time() + LAG_EVERY_S
        while not stop:
            await asyncio.sleep(max(0.0, due - loop.time()))
            lags.append((loop.time() - due) * 1000)
            due = max(due + LAG_EVERY_S, loop.time())

    watcher = asyncio.create_task(watch())
    try:
        await sending
    finally:
        stop = True
        await watcher


def run(peer: PaynotifyPeer, bodies: dict[str, bytes], rate: float, sender: str) -> dict[str, Any]:
    """Send ``bodies`` at ``rate``; return the latency figures and the cores used."""
    result = FixedRateResult(rate, [Probe(no) for no in bodies])
    lags: list[float] = []
    stop = threading.Event()
    poller = None
    send: Callable[[], Awaitable[None]]
    if sender == "httpx":  # exactly side_by_side.py's fixed-rate sender, poller included
        poller = threading.Thread(target=_poll, args=(peer.connect, result.probes, stop, 0.01))
        poller.start()
        send = lambda: _send(peer.url, bodies, result.probes, rate)  # noqa: E731
    else:
        requests = {no: request_bytes(peer.url, body) for no, body in bodies.items()}
        send = lambda: send_at_rate(peer.url, requests, result.probes, rate)  # noqa: E731
    assert peer.stack is not None
    gateway = peer.stack.children["gateway"].pid
    cpu_before, mine = own_cpu(gateway), resource.getrusage(resource.RUSAGE_SELF)
    before = publish_buckets(peer.url)
    started = time.monotonic()
    try:
        asyncio.run(with_lag(send(), lags))
    finally:
        stop.set()
        if poller is not None:
            poller.join()
    seconds = time.monotonic() - started
    used = resource.getrusage(resource.RUSAGE_SELF)
    after = publish_buckets(peer.url)
    ack = sorted(result.ack_ms())
    return {
        "acknowledged": sum(p.answer.startswith("200") for p in result.probes),
        "ack_p50": statistics.median(ack),
        "ack_p99": ack[min(len(ack) - 1, int(len(ack) * 0.99))],
        "ack_max": ack[-1],
        "broker_p50": bucket_of(before, after, 0.5),
        "broker_p99": bucket_of(before, after, 0.99),
        "sender_lag_p99": sorted(lags)[int(len(lags) * 0.99)] if lags else float("nan"),
        "gateway_cores": (own_cpu(gateway) - cpu_before) / seconds,
        "sender_cores": (used.ru_utime + used.ru_stime - mine.ru_utime - mine.ru_stime) / seconds,
        "rate": len(bodies) / seconds,
        "per_second": [
            round(statistics.median(result.ack_ms()[i : i + int(rate)]), 1)
            for i in range(0, len(bodies), int(rate))
        ],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sender", choices=("raw", "httpx"), default="raw")
    args = parser.parse_args()
    count = int(args.rate * args.seconds)
    folder = Path(tempfile.mkdtemp(prefix="paynotify-ack-latency-"))
    public = write_public_pem(signer.key(0), folder / "alipay_public.pem")
    numbers = [[f"a{r}-{i}" for i in range(count)] for r in range(args.runs + 1)]
    print(f"signing {count * len(numbers)} notifications ...", flush=True)
    signed = sign_all(signer.key(0), [no for batch in numbers for no in batch])
    figures = []
    with PaynotifyPeer(public) as peer:
        peer.add_orders([(no, AMOUNT_MINOR) for no in signed])
        peer.wait_applied()
        for index, batch in enumerate(numbers):  # the first run warms the broker's JIT up
            figure = run(peer, {no: signed[no] for no in batch}, args.rate, args.sender)
            label = "warm-up" if index == 0 else f"run {index}"
            print(f"{label} ({args.sender} sender): {figure}", flush=True)
            if index:
                figures.append(figure)
    print(
        f"\n{args.sender} sender, {args.rate:.0f}/s for {args.seconds:.0f} s, median of "
        f"{args.runs} runs: ack p50 {statistics.median(f['ack_p50'] for f in figures):.1f} ms, "
        f"p99 {statistics.median(f['ack_p99'] for f in figures):.1f} ms; gateway "
        f"{statistics.median(f['gateway_cores'] for f in figures):.2f} cores, the sender "
        f"{statistics.median(f['sender_cores'] for f in figures):.2f}; sender loop lag p99 "
        f"{statistics.median(f['sender_lag_p99'] for f in figures):.1f} ms"
    )
    shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
