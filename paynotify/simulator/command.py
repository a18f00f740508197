"""``paynotify simulate``: plan, publish the expected orders, play the providers, summarize, and
with ``--verify`` check every order's end state in the database and on the ``order-paid`` topic."""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

from gateway.config import config_path, read_toml
from gateway.settings import GatewaySettings, load_settings
from paynotify.errors import SigningKeyError
from paynotify.orders import publish_orders
from paynotify.simulator import keys as signing
from paynotify.simulator.plan import PROVIDERS, Options, Plan, plan
from paynotify.simulator.progress import ProgressBar, planned_copies
from paynotify.simulator.queries import QueryServer, played_accounts
from paynotify.simulator.report import Report, format_summary
from paynotify.simulator.runner import Target, expected_orders, now_iso, simulate
from paynotify.simulator.signers import SigningKeys
from paynotify.simulator.verification import (
    Verification,
    count_paid_events,
    describe,
    verify,
)
from paynotify.topics import ensure_topics
from sinks.schema import create_db_engine
from sinks.settings import load_sink_settings
from stream.records import ALL_TOPICS, ORDER_PAID_TOPIC, ORDERS_TOPIC

RATIOS = (
    ("duplicates", 0.3, "share of notifications the provider delivers again later"),
    ("burst-ratio", 0.1, "share of notifications whose first delivery is a concurrent burst"),
    ("out-of-order", 0.1, "share of paid orders whose refund (or TRADE_FINISHED) comes first"),
    ("mismatches", 0.05, "share of orders paid with the wrong amount"),
    ("forged", 0.05, "share of orders that get only a forged payment"),
    ("tampered", 0.05, "share of paid orders that also get a tampered copy first"),
    ("refunds", 0.2, "share of paid orders refunded (partly, fully, or fully in two)"),
    ("closes", 0.05, "share of orders closed unpaid (Alipay, Standard Webhooks, Adyen)"),
    ("lost", 0.05, "share of orders paid with every webhook lost (accounts that reconcile)"),
    ("late", 0.05, "share of orders whose webhook waits until the reconciler asked (same)"),
)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``simulate`` and its options to the command's subparsers."""
    parser = sub.add_parser("simulate", help="play the providers against a running gateway")
    parser.add_argument("--orders", type=int, default=100)
    parser.add_argument("--providers", help=f"comma-separated subset of {','.join(PROVIDERS)}")
    parser.add_argument(
        "--signing-key",
        action="append",
        default=[],
        metavar="ACCOUNT=PATH",
        help="PEM private key playing the provider of an Alipay or WeChat Pay account",
    )
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second at most")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight at most")
    for name, default, text in RATIOS:
        parser.add_argument(f"--{name}", type=float, default=default, help=text)
    parser.add_argument("--bursts", type=int, default=4, help="copies in a concurrent burst")
    parser.add_argument(
        "--time-factor", type=float, default=1000.0, help="divide providers' delays by this"
    )
    parser.add_argument("--seed", type=int, help="random seed (default: a random one, printed)")
    parser.add_argument("--run-id", help="prefix of the order numbers (default: sim-<random>)")
    parser.add_argument("--url", help="gateway base URL (default: from [gateway] listen)")
    parser.add_argument(
        "--endpoint",
        action="append",
        default=[],
        metavar="PROVIDER=URL_OR_PATH",
        help="send a provider elsewhere; {account} is filled in",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    parser.add_argument("--no-orders", action="store_true", help="do not publish the orders")
    parser.add_argument("--verify", action="store_true", help="check every order's end state")
    parser.add_argument("--verify-timeout", type=float, default=60.0)
    parser.add_argument("--json", type=Path, help="write the summary and expected states here")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``paynotify simulate``; return 1 when a check failed.

    Raises:
        ConfigError, SigningKeyError, PlanError, OrderPublishError, TopicError.
    """
    path = config_path(args.config)
    settings = load_settings(path)
    providers = _split(args.providers)
    keys = signing.select(settings.accounts, providers, _key_paths(args.signing_key, path))
    played = played_accounts(keys)
    the_plan = plan(_options(args), signing.plan_accounts(keys, played))
    server = QueryServer(the_plan, played) if played else None
    if server is not None:
        server.start()
    try:
        return _run(args, path, settings, keys, the_plan, server)
    finally:
        if server is not None:
            server.stop()


def _run(
    args: argparse.Namespace,
    path: Path,
    settings: GatewaySettings,
    keys: dict[tuple[str, str], SigningKeys],
    the_plan: Plan,
    server: QueryServer | None,
) -> int:
    if not args.no_orders:
        _publish(settings, the_plan)
    target = Target(args.url or f"http://{settings.host}:{settings.port}", _endpoints(args))
    bar = None if args.no_progress else ProgressBar(planned_copies(the_plan))
    report = asyncio.run(
        simulate(
            the_plan,
            target,
            keys,
            rate=args.rate,
            concurrency=args.concurrency,
            time_factor=args.time_factor,
            request_timeout=args.timeout,
            progress=bar,
            queried=server.was_asked if server is not None else None,
        )
    )
    if bar is not None:
        bar.close(report)
    print(format_summary(report), flush=True)
    checked = _verify(path, settings, the_plan, args.verify_timeout) if args.verify else None
    if args.json is not None:
        report.write_json(args.json, {"verification": checked.to_json() if checked else None})
    return _exit_code(report, checked)


def _options(args: argparse.Namespace) -> Options:
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    return Options(
        orders=args.orders,
        duplicates=args.duplicates,
        burst_ratio=args.burst_ratio,
        burst_size=args.bursts,
        out_of_order=args.out_of_order,
        mismatches=args.mismatches,
        forged=args.forged,
        tampered=args.tampered,
        refunds=args.refunds,
        closes=args.closes,
        lost=args.lost,
        late=args.late,
        seed=seed,
        run_id=args.run_id or f"sim-{uuid.uuid4().hex[:8]}",
    )


def _split(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def _key_paths(values: Sequence[str], config: Path) -> dict[str, Path]:
    """Parse ``--signing-key``; the demo configuration's Alipay key serves when none is given."""
    paths = signing.parse_signing_keys(values)
    demo = read_toml(config).get("demo", {})
    if "alipay_private_key" in demo:
        for account in read_toml(config).get("accounts", []):
            if account.get("provider") == "alipay":
                paths.setdefault(account["name"], config.parent / demo["alipay_private_key"])
    return paths


def _endpoints(args: argparse.Namespace) -> dict[str, str]:
    out = {}
    for value in args.endpoint:
        provider, sep, where = value.partition("=")
        if not sep or provider not in PROVIDERS or not where:
            raise SigningKeyError(f"--endpoint wants PROVIDER=URL_OR_PATH, got {value!r}")
        out[provider] = where
    return out


def _publish(settings: GatewaySettings, the_plan: Plan) -> None:
    ensure_topics(
        settings.bootstrap_servers,
        [settings.topic_prefix + t for t in ALL_TOPICS],
        settings.partitions,
    )
    topic = settings.topic_prefix + ORDERS_TOPIC
    count = publish_orders(settings.bootstrap_servers, topic, expected_orders(the_plan, now_iso()))
    print(f"paynotify: {count} expected orders published to {topic}", file=sys.stderr)


def _verify(path: Path, settings: GatewaySettings, the_plan: Plan, timeout: float) -> Verification:
    result = verify_run(settings, load_sink_settings(path).database_url, the_plan, timeout)
    for line in describe(result):
        print(line, flush=True)
    return result


def verify_run(
    settings: GatewaySettings, database_url: str, the_plan: Plan, timeout: float
) -> Verification:
    """Check every order of ``the_plan`` in the database and on the ``order-paid`` topic."""
    engine = create_db_engine(database_url)
    topic = settings.topic_prefix + ORDER_PAID_TOPIC
    prefix = f"{the_plan.options.run_id}-"
    try:
        return verify(
            the_plan,
            engine,
            lambda: count_paid_events(settings.bootstrap_servers, topic, prefix),
            timeout=timeout,
        )
    finally:
        engine.dispose()


def _exit_code(report: Report, checked: Verification | None) -> int:
    total = report.total()
    failed = report.defects or total.gave_up or (checked is not None and not checked.ok)
    return 1 if failed else 0
