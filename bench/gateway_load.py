"""Load the gateway with pre-signed Alipay RSA2 notifications through wrk, on a real local broker.

Every request is a genuine notification (1,000 distinct orders, each signed once beforehand with a
generated key), so every accepted one was verified and acknowledged by Kafka (idempotent,
acks=all) before the gateway answered ``success``. Reports accepted notifications/s at full load,
then p50/p99 latency with wrk throttled (Lua ``delay``) to about half of that, medians of
``--runs`` runs. Needs ``wrk`` (Debian package) and Java for the broker.

The gateway is the real ``paynotify gateway`` command, with its JSON log line for every accepted
notification written to a file.

    .venv/bin/python bench/gateway_load.py --workers 1 --runs 3
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the signers under tests/

from bench.stream_ceiling import cpu_seconds
from paynotify.broker import LocalBroker, free_port
from paynotify.topics import ensure_topics
from tests.support import alipay as signer
from tests.support.gateway_requests import wait_ready
from tests.support.keys import write_public_pem

THREADS = 2
LUA = """
-- Replays the bodies of a file, one a line; wrk's threads take every THREADS-th body in turn.
local bodies = {}
for line in io.lines("%s") do bodies[#bodies + 1] = line end
local pause = %d
local step = %d
local threads = {}
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8"
setup = function(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
init = function(args)
  i = id + 1 - step
  wraps = 0
  answers = {}
end
request = function()
  i = i + step
  if i > #bodies then
    i = i - #bodies
    wraps = wraps + 1
  end
  return wrk.format(nil, nil, nil, bodies[i])
end
response = function(status, headers, body)
  local key = status .. " " .. string.gsub(string.sub(body or "", 1, 24), "[^%%w_ .-]", "?")
  answers[key] = (answers[key] or 0) + 1
end
if pause > 0 then delay = function() return pause end end
done = function(summary, latency, requests)
  local bad = summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout
  local total, wrapped = {}, 0
  for _, thread in ipairs(threads) do
    for key, n in pairs(thread:get("answers")) do total[key] = (total[key] or 0) + n end
    wrapped = wrapped + thread:get("wraps")
  end
  local parts = {}
  for key, n in pairs(total) do parts[#parts + 1] = string.format('"%%s": %%d', key, n) end
  local cdf = {}
  for _, p in ipairs({1, 5, 10, 25, 50, 75, 90, 95, 99, 99.9}) do
    cdf[#cdf + 1] = string.format('["%%s", %%f]', p, latency:percentile(p) / 1e3)
  end
  io.write(string.format('RESULT {"requests": %%d, "bad": %%d, "seconds": %%f, '
    .. '"p50_ms": %%f, "p99_ms": %%f, "wraps": %%d, "answers": {%%s}, "percentiles_ms": [%%s]}\\n',
    summary.requests, bad, summary.duration / 1e6, latency:percentile(50) / 1e3,
    latency:percentile(99) / 1e3, wrapped, table.concat(parts, ", "), table.concat(cdf, ", ")))
end
"""


def write_config(folder: Path, bootstrap: str, port: int, workers: int) -> Path:
    """Write a configuration with one Alipay account holding the generated key."""
    pem = write_public_pem(signer.key(0), folder / "alipay_public.pem")
    config = folder / "paynotify.toml"
    config.write_text(
        f'[gateway]\nlisten = "127.0.0.1:{port}"\nworkers = {workers}\n\n'
        f'[kafka]\nbootstrap_servers = "{bootstrap}"\npartitions = 8\n\n'
        f'[[accounts]]\nname = "shop"\nprovider = "alipay"\n'
        f'app_id = "{signer.APP_ID}"\nalipay_public_keys = ["{pem.name}"]\n',
        encoding="utf-8",
    )
    return config


def write_bodies(path: Path, bodies: Iterable[bytes]) -> Path:
    """Write form bodies one a line (they are URL-encoded ASCII, so hold no newline)."""
    path.write_bytes(b"".join(body + b"\n" for body in bodies))
    return path


def write_lua(bodies: Path, pause_ms: int) -> Path:
    """Write a wrk script replaying ``bodies`` (one a line) with a per-request pause."""
    script = bodies.with_name(f"{bodies.stem}_{pause_ms}.lua")
    script.write_text(LUA % (bodies, pause_ms, THREADS), encoding="utf-8")
    return script


def write_script(folder: Path, pause_ms: int) -> Path:
    """Write the wrk Lua script replaying 1,000 pre-signed notifications."""
    bodies = folder / "alipay.txt"
    if not bodies.is_file():
        write_bodies(bodies, (signer.sign(signer.payment(f"bench-{i}")) for i in range(1000)))
    return write_lua(bodies, pause_ms)


def start_gateway(config: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """Start ``paynotify gateway`` and wait until /readyz answers.

    Its log lines go to ``log``, as they would to a file or journald in production.
    """
    command = [sys.executable, "-m", "paynotify.cli", "--config", str(config), "gateway"]
    with log.open("ab") as out:
        process = subprocess.Popen(command, stderr=out)
    if not wait_ready(process, port):
        raise SystemExit(f"the gateway did not become ready: see {log}")
    return process


def accepted_lines(log: Path) -> int:
    """Count the gateway's "notification accepted" log lines."""
    with log.open("rb") as lines:
        return sum(1 for line in lines if b'"notification accepted"' in line)


def wrk(
    url: str, script: Path, connections: int, seconds: int, pids: dict[str, int] | None = None
) -> dict[str, Any]:
    """Run wrk once and return its RESULT line, with ``accepted_per_s`` (non-error answers) and
    ``cores``: the CPU each of ``pids`` (and wrk itself) used during the run, in cores."""
    pids = pids or {}
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    own = resource.getrusage(resource.RUSAGE_CHILDREN)
    command = ["wrk", f"-t{THREADS}", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    result: dict[str, Any] = json.loads(line[7:])
    result["accepted_per_s"] = (result["requests"] - result["bad"]) / result["seconds"]
    cores = {name: (cpu_seconds(pid) - before[name]) / seconds for name, pid in pids.items()}
    cores["wrk"] = (used.ru_utime + used.ru_stime - own.ru_utime - own.ru_stime) / seconds
    result["cores"] = cores
    ACCEPTED.append(result["requests"] - result["bad"])
    return result


def profile(pid: int, path: str, url: str, script: Path, args: argparse.Namespace) -> None:
    """Sample every gateway process with py-spy during one full-load run."""
    spy = str(Path(sys.executable).parent / "py-spy")  # .venv/bin/pip install py-spy
    command = [spy, "record", "--pid", str(pid), "--subprocesses", "--format", "raw"]
    command += ["--duration", str(args.seconds), "--rate", "200", "--output", path, "--nonblocking"]
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wrk(url, script, args.connections, args.seconds)
    spy.wait(60)


HALF_CONNECTIONS = 32
ACCEPTED: list[int] = []  # 2xx answers of every wrk run, to compare with the log lines


def calibrated_script(folder: Path, url: str, target: float) -> Path:
    """Return a script whose per-connection pause gives about ``target`` requests/s.

    rate = connections / (pause + latency); three 3 s probes correct the pause for the latency.
    """
    pause = max(1, round(HALF_CONNECTIONS * 1000 / target))
    for _ in range(3):
        probe = wrk(url, write_script(folder, pause), HALF_CONNECTIONS, 3)
        cycle_ms = HALF_CONNECTIONS * 1000 / max(probe["accepted_per_s"], 1)
        latency_ms = max(cycle_ms - pause, 0)
        pause = max(1, round(HALF_CONNECTIONS * 1000 / target - latency_ms))
    return write_script(folder, pause)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=1, help="[gateway] workers")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=20, help="seconds of load before measuring")
    parser.add_argument("--profile", help="write py-spy collapsed stacks of one full run here")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="paynotify-bench-gw-"))
    broker = LocalBroker(folder / "kafka", port=free_port())
    broker.start()
    gateway = None
    try:
        ensure_topics(broker.bootstrap_servers, ["payment-notifications"], 8)
        port = free_port()
        config = write_config(folder, broker.bootstrap_servers, port, args.workers)
        log = folder / "gateway.log"
        gateway = start_gateway(config, port, log)
        url = f"http://127.0.0.1:{port}/notify/alipay/shop"
        full_script = write_script(folder, 0)
        wrk(url, full_script, args.connections, args.warmup)  # the broker's JIT compiles meanwhile
        if args.profile:
            profile(gateway.pid, args.profile, url, full_script, args)
        pids = {"gateway": gateway.pid, "broker": broker.pid() or 0}
        full = [
            wrk(url, full_script, args.connections, args.seconds, pids) for _ in range(args.runs)
        ]
        rate = statistics.median(r["accepted_per_s"] for r in full)
        half_script = calibrated_script(folder, url, rate / 2)
        half = [wrk(url, half_script, HALF_CONNECTIONS, args.seconds) for _ in range(args.runs)]
        report(args, full, half)
    finally:
        if gateway is not None:
            gateway.terminate()
            gateway.wait(30)
            lines = accepted_lines(log)
            print(f"log: {lines:,} 'notification accepted' lines, {sum(ACCEPTED):,} 2xx")
        broker.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return 0


def report(
    args: argparse.Namespace, full: list[dict[str, float]], half: list[dict[str, float]]
) -> None:
    """Print the medians as a Markdown table."""

    def med(rows: list[dict[str, float]], name: str) -> float:
        return statistics.median(r[name] for r in rows)

    print(f"\npaynotify gateway, {args.workers} worker(s), {args.runs} runs of {args.seconds} s")
    print("| load | accepted/s | non-2xx or errors | p50 ms | p99 ms |")
    print("|---|---|---|---|---|")
    for name, rows in (
        (f"full (wrk -c{args.connections})", full),
        (f"about half (-c{HALF_CONNECTIONS}, Lua delay)", half),
    ):
        print(
            f"| {name} | {med(rows, 'accepted_per_s'):,.0f} | {med(rows, 'bad'):.0f} | "
            f"{med(rows, 'p50_ms'):.1f} | {med(rows, 'p99_ms'):.1f} |"
        )
    cores = {name: statistics.median(r["cores"][name] for r in full) for name in full[0]["cores"]}
    print(
        "CPU at full load, cores (median): " + ", ".join(f"{k} {v:.2f}" for k, v in cores.items())
    )


if __name__ == "__main__":
    raise SystemExit(main())
