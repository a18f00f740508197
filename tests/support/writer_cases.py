"""Writer scenarios run on SQLite (unit) and on a real PostgreSQL (integration)."""

from __future__ import annotations

import random

from sqlalchemy import Engine, func, select

from sinks.rows import anomalies, order_events, orders
from sinks.writer import Record, write_batch
from stream.records import (
    ANOMALIES_TOPIC,
    ORDER_PAID_TOPIC,
    ORDERS_TOPIC,
    Anomaly,
    ExpectedOrder,
    OrderPaid,
    event_id,
)


def expected(n: int) -> ExpectedOrder:
    return ExpectedOrder(f"o-{n}", "shop", 100 + n, "CNY", "2026-11-26T10:00:00+08:00")


def paid(n: int) -> OrderPaid:
    return OrderPaid(
        event_id=event_id("shop", f"o-{n}", "paid"),
        out_trade_no=f"o-{n}",
        account="shop",
        provider="alipay",
        provider_trade_no=f"t-{n}",
        amount_minor=100 + n,
        currency="CNY",
        paid_at="2026-11-26T10:00:01+08:00",
        notify_id=f"n-{n}",
    )


def records_for(count: int) -> list[Record]:
    out: list[Record] = []
    for n in range(count):
        out.append(Record(ORDERS_TOPIC, expected(n).to_bytes(), f"orders/0/{n}"))
        out.append(Record(ORDER_PAID_TOPIC, paid(n).to_bytes(), f"order-paid/0/{n}"))
    return out


def counts(engine: Engine) -> tuple[int, int, int]:
    with engine.connect() as conn:
        paid_rows = conn.scalar(
            select(func.count()).select_from(orders).where(orders.c.status == "paid")
        )
        events = conn.scalar(select(func.count()).select_from(order_events))
        odd = conn.scalar(select(func.count()).select_from(anomalies))
    return paid_rows or 0, events or 0, odd or 0


def check_redelivery_in_any_order_gives_one_row_per_event(engine: Engine) -> None:
    batch = records_for(20)
    replay = batch * 3
    random.Random(7).shuffle(replay)
    for start in range(0, len(replay), 17):
        with engine.begin() as conn:
            write_batch(conn, replay[start : start + 17])
    assert counts(engine) == (20, 20, 0)
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                orders.c.out_trade_no, orders.c.amount_minor, orders.c.status, orders.c.created_at
            )
        ).all()
    assert all(r.status == "paid" for r in rows) and len(rows) == 20


def check_paid_never_moves_back_to_created(engine: Engine) -> None:
    with engine.begin() as conn:
        write_batch(conn, [Record(ORDER_PAID_TOPIC, paid(1).to_bytes(), "p/0/1")])
        write_batch(conn, [Record(ORDERS_TOPIC, expected(1).to_bytes(), "o/0/1")])
    with engine.connect() as conn:
        assert conn.scalar(select(orders.c.status).where(orders.c.out_trade_no == "o-1")) == "paid"


def check_undecodable_and_anomalies_are_kept_once(engine: Engine) -> None:
    anomaly = Anomaly("a-1", "o-1", "amount_mismatch", "paid 1, expected 101", "shop")
    batch = [
        Record(ANOMALIES_TOPIC, anomaly.to_bytes(), "payment-anomalies/0/1"),
        Record(ORDER_PAID_TOPIC, b"{not json", "order-paid/3/99"),
    ]
    for _ in range(2):
        with engine.begin() as conn:
            result = write_batch(conn, batch)
        assert (result.anomalies, result.undecodable) == (1, 1)
    with engine.connect() as conn:
        reasons = sorted(conn.scalars(select(anomalies.c.reason)).all())
        sources = sorted(conn.scalars(select(anomalies.c.source)).all())
    assert reasons == ["amount_mismatch", "undecodable"]
    assert "order-paid/3/99" in sources
