"""The gateway beside a bare ASGI app on the same server, in one run: rate and CPU per request.

Both are served by uvicorn with uvloop and httptools on one worker: the bare app
(``bench/bare_asgi.py``: read the body, answer ``success``) and the real ``paynotify gateway``
command (its JSON log line per accepted notification going to a file, its metrics counted) on a
local Kafka broker, publishing every notification (idempotent, ``acks=all``) before it answers.
wrk (``-t1 -c64``) replays 1,000 distinct Alipay RSA2 notifications signed beforehand, to each
server in turn, ``--runs`` times; each run reports requests/s, the ratio gateway / bare of that
run, and CPU per acknowledged notification: the gateway process's CPU time (every thread,
librdkafka's included) over the 2xx answers, and per thread. Medians at the end.

    .venv/bin/python bench/gateway_ratio.py --runs 3 --seconds 10
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the signers under tests/

from bench.gateway_load import LUA, accepted_lines, start_gateway, write_bodies, write_config
from bench.stream_ceiling import cpu_seconds
from paynotify.broker import LocalBroker, free_port
from paynotify.topics import ensure_topics
from tests.support import alipay as signer
from tests.support.gateway_requests import wait_ready

TICK = os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> dict[str, float]:
    """Return the CPU seconds of each of a process's threads, summed by thread name."""
    used: dict[str, float] = collections.defaultdict(float)
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        name = "event loop" if task.name == str(pid) else name
        fields = stat.rpartition(")")[2].split()
        used[_family(name)] += (int(fields[11]) + int(fields[12])) / TICK
    return used


def _family(name: str) -> str:
    """Group librdkafka's per-broker threads (``rdk:broker1``, ``rdk:broker-1``...) as one."""
    return "rdk:broker*" if name.startswith("rdk:broker") else name


def start_bare(port: int, log: Path) -> subprocess.Popen[bytes]:
    """Serve ``bench.bare_asgi:app`` with uvicorn, uvloop and httptools; wait until it answers."""
    command = [sys.executable, "-m", "uvicorn", "bench.bare_asgi:app", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--loop", "uvloop", "--http", "httptools"]
    command += ["--no-access-log", "--log-level", "warning"]
    root = Path(__file__).resolve().parent.parent
    with log.open("ab") as out:
        process = subprocess.Popen(command, stderr=out, cwd=root)
    if not wait_ready(process, port):
        raise SystemExit(f"the bare app did not start: see {log}")
    return process


def load(url: str, script: Path, args: argparse.Namespace, pid: int) -> dict[str, Any]:
    """Run ``wrk -t1`` once against ``url``; return its counts and the server's CPU."""
    before, threads_before = cpu_seconds(pid), thread_cpu(pid)
    command = ["wrk", "-t1", f"-c{args.connections}", f"-d{args.seconds}s", "-s", str(script)]
    command.append(url)
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    result: dict[str, Any] = json.loads(line[7:])
    ok = result["requests"] - result["bad"]
    result["ok"] = ok
    result["per_s"] = ok / result["seconds"]
    result["cpu_us"] = (cpu_seconds(pid) - before) / max(ok, 1) * 1e6
    after = thread_cpu(pid)
    result["threads_us"] = {
        name: (after[name] - threads_before.get(name, 0.0)) / max(ok, 1) * 1e6 for name in after
    }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=15, help="seconds of load before measuring")
    parser.add_argument(
        "--profile", help="write py-spy's flame graph of one extra gateway run here"
    )
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="paynotify-bench-ratio-"))
    broker = LocalBroker(folder / "kafka", port=free_port())
    broker.start()
    servers: list[subprocess.Popen[bytes]] = []
    log = folder / "gateway.log"
    acked = 0
    try:
        ensure_topics(broker.bootstrap_servers, ["payment-notifications"], 8)
        bodies = write_bodies(
            folder / "alipay.txt", (signer.sign(signer.payment(f"ratio-{i}")) for i in range(1000))
        )
        script = folder / "replay.lua"
        script.write_text(LUA % (bodies, 0, 1), encoding="utf-8")
        gw_port, bare_port = free_port(), free_port()
        config = write_config(folder, broker.bootstrap_servers, gw_port, 1)
        gateway = start_gateway(config, gw_port, log)
        bare = start_bare(bare_port, folder / "bare.log")
        servers += [gateway, bare]
        gw_url = f"http://127.0.0.1:{gw_port}/notify/alipay/shop"
        bare_url = f"http://127.0.0.1:{bare_port}/notify/alipay/shop"
        warm = argparse.Namespace(**{**vars(args), "seconds": args.warmup})
        acked += load(gw_url, script, warm, gateway.pid)["ok"]  # the broker's JIT, meanwhile
        load(bare_url, script, warm, bare.pid)
        if args.profile:
            profile(gateway.pid, args.profile, gw_url, script, args)
        rows = []
        for run in range(args.runs):
            b = load(bare_url, script, args, bare.pid)
            g = load(gw_url, script, args, gateway.pid)
            acked += g["ok"]
            rows.append((b, g))
            report_run(run, b, g)
        report(rows)
    finally:
        for server in servers:
            server.terminate()
            server.wait(30)
        if servers:
            print(f"log: {accepted_lines(log):,} 'notification accepted' lines, {acked:,} 2xx")
        broker.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return 0


def profile(pid: int, path: str, url: str, script: Path, args: argparse.Namespace) -> None:
    """Sample the gateway with py-spy (native frames too) during one full-load run."""
    spy = str(Path(sys.executable).parent / "py-spy")  # .venv/bin/pip install py-spy
    command = [spy, "record", "--pid", str(pid), "--native", "--threads", "--rate", "250"]
    command += ["--duration", str(args.seconds), "--format", "raw", "--output", path]
    sampler = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    load(url, script, args, pid)
    sampler.wait(120)


def report_run(run: int, bare: dict[str, Any], gw: dict[str, Any]) -> None:
    """Print one run's figures."""
    threads = ", ".join(
        f"{name} {us:.0f}" for name, us in sorted(gw["threads_us"].items(), key=lambda x: -x[1])
    )
    print(
        f"run {run + 1}: bare {bare['per_s']:,.0f}/s ({bare['cpu_us']:.0f} µs CPU each, "
        f"{bare['bad']} errors); gateway {gw['per_s']:,.0f}/s ({gw['cpu_us']:.0f} µs CPU each, "
        f"{gw['bad']} errors), ratio {gw['per_s'] / bare['per_s']:.3f}; "
        f"gateway p50/p99 {gw['p50_ms']:.1f}/{gw['p99_ms']:.1f} ms; by thread, µs: {threads}",
        flush=True,
    )


def report(rows: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
    """Print the medians as a Markdown table."""

    def med(values: list[float]) -> float:
        return statistics.median(values)

    print(f"\n| measure (median of {len(rows)} runs) | bare ASGI app | paynotify gateway |")
    print("|---|---|---|")
    print(
        f"| requests/s, wrk -t1 -c64 | {med([b['per_s'] for b, _ in rows]):,.0f} "
        f"| {med([g['per_s'] for _, g in rows]):,.0f} |"
    )
    bare_us, gw_us = med([b["cpu_us"] for b, _ in rows]), med([g["cpu_us"] for _, g in rows])
    print(f"| CPU per answer (server process, every thread) | {bare_us:.0f} µs | {gw_us:.0f} µs |")
    ratio = med([g["per_s"] / b["per_s"] for b, g in rows])
    print(f"| ratio gateway / bare, same run | | {ratio:.3f} |")


if __name__ == "__main__":
    raise SystemExit(main())
