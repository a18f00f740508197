"""Acknowledgement latency at a fixed rate with the whole stack running, and where the CPU goes.

Starts the stack of ``bench/side_by_side.py`` (local broker, gateway, stream, sink, PostgreSQL),
sends pre-signed Alipay notifications at ``--rate`` from Python (``bench.side_by_side_load``,
which also polls the database for paid orders), and prints the acknowledgement latency (p50,
p99, and p50 per second of the run) with the CPU every process used meanwhile, in cores. With
``--pause`` the named services are stopped (SIGSTOP) for the measured run, to see what the
gateway's answers cost when they no longer share the machine with them.

    .venv/bin/python bench/stack_ack.py --rate 200 --count 2000 --pause none
    .venv/bin/python bench/stack_ack.py --rate 200 --count 2000 --pause sink
    .venv/bin/python bench/stack_ack.py --rate 200 --count 2000 --pause stream,sink
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the signers under tests/

from bench.peers.paynotify_stack import PaynotifyPeer
from bench.side_by_side_load import AMOUNT_MINOR, fixed_rate
from bench.stream_ceiling import cpu_seconds
from tests.support import alipay as signer
from tests.support.keys import write_public_pem


def processes() -> dict[int, str]:
    """Return every process's id and the start of its command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
    return {pid: line.decode(errors="replace").strip() for pid, line in found.items()}


def own_cpu(pid: int) -> float:
    """CPU seconds of one process alone (its children are counted on their own line)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        nested = sum(cpu_seconds(int(c)) for c in children.read_text().split())
    except OSError:
        return 0.0
    return cpu_seconds(pid) - nested


def compiler_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each of a JVM's JIT compiler threads (C1, C2) so far, by thread id (the
    JVM starts and ends them as it needs). A young broker compiles its hot code under the first
    minutes of traffic (docs/benchmarks.md, "The producer lingers"), a cost a long-running broker
    no longer pays.
    Empty for a process without such threads."""
    found: dict[int, float] = {}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            if "CompilerThre" not in (task / "comm").read_text():
                continue
            fields = (task / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        found[int(task.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return found


def pids_of(peer: PaynotifyPeer, names: list[str]) -> list[int]:
    """Process ids of the named services, with the stream supervisor's worker."""
    assert peer.stack is not None
    pids = []
    for name in names:
        pid = peer.stack.children[name].pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [pid, *map(int, children)]
    return pids


def label(pid: int, command: str) -> str:
    """A short name for a process of the run."""
    if pid == os.getpid():
        return "this client (the bench's own process)"
    for name in ("gateway", "sink", "stream"):
        if command.endswith(f" {name}"):
            return name if name != "stream" else "stream supervisor"
    if "stream --worker" in command:
        return "stream worker"
    if "java" in command and "kafka" in command:
        return "broker (JVM)"
    if command.startswith("postgres"):
        return "postgres"
    return command[:60]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--pause", default="none", help="none, or services among stream,sink")
    args = parser.parse_args()
    paused = [] if args.pause == "none" else args.pause.split(",")
    folder = Path(tempfile.mkdtemp(prefix="paynotify-stack-ack-"))
    public = write_public_pem(signer.key(0), folder / "alipay_public.pem")
    with PaynotifyPeer(public) as peer:
        warm = {f"w-{i}": signer.sign(signer.payment(f"w-{i}")) for i in range(400)}
        bodies = {f"m-{i}": signer.sign(signer.payment(f"m-{i}")) for i in range(args.count)}
        peer.add_orders([(no, AMOUNT_MINOR) for no in [*warm, *bodies]])
        peer.wait_applied()
        fixed_rate(peer.url, peer.connect, warm, args.rate, drain_s=10)
        stopped = pids_of(peer, paused)
        for pid in stopped:
            os.kill(pid, signal.SIGSTOP)
        try:
            names = processes()
            before = {pid: own_cpu(pid) for pid in names}
            mine = resource.getrusage(resource.RUSAGE_SELF)
            started = time.monotonic()
            # No wait for the orders to be paid: the CPU figures cover the sending only.
            result = fixed_rate(peer.url, peer.connect, bodies, args.rate, drain_s=0)
            seconds = time.monotonic() - started
            used = resource.getrusage(resource.RUSAGE_SELF)
            cores = {pid: (own_cpu(pid) - before[pid]) / seconds for pid in names}
            cores[os.getpid()] = (
                used.ru_utime + used.ru_stime - mine.ru_utime - mine.ru_stime
            ) / seconds
        finally:
            for pid in stopped:
                os.kill(pid, signal.SIGCONT)
        report(args, result.ack_ms(), dict(result.answers()), cores, names, seconds)
    shutil.rmtree(folder, ignore_errors=True)
    return 0


def report(
    args: argparse.Namespace,
    ack: list[float],
    answers: dict[str, int],
    cores: dict[int, float],
    names: dict[int, str],
    seconds: float,
) -> None:
    """Print the latency and the CPU per process."""
    ordered = sorted(ack)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(f"\n{args.count} notifications at {args.rate:.0f}/s, paused: {args.pause}; {answers}")
    print(f"ack p50 {statistics.median(ack):.1f} ms, p99 {p99:.1f} ms")
    per_second = max(1, round(args.rate))
    steps = [
        f"{statistics.median(ack[i : i + per_second]):.0f}" for i in range(0, len(ack), per_second)
    ]
    print("ack p50 in each second of the run, ms: " + " ".join(steps))
    print(f"CPU during the run ({seconds:.1f} s), cores:")
    busy = sorted(((c, pid) for pid, c in cores.items() if c >= 0.01), reverse=True)
    totals: dict[str, float] = {}
    for c, pid in busy:
        name = label(pid, names.get(pid, ""))
        totals[name] = totals.get(name, 0.0) + c
    for name, c in sorted(totals.items(), key=lambda x: -x[1]):
        print(f"  {c:.2f}  {name}")


if __name__ == "__main__":
    raise SystemExit(main())
