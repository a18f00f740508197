"""paynotify versus the seed article's design (Gin + Redis SETNX), side by side in one run.

Both systems get the same pre-signed Alipay RSA2 notifications (one generated key; paynotify's
gateway and the seed peer hold its public key, both databases the same expected orders) on the
same machine, one system at a time:

1. end to end: notifications at a fixed ``--rate`` from Python; the time from sending each one
   to its order being visible as paid in the system's PostgreSQL (polled every 10 ms);
2. correctness under faults: concurrent duplicate bursts, a forged flood, a forged copy and a
   genuinely signed TRADE_CLOSED for the wrong amount (``tests.support.seed_peer.scenarios``),
   counting lost, duplicated and unearned effects;
3. full load: wrk replays all-unique and 30%-duplicate loads, ``--runs`` times each; only the
   system's own success answer (paynotify ``success``, seed ``SUCCESS``) counts as acknowledged.

Prints a Markdown summary and the results as JSON, and writes PNG plots into ``--out``.

    .venv/bin/python bench/side_by_side.py --runs 3 --seconds 10 --out docs/img
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/ and tests/support

from bench.gateway_load import THREADS, write_bodies, write_lua, wrk
from bench.peers.paynotify_stack import PaynotifyPeer
from bench.side_by_side_load import AMOUNT_MINOR, Load, fixed_rate, make_loads, sign_all
from bench.side_by_side_plots import plot_all
from gateway.records import NOTIFICATIONS_TOPIC
from tests.support import alipay as signer
from tests.support.kafka_checks import committed, end_offsets
from tests.support.keys import write_public_pem
from tests.support.seed_peer import scenarios
from tests.support.seed_peer.gin import SeedPeer

Peer = PaynotifyPeer | SeedPeer


def log(message: str) -> None:
    print(f"side-by-side: {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], p: float) -> float | None:
    """Return the ``p``-th percentile (nearest rank) or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


def settle(peer: Peer) -> None:
    """Let paynotify's stream and sink catch up (the seed applies before it answers)."""
    if isinstance(peer, PaynotifyPeer):
        peer.wait_applied()


def run_fixed_rate(
    peer: Peer, bodies: dict[str, bytes], warm: dict[str, bytes], rate: float
) -> dict[str, Any]:
    """Warm up, then send ``bodies`` at ``rate`` and time acknowledgement and database."""
    peer.add_orders([(no, AMOUNT_MINOR) for no in [*warm, *bodies]])
    settle(peer)
    log(f"fixed rate: warm-up, then {len(bodies)} notifications at {rate:.0f}/s")
    fixed_rate(peer.url, peer.connect, warm, rate)
    result = fixed_rate(peer.url, peer.connect, bodies, rate)
    ack, e2e = result.ack_ms(), result.e2e_ms(peer.success_answer)
    return {
        "rate": rate,
        "sent": len(result.probes),
        "answers": dict(result.answers()),
        "not_applied_after_60s": result.not_applied(peer.success_answer),
        "ack_p50_ms": percentile(ack, 50),
        "ack_p99_ms": percentile(ack, 99),
        "e2e_p50_ms": percentile(e2e, 50),
        "e2e_p99_ms": percentile(e2e, 99),
        "ack_ms": [round(x, 2) for x in ack],
        "e2e_ms": [round(x, 2) for x in e2e],
    }


NOTHING_TO_PAY = (scenarios.forged_probe, scenarios.wrong_status_and_amount)


def run_faults(peer: Peer) -> list[dict[str, Any]]:
    key = signer.key(0)
    runs: list[tuple[str, Callable[..., scenarios.Measurement], tuple[object, ...]]] = [
        ("duplicate burst: 20 orders x 8 concurrent copies", scenarios.genuine_burst, (key, 20, 8)),
        ("forged flood (4 senders) + 1 genuine copy, 10 orders", scenarios.forged_flood, (key, 10)),
        ("forged copy of a real order", scenarios.forged_probe, ()),
        ("signed TRADE_CLOSED, a tenth of the amount", scenarios.wrong_status_and_amount, (key,)),
    ]
    out = []
    for name, scenario, extra in runs:
        log(f"fault: {name}")
        m = scenario(peer, *extra)
        out.append(
            {
                "scenario": name,
                "orders": len(m.orders),
                "answers": dict(m.answers),
                "paid": m.paid,
                "lost": 0 if scenario in NOTHING_TO_PAY else m.lost,
                "duplicated": m.duplicated,
                "effects": m.effects,
                # Nothing may be paid in these two: every paid order is an unearned effect.
                "unearned": m.paid if scenario in NOTHING_TO_PAY else 0,
                **({"facts": m.facts} if m.facts else {}),
            }
        )
    return out


def run_throughput(
    peer: Peer, loads: dict[str, list[Load]], warm: Load, args: argparse.Namespace
) -> dict[str, Any]:
    success = peer.success_answer
    peer.add_orders([(no, AMOUNT_MINOR) for no in warm.orders])
    if isinstance(peer, SeedPeer):  # the seed's orders all go in first; paynotify's per run
        peer.add_orders(
            [(no, AMOUNT_MINOR) for ls in loads.values() for x in ls for no in x.orders]
        )
    wrk(peer.url, write_lua(warm.bodies, 0), args.connections, 3)
    runs: dict[str, list[dict[str, Any]]] = {mix: [] for mix in loads}
    for run in range(args.runs):
        for mix, mix_loads in loads.items():
            load = mix_loads[run]
            if isinstance(peer, PaynotifyPeer):
                peer.add_orders([(no, AMOUNT_MINOR) for no in load.orders])
            result = wrk(peer.url, write_lua(load.bodies, 0), args.connections, args.seconds)
            result["acked_per_s"] = result["answers"].get(success, 0) / result["seconds"]
            result["load"] = load.name
            log(
                f"{load.name}: {result['acked_per_s']:,.0f} acknowledged/s, p50 "
                f"{result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, {result['answers']}"
            )
            runs[mix].append(result)
    summary: dict[str, Any] = {}
    for mix, results in runs.items():
        ordered = sorted(results, key=lambda r: r["acked_per_s"])
        summary[mix] = {
            "acked_per_s": statistics.median(r["acked_per_s"] for r in results),
            "p50_ms": statistics.median(r["p50_ms"] for r in results),
            "p99_ms": statistics.median(r["p99_ms"] for r in results),
            "median_run": ordered[len(ordered) // 2],
            "runs": results,
        }
    return summary


def stream_lag(peer: PaynotifyPeer) -> int:
    """Return how many notifications the stream had not consumed yet."""
    ends = end_offsets(peer.bootstrap, NOTIFICATIONS_TOPIC)
    done = committed(peer.bootstrap, "paynotify-stream", NOTIFICATIONS_TOPIC, len(ends))
    return sum(end - max(done.get(p, 0), 0) for p, end in ends.items())


def measure(
    peer: Peer,
    e2e_bodies: dict[str, bytes],
    e2e_warm: dict[str, bytes],
    loads: dict[str, list[Load]],
    warm: Load,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Run the three parts against one system."""
    result: dict[str, Any] = {"success_answer": peer.success_answer}
    result["fixed_rate"] = run_fixed_rate(peer, e2e_bodies, e2e_warm, args.rate)
    result["faults"] = run_faults(peer)
    result["throughput"] = run_throughput(peer, loads, warm, args)
    if isinstance(peer, PaynotifyPeer):
        result["stream_backlog_after_full_load"] = stream_lag(peer)
    return result


def ratios(systems: dict[str, Any]) -> dict[str, float | None]:
    """Return paynotify / seed for each headline figure."""
    ours, seed = systems["paynotify"], systems["seed"]

    def ratio(a: float | None, b: float | None) -> float | None:
        return None if a is None or not b else round(a / b, 3)

    out = {}
    for mix in ("unique", "duplicates"):
        for name in ("acked_per_s", "p50_ms", "p99_ms"):
            out[f"{mix}_{name}"] = ratio(
                ours["throughput"][mix][name], seed["throughput"][mix][name]
            )
    for name in ("ack_p50_ms", "ack_p99_ms", "e2e_p50_ms", "e2e_p99_ms"):
        out[f"fixed_rate_{name}"] = ratio(ours["fixed_rate"][name], seed["fixed_rate"][name])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rate", type=float, default=200.0, help="fixed rate, notifications/s")
    parser.add_argument("--e2e-seconds", type=int, default=10)
    parser.add_argument("--duplicates", type=float, default=0.3)
    parser.add_argument(
        "--max-rate", type=int, default=4000, help="requests/s the unique loads must last for"
    )
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--only", choices=("paynotify", "seed"), help="measure one system")
    args = parser.parse_args()
    started = datetime.now(UTC)
    load_before = os.getloadavg()
    folder = Path(tempfile.mkdtemp(prefix="paynotify-sbs-"))
    key = signer.key(0)
    public = write_public_pem(key, folder / "alipay_public.pem")
    requests = math.ceil(args.max_rate * args.seconds * 1.1)
    log(f"signing {args.runs} x 2 loads of {requests:,} requests (one RSA2 key)")
    clock = time.monotonic()
    loads = make_loads(folder, key, requests, args.runs, args.duplicates)
    warm_numbers = [f"w-{i}" for i in range(2000)]
    warm_bodies = write_bodies(folder / "warm.txt", sign_all(key, warm_numbers).values())
    warm = Load("warm-up", warm_bodies, warm_numbers, len(warm_numbers))
    e2e_bodies = sign_all(key, [f"e2e-{i}" for i in range(int(args.rate * args.e2e_seconds))])
    e2e_warm = sign_all(key, [f"e2e-warm-{i}" for i in range(int(args.rate * 2))])
    log(f"signed in {time.monotonic() - clock:.0f} s")
    systems: dict[str, Any] = {}
    for name in ("paynotify", "seed"):
        if args.only in (None, name):
            log(f"starting {name}")
            system: AbstractContextManager[Peer] = (
                PaynotifyPeer(public) if name == "paynotify" else SeedPeer(public)
            )
            with system as peer:
                systems[name] = measure(peer, e2e_bodies, e2e_warm, loads, warm, args)
    results = {
        "started": started.isoformat(timespec="seconds"),
        "seconds_total": round((datetime.now(UTC) - started).total_seconds()),
        "machine": {"cores": os.cpu_count(), "loadavg_before": load_before},
        "args": {k: str(v) for k, v in vars(args).items()},
        "wrk": {"threads": THREADS, "connections": args.connections},
        "requests_per_load": requests,
        "systems": systems,
    }
    if len(systems) == 2:
        results["ratios"] = ratios(systems)
        results["plots"] = [str(p) for p in plot_all(results, args.out)]
    text = json.dumps(results, indent=1)
    if args.json:
        args.json.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
