"""The ``paynotify`` command: wires the three services and the local tooling together."""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.accounts import reconciling
from gateway.config import CONFIG_ENV, KafkaSettings, config_path, kafka_settings, read_toml
from gateway.errors import ConfigError, GatewayError
from gateway.settings import METRICS_DIR_ENV, load_settings
from paynotify import story
from paynotify.broker import LocalBroker
from paynotify.console import command as console_command
from paynotify.errors import PaynotifyError
from paynotify.logs import setup_logging
from paynotify.orders import publish_orders
from paynotify.simulator import command as simulate_command
from paynotify.topics import ensure_topics
from sinks.errors import SinkError
from sinks.schema import create_db_engine, upgrade
from sinks.settings import load_sink_settings
from stream.errors import StreamError
from stream.records import ALL_TOPICS, ORDERS_TOPIC, ExpectedOrder
from stream.settings import load_stream_settings

DEMO_DIR = Path("var/demo")
EXPECTED = (GatewayError, StreamError, SinkError, PaynotifyError)  # one line, exit status 2


def _topics(kafka: KafkaSettings) -> None:
    ensure_topics(kafka.bootstrap_servers, [kafka.topic(t) for t in ALL_TOPICS], kafka.partitions)


def cmd_gateway(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.asgi import LeanGateway
    from gateway.serving import protocol_for

    path = config_path(args.config)
    settings = load_settings(path)
    _topics(settings.kafka)
    options = {
        "host": settings.host,
        "port": settings.port,
        "access_log": False,
        "timeout_graceful_shutdown": 10,
        # Slow and greedy clients: a deadline per request and a bounded head (gateway/serving.py),
        # and at most max_connections connections (uvicorn answers 503 beyond).
        "http": protocol_for(settings),
        "limit_concurrency": settings.max_connections,
    }
    if settings.workers == 1:
        uvicorn.run(LeanGateway(settings, server_deadline=True), log_config=None, **options)
        return 0
    # Worker processes import the app themselves: they find the file through the environment.
    os.environ[CONFIG_ENV] = str(path.resolve())
    with metrics_dir_for_workers():
        uvicorn.run(
            "gateway.asgi:lean_app_from_config",
            factory=True,
            workers=settings.workers,
            log_config=JSON_LOG_CONFIG,
            **options,
        )
    return 0


@contextmanager
def metrics_dir_for_workers() -> Iterator[Path]:
    """Give the gateway's worker processes one folder for prometheus_client's multiprocess mode.

    The folder goes into ``PROMETHEUS_MULTIPROC_DIR`` before uvicorn spawns the workers: each
    imports prometheus_client afresh, sees the variable, keeps its values in files there, and
    answers ``/metrics`` with the sum over all the files. A folder the user named there is kept,
    but emptied of value files (``*.db``) first, or an earlier run's totals would be added in;
    otherwise a private folder is made, and removed when the command ends.
    """
    given = os.environ.get(METRICS_DIR_ENV)
    if given:
        folder = Path(given)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):
            stale.unlink()
        yield folder
        return
    folder = Path(tempfile.mkdtemp(prefix="paynotify-metrics-"))
    os.environ[METRICS_DIR_ENV] = str(folder)
    try:
        yield folder
    finally:
        os.environ.pop(METRICS_DIR_ENV, None)
        shutil.rmtree(folder, ignore_errors=True)


JSON_LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"()": "paynotify.logs.JsonLineHandler"}},
    "root": {"handlers": ["stderr"], "level": "INFO"},
}


def cmd_stream(args: argparse.Namespace) -> int:
    if not args.worker:  # supervise a worker process: see paynotify/supervisor.py
        from paynotify.supervisor import supervise

        load_stream_settings(config_path(args.config))  # a wrong file: one line, no restarts

        command = [sys.executable, "-m", "paynotify.cli", "--log-level", args.log_level]
        if args.config:
            command += ["--config", args.config]
        return supervise([*command, "stream", "--worker"], "stream")
    settings = load_stream_settings(config_path(args.config))
    _topics(settings.kafka)
    if settings.engine == "quix":
        # quixstreams imports confluent-kafka's schema registry, which imports authlib's httpx
        # client; authlib forces its deprecation warning to show ("always"), a line of noise and
        # not JSON at every start. Other warnings of the import become log lines.
        with warnings.catch_warnings(record=True) as caught:
            from stream.engines.quix import run
        for warning in caught:
            if "httpx module is deprecated" not in str(warning.message):
                logging.getLogger("paynotify.stream").warning(
                    "warning while loading the engine", extra={"error": str(warning.message)[:300]}
                )

        return run(settings)
    from stream.engines.faust import run as run_faust

    return run_faust(settings)


def cmd_sink(args: argparse.Namespace) -> int:
    from sinks.consumer import KafkaSink

    settings = load_sink_settings(config_path(args.config))
    _topics(settings.kafka)
    engine = create_db_engine(settings.database_url)
    stop = threading.Event()  # the sink checks the schema itself, waiting out a database outage
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    KafkaSink(settings, engine).run(stop)
    return 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    from paynotify.reconcile.loop import load_reconcile_settings, run

    settings = load_reconcile_settings(config_path(args.config))
    _topics(settings.kafka)
    engine = create_db_engine(settings.database_url)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    run(settings, engine, stop)
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    settings = load_sink_settings(config_path(args.config))
    engine = create_db_engine(settings.database_url)
    print(f"database at revision {upgrade(engine)}")
    return 0


def _kafka(args: argparse.Namespace) -> KafkaSettings:
    """Return the ``[kafka]`` section alone: no service's secrets are read for it."""
    path = config_path(args.config)
    return kafka_settings(read_toml(path), path)


def cmd_orders_add(args: argparse.Namespace) -> int:
    kafka = _kafka(args)
    _topics(kafka)
    order = ExpectedOrder(
        out_trade_no=args.out_trade_no,
        account=args.account,
        amount_minor=args.amount_minor,
        currency=args.currency,
        created_at=datetime.now(UTC).isoformat(),
    )
    publish_orders(kafka.bootstrap_servers, kafka.topic(ORDERS_TOPIC), [order])
    print(f"order {order.out_trade_no} published: {order.amount_minor} {order.currency}")
    return 0


def cmd_topics_create(args: argparse.Namespace) -> int:
    kafka = _kafka(args)
    created = ensure_topics(
        kafka.bootstrap_servers, [kafka.topic(t) for t in ALL_TOPICS], kafka.partitions
    )
    print(f"created: {', '.join(created) or 'nothing (all exist)'}")
    return 0


def cmd_kafka(args: argparse.Namespace) -> int:
    broker = LocalBroker(Path(args.data_dir).resolve(), port=args.port)
    if args.action == "start":
        seconds = broker.start()
        print(
            f"kafka {broker.version} ready at {broker.bootstrap_servers} in {seconds:.1f}s "
            f"(pid {broker.pid()}, data in {broker.data_dir})"
        )
    elif args.action == "stop":
        broker.stop()
        print("kafka stopped")
    else:
        pid = broker.pid()
        print(f"running (pid {pid})" if pid else "stopped")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from paynotify.console.settings import has_console, load_console_settings
    from paynotify.demo import print_result, run_demo, write_demo_config
    from paynotify.stack import Stack, services_from

    if args.config is None and args.demo:
        args.config = str(write_demo_config(DEMO_DIR))
    path = config_path(args.config)
    logs = path.parent / "logs" if args.demo else None
    gateway = load_settings(path)
    reconciles = bool(reconciling(gateway.accounts.values()))
    services = services_from(args.only, reconcile=reconciles, console=has_console(read_toml(path)))
    stack = Stack(path, gateway, load_sink_settings(path), services, logs)
    if "console" in services:  # a missing or short token: one line, before anything starts
        stack.console = load_console_settings(path)
    try:
        stack.start()
        if not args.demo:
            print("paynotify: stack is up; Ctrl-C stops it", flush=True)
            stack.wait()
            return 0
        private = _demo_key(path)
        result = asyncio.run(
            run_demo(
                stack.gateway,
                stack.sink,
                private,
                count=args.demo_orders,
                alive=stack.check_children,
            )
        )
        print_result(result)
        print(f"service logs: {logs}")
        return 0 if result.ok else 1
    finally:
        stack.stop()


def _demo_key(path: Path) -> Path:
    demo = read_toml(path).get("demo", {})
    if "alipay_private_key" not in demo:
        raise ConfigError("--demo needs [demo] alipay_private_key in the configuration file")
    return path.parent / str(demo["alipay_private_key"])


CONFIG_HELP = (
    "configuration file (default: $PAYNOTIFY_CONFIG), before or after the subcommand; "
    "given in both places, the one after it wins"
)


class CommandParser(argparse.ArgumentParser):
    """An argument parser that takes ``--config`` before the subcommand and after it.

    argparse makes every subcommand's parser of its parent's class, so each one, nested ones
    (``orders add``) included, gets its own ``--config``. A subcommand's ``--config`` has no
    default: when absent, the value given before the subcommand (or None) stays; when present,
    it replaces that value, so the last one on the command line wins.
    """

    def __init__(
        self, *args: Any, config_default: str | None = argparse.SUPPRESS, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument("--config", default=config_default, help=CONFIG_HELP)


def build_parser() -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = CommandParser(
        prog="paynotify", description=__doc__, config_default=None
    )
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the whole local stack in the foreground")
    up.add_argument(
        "--only", help="comma-separated subset of gateway,stream,sink,reconcile,console"
    )
    up.add_argument("--demo", action="store_true", help="send a demonstration burst, print, stop")
    up.add_argument("--demo-orders", type=int, default=20)
    up.set_defaults(func=cmd_up)
    for name, func in (("gateway", cmd_gateway), ("stream", cmd_stream), ("sink", cmd_sink)):
        service = sub.add_parser(name, help=f"run the {name} service")
        service.set_defaults(func=func)
        if name == "stream":  # the supervised child: see paynotify/supervisor.py
            service.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    reconcile = sub.add_parser(
        "reconcile", help="query providers about orders whose payment was never confirmed"
    )
    reconcile.set_defaults(func=cmd_reconcile)
    orders = sub.add_parser("orders", help="expected orders").add_subparsers(
        dest="action", required=True
    )
    add = orders.add_parser("add", help="publish an expected order to the orders topic")
    add.add_argument("--out-trade-no", required=True)
    add.add_argument("--account", required=True)
    add.add_argument("--amount-minor", type=int, required=True, help="amount in minor units (fen)")
    add.add_argument("--currency", default="CNY")
    add.set_defaults(func=cmd_orders_add)
    story.add_parsers(orders, sub)
    simulate_command.add_parser(sub)
    console_command.add_parser(sub)
    db = sub.add_parser("db", help="database schema").add_subparsers(dest="action", required=True)
    db.add_parser("upgrade", help="apply the migrations").set_defaults(func=cmd_db_upgrade)
    topics = sub.add_parser("topics", help="Kafka topics").add_subparsers(
        dest="action", required=True
    )
    topics.add_parser("create", help="create every topic").set_defaults(func=cmd_topics_create)
    kafka = sub.add_parser("kafka", help="a local broker from Maven Central jars")
    kafka.add_argument("action", choices=("start", "stop", "status"))
    kafka.add_argument("--data-dir", default="var/kafka")
    kafka.add_argument("--port", type=int, default=9092)
    kafka.set_defaults(func=cmd_kafka)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    # ``kill -USR1`` prints every thread's stack to stderr, even with the main thread stuck in C
    # (not when stderr is no file, e.g. captured by a test runner).
    with suppress(OSError, ValueError):
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except EXPECTED as exc:
        print(f"paynotify: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
