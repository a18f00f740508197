"""``paynotify orders show`` and ``paynotify anomalies list``: the sink's tables for people.

Both read the database of ``[database] url`` (what the sink writes) and print a table, or JSON
with ``--json``; neither prints a provider's raw body.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from gateway.config import config_path
from paynotify.errors import UnknownOrderError
from sinks.schema import check_migrated, create_db_engine
from sinks.settings import load_sink_settings
from sinks.timeline import Story, order_story, recent_anomalies

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def add_parsers(
    orders: argparse._SubParsersAction[Any], sub: argparse._SubParsersAction[Any]
) -> None:
    """Add ``orders show`` to the ``orders`` subcommands and ``anomalies list`` to ``sub``."""
    show = orders.add_parser("show", help="print an order's timeline")
    show.add_argument("out_trade_no")
    show.add_argument("--json", action="store_true", help="print JSON instead of a table")
    show.set_defaults(func=cmd_orders_show)
    listing = sub.add_parser("anomalies", help="recorded anomalies").add_subparsers(
        dest="action", required=True
    )
    recent = listing.add_parser("list", help="list anomalies, latest first")
    recent.add_argument("--since", type=since, help="an ISO-8601 time, or an age: 30m, 2h, 7d")
    recent.add_argument("--reason", help="only this reason (e.g. amount_mismatch)")
    recent.add_argument("--limit", type=int, default=100)
    recent.add_argument("--json", action="store_true", help="print JSON instead of a table")
    recent.set_defaults(func=cmd_anomalies_list)


def since(text: str, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> datetime:
    """Parse ``--since``: an ISO-8601 time (UTC when it has no offset) or an age like ``2h``."""
    age = re.fullmatch(r"(\d+)([smhd])", text.strip())
    if age:
        return now() - timedelta(seconds=int(age[1]) * UNITS[age[2]])
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither an ISO-8601 time nor an age like 30m, 2h or 7d"
        ) from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


@contextmanager
def database(args: argparse.Namespace) -> Iterator[Connection]:
    """Connect to the configured database, once its schema is checked."""
    engine = create_db_engine(load_sink_settings(config_path(args.config)).database_url)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its "Context impl" lines: noise here
    try:
        check_migrated(engine)
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def cmd_orders_show(args: argparse.Namespace) -> int:
    with database(args) as conn:
        story = order_story(conn, args.out_trade_no)
    if not story.known:
        raise UnknownOrderError(f"nothing on record for order {args.out_trade_no!r}")
    print(json.dumps(story.as_json(), indent=2) if args.json else story_table(story))
    return 0


def cmd_anomalies_list(args: argparse.Namespace) -> int:
    with database(args) as conn:
        rows = recent_anomalies(conn, args.since, args.reason, args.limit)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    lines = [(r["recorded_at"], r["reason"], r["out_trade_no"], r["detail"]) for r in rows]
    print(table(("recorded at", "reason", "order", "detail"), lines) if lines else "no anomalies")
    return 0


def story_table(story: Story) -> str:
    """Return the order's header line and its timeline as a text table."""
    order = story.order
    if order is None:
        head = f"order {story.out_trade_no}: no expected order on record"
    else:
        head = (
            f"order {story.out_trade_no}  account {order['account']}  "
            f"{order['amount_minor']} {order['currency']}  status {order['status']} "
            f"(version {order['version']})  refunded {order['refunded_minor']}"
        )
    lines = [(e.at, e.what, e.summary) for e in story.entries]
    return head + "\n" + (table(("at", "what", "summary"), lines) if lines else "(no history)")


def table(headers: tuple[str, ...], rows: list[tuple[Any, ...]], widest: int = 100) -> str:
    """Return ``rows`` as left-aligned columns under ``headers`` (cells cut at ``widest``)."""
    cells = [tuple(str(v)[:widest] for v in row) for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )
