"""Which orders reconciliation asks about: those the sink's database still holds as ``created``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.engine import Engine

from sinks.rows import orders
from stream.records import CREATED


@dataclass(frozen=True, slots=True)
class OpenOrder:
    """An order not yet confirmed paid: its number, account and when the merchant created it."""

    out_trade_no: str
    account: str
    created_at: datetime


def open_orders(
    engine: Engine, accounts: Iterable[str], now: datetime, window_s: float
) -> list[OpenOrder]:
    """Return the ``created`` orders of ``accounts`` changed within ``window_s`` before ``now``.

    An order whose ``created_at`` is missing or not a zoned ISO-8601 time is left out (it cannot
    be scheduled).
    """
    names = sorted(set(accounts))
    if not names:
        return []
    query = (
        select(orders.c.out_trade_no, orders.c.account, orders.c.created_at)
        .where(orders.c.status == CREATED)
        .where(orders.c.account.in_(names))
        .where(orders.c.updated_at >= now - timedelta(seconds=window_s))
        .order_by(orders.c.out_trade_no)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    found = []
    for out_trade_no, account, created_at in rows:
        created = _zoned(created_at)
        if created is not None:
            found.append(OpenOrder(out_trade_no, account, created))
    return found


def _zoned(value: str | None) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value) if value else None
    except ValueError:
        return None
    return parsed if parsed is not None and parsed.tzinfo is not None else None
