"""Writer scenarios run on SQLite (unit) and on a real PostgreSQL (integration)."""

from __future__ import annotations

import dataclasses
import json
import random
from collections import Counter

from sqlalchemy import Engine, delete, func, select, text

from sinks.rows import anomalies, notifications, order_events, orders, refunds
from sinks.writer import Record, write_batch, write_records
from stream.records import (
    ANOMALIES_TOPIC,
    DECISIONS_TOPIC,
    ORDER_CLOSED_TOPIC,
    ORDER_PAID_TOPIC,
    ORDER_REFUNDED_TOPIC,
    ORDERS_TOPIC,
    Anomaly,
    ExpectedOrder,
    NotificationDecision,
    OrderClosed,
    OrderPaid,
    OrderRefunded,
    event_id,
)

Snapshot = dict[str, list[tuple[object, ...]]]


def keyed(topic: str, value: bytes, source: str = "") -> Record:
    """A record keyed as the stream keys it: by the value's ``out_trade_no`` (none: no key)."""
    try:
        number = json.loads(value).get("out_trade_no")
    except ValueError:
        number = None
    return Record(topic, value, source, number.encode() if isinstance(number, str) else None)


def expected(n: int) -> ExpectedOrder:
    return ExpectedOrder(f"o-{n}", "shop", 100 + n, "CNY", "2026-11-26T10:00:00+08:00")


def paid(n: int, version: int = 1) -> OrderPaid:
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
        status="paid",
        version=version,
    )


def records_for(count: int) -> list[Record]:
    out: list[Record] = []
    for n in range(count):
        out.append(keyed(ORDERS_TOPIC, expected(n).to_bytes(), f"orders/0/{n}"))
        out.append(keyed(ORDER_PAID_TOPIC, paid(n).to_bytes(), f"order-paid/0/{n}"))
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
        write_batch(conn, [keyed(ORDER_PAID_TOPIC, paid(1).to_bytes(), "p/0/1")])
        write_batch(conn, [keyed(ORDERS_TOPIC, expected(1).to_bytes(), "o/0/1")])
    with engine.connect() as conn:
        assert conn.scalar(select(orders.c.status).where(orders.c.out_trade_no == "o-1")) == "paid"


def check_undecodable_and_anomalies_are_kept_once(engine: Engine) -> None:
    anomaly = Anomaly("a-1", "o-1", "amount_mismatch", "paid 1, expected 101", "shop")
    batch = [
        keyed(ANOMALIES_TOPIC, anomaly.to_bytes(), "payment-anomalies/0/1"),
        keyed(ORDER_PAID_TOPIC, b"{not json", "order-paid/3/99"),
    ]
    for new in (1, 0):
        with engine.begin() as conn:
            result = write_batch(conn, batch)
        assert (result.anomalies, result.undecodable_record) == (new, 1)
        assert result.reasons == Counter({"amount_mismatch": new})  # a redelivery: none
    with engine.connect() as conn:
        reasons = sorted(conn.scalars(select(anomalies.c.reason)).all())
        sources = sorted(conn.scalars(select(anomalies.c.source)).all())
    assert reasons == ["amount_mismatch", "undecodable_record"]
    assert "order-paid/3/99" in sources


def refunded(n: int, refund_id: str, amount: int, total: int, version: int) -> OrderRefunded:
    """A refund as the stream emits it: the status follows from the total against 100 + n."""
    return OrderRefunded(
        event_id=event_id("shop", f"o-{n}", f"refund:{refund_id}"),
        out_trade_no=f"o-{n}",
        account="shop",
        provider="alipay",
        provider_trade_no=f"t-{n}",
        refund_id=refund_id,
        amount_minor=amount,
        refunded_total_minor=total,
        currency="CNY",
        refunded_at="2026-11-26T11:00:00+08:00",
        notify_id=f"n-{n}-{refund_id}",
        status="refunded" if total >= 100 + n else "partially_refunded",
        version=version,
    )


def closed(n: int, version: int = 1) -> OrderClosed:
    return OrderClosed(
        event_id=event_id("shop", f"o-{n}", "closed"),
        out_trade_no=f"o-{n}",
        account="shop",
        provider="alipay",
        provider_trade_no=f"t-{n}",
        closed_at="2026-11-26T12:00:00+08:00",
        notify_id=f"n-{n}-close",
        status="closed",
        version=version,
    )


def history() -> list[Record]:
    """A consistent history as the stream emits it: every kind of fact, one record each.

    o-0..o-3 paid; o-1 partly refunded twice; o-2 refunded in full in two refunds; o-3 refunded
    in full at once; o-4 and o-5 closed unpaid; o-6 created only; o-7 closed unpaid, then paid
    (money taken wins: the stream makes it ``paid``, version 2).
    """
    facts: list[tuple[str, bytes]] = [(ORDERS_TOPIC, expected(n).to_bytes()) for n in range(8)]
    facts += [(ORDER_PAID_TOPIC, paid(n).to_bytes()) for n in (0, 1, 2, 3)]
    facts += [
        (ORDER_REFUNDED_TOPIC, refunded(1, "r1", 10, 10, 2).to_bytes()),
        (ORDER_REFUNDED_TOPIC, refunded(1, "r2", 20, 30, 3).to_bytes()),
        (ORDER_REFUNDED_TOPIC, refunded(2, "r1", 2, 2, 2).to_bytes()),
        (ORDER_REFUNDED_TOPIC, refunded(2, "r2", 100, 102, 3).to_bytes()),
        (ORDER_REFUNDED_TOPIC, refunded(3, "r1", 103, 103, 2).to_bytes()),
    ]
    facts += [(ORDER_CLOSED_TOPIC, closed(n).to_bytes()) for n in (4, 5, 7)]
    facts.append((ORDER_PAID_TOPIC, paid(7, version=2).to_bytes()))
    anomaly = Anomaly("a-9", "o-9", "amount_mismatch", "paid 1, expected 109", "shop")
    facts.append((ANOMALIES_TOPIC, anomaly.to_bytes()))
    return [keyed(t, v, f"{t}/0/{i}") for i, (t, v) in enumerate(facts)]


EXPECTED_STATUSES = {
    "o-0": ("paid", 0),
    "o-1": ("partially_refunded", 30),
    "o-2": ("refunded", 102),
    "o-3": ("refunded", 103),
    "o-4": ("closed", 0),
    "o-5": ("closed", 0),
    "o-6": ("created", 0),
    "o-7": ("paid", 0),
}


def snapshot(engine: Engine) -> Snapshot:
    """Everything the sink wrote, without write timestamps and record positions."""
    skip = {"updated_at", "recorded_at", "source", "detail"}
    out: Snapshot = {}
    with engine.connect() as conn:
        for table in (orders, order_events, refunds, anomalies):
            columns = [c for c in table.c if c.name not in skip]
            rows = conn.execute(select(*columns).order_by(*table.primary_key.columns)).all()
            out[table.name] = [tuple(r) for r in rows]
    return out


def clear(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in (orders, order_events, refunds, anomalies):
            conn.execute(delete(table))


def write_in_batches(engine: Engine, records: list[Record], sizes: list[int]) -> None:
    start, turn = 0, 0
    while start < len(records):
        size = sizes[turn % len(sizes)] if sizes else len(records)
        with engine.begin() as conn:
            write_batch(conn, records[start : start + size])
        start, turn = start + size, turn + 1


def check_history_in_order_gives_expected_rows(engine: Engine) -> Snapshot:
    write_in_batches(engine, history(), [])
    with engine.connect() as conn:
        rows = conn.execute(select(orders.c.out_trade_no, orders.c.status, orders.c.refunded_minor))
        got = {r.out_trade_no: (r.status, r.refunded_minor) for r in rows}
        states = set(conn.scalars(select(refunds.c.state)))
        reasons = sorted(conn.scalars(select(anomalies.c.reason)))
    assert got == EXPECTED_STATUSES
    assert states == {"applied"}
    assert reasons == ["amount_mismatch"]
    return snapshot(engine)


def check_any_order_and_copies_give_same_rows(
    engine: Engine, want: Snapshot, order: list[int], sizes: list[int]
) -> None:
    """Write the history permuted by ``order`` (indexes, repeats allowed), batches of ``sizes``."""
    base = history()
    replay = [base[i % len(base)] for i in order] + base
    clear(engine)
    write_in_batches(engine, replay, sizes)
    assert snapshot(engine) == want


def shuffled(seed: int) -> tuple[list[int], list[int]]:
    rng = random.Random(seed)
    n = len(history())
    order = [rng.randrange(n) for _ in range(n)] + list(range(n))
    rng.shuffle(order)
    return order, [rng.randint(1, 7) for _ in range(5)]


def check_lower_version_never_moves_status_back(engine: Engine) -> None:
    """Events read in the reverse of the stream's order, one batch each, the expected order
    last: the row ends with the highest version's status and the largest refunded total."""
    records = [
        keyed(ORDER_REFUNDED_TOPIC, refunded(1, "r2", 20, 30, 3).to_bytes(), "r/0/2"),
        keyed(ORDER_REFUNDED_TOPIC, refunded(1, "r1", 10, 10, 2).to_bytes(), "r/0/1"),
        keyed(ORDER_PAID_TOPIC, paid(1).to_bytes(), "p/0/1"),
        keyed(ORDERS_TOPIC, expected(1).to_bytes(), "o/0/1"),
    ]
    for record in records:
        with engine.begin() as conn:
            write_batch(conn, [record])
    with engine.connect() as conn:
        row = conn.execute(select(orders).where(orders.c.out_trade_no == "o-1")).one()
        reasons = list(conn.scalars(select(anomalies.c.reason)))
    assert (row.status, row.version, row.refunded_minor) == ("partially_refunded", 3, 30)
    assert (row.paid_event_id, row.created_at) == (paid(1).event_id, expected(1).created_at)
    assert reasons == []


def check_payment_after_unpaid_close_leaves_order_paid(engine: Engine) -> None:
    """The stream's ``order.paid`` (version 2) after its ``order.closed`` (version 1): the
    order is ``paid`` and keeps its close, whichever event the sink reads first."""
    for first, second in ((closed(7), paid(7, 2)), (paid(7, 2), closed(7))):
        clear(engine)
        for event, topic in ((first, _topic(first)), (second, _topic(second))):
            with engine.begin() as conn:
                write_batch(conn, [keyed(topic, event.to_bytes(), "x/0/1")])
        with engine.connect() as conn:
            row = conn.execute(select(orders).where(orders.c.out_trade_no == "o-7")).one()
        assert (row.status, row.version) == ("paid", 2)
        assert row.closed_event_id == closed(7).event_id
        assert row.closed_at == closed(7).closed_at


def _topic(event: OrderPaid | OrderClosed) -> str:
    return ORDER_PAID_TOPIC if isinstance(event, OrderPaid) else ORDER_CLOSED_TOPIC


def check_late_cumulative_total_adds_nothing_and_is_no_anomaly(engine: Engine) -> None:
    """An older cumulative refunded total handled after a newer one reaches the sink as an
    ``order.refunded`` of 0: its event is kept, and it changes nothing."""
    records = [
        keyed(ORDER_PAID_TOPIC, paid(1).to_bytes(), "p/0/1"),
        keyed(ORDER_REFUNDED_TOPIC, refunded(1, "r2", 60, 60, 2).to_bytes(), "r/0/1"),
        keyed(ORDER_REFUNDED_TOPIC, refunded(1, "r1", 0, 60, 3).to_bytes(), "r/0/2"),
    ]
    write_records(engine, records)
    with engine.connect() as conn:
        row = conn.execute(select(orders).where(orders.c.out_trade_no == "o-1")).one()
        states = dict(conn.execute(select(refunds.c.refund_id, refunds.c.state)).all())
        reasons = list(conn.scalars(select(anomalies.c.reason)))
        events = conn.scalar(select(func.count()).select_from(order_events))
    assert (row.status, row.refunded_minor) == ("partially_refunded", 60)
    assert states == {"r2": "applied"} and reasons == [] and events == 3


def _refuse_order(engine: Engine, out_trade_no: str) -> None:
    """Make the database refuse any write of one order (a trigger), as a stand-in for whatever a
    database may refuse in a record that passed every check of its contract."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(
                text(
                    "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
                    "RAISE EXCEPTION 'refused'; END $$ LANGUAGE plpgsql"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON orders FOR EACH ROW "
                    f"WHEN (NEW.out_trade_no = '{out_trade_no}') EXECUTE FUNCTION refuse()"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE TRIGGER refuse BEFORE INSERT ON orders "
                    f"WHEN NEW.out_trade_no = '{out_trade_no}' "
                    "BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )


def check_record_the_database_refuses_becomes_anomaly(engine: Engine) -> None:
    """A record the database refuses (here a trigger) is kept as an ``unapplicable`` anomaly
    with its source, and the rest of the batch is written; a value outside its contract (a
    negative amount, a currency longer than its column) is an ``undecodable_record`` before the
    database sees it, on SQLite as on PostgreSQL."""
    _refuse_order(engine, "o-52")
    negative = dataclasses.replace(paid(50), amount_minor=-5)
    too_long = dataclasses.replace(expected(51), currency="CNYCNY")
    batch = [
        *records_for(3),
        keyed(ORDER_PAID_TOPIC, negative.to_bytes(), "order-paid/2/5"),
        keyed(ORDERS_TOPIC, too_long.to_bytes(), "orders/3/3"),
        keyed(ORDERS_TOPIC, expected(52).to_bytes(), "orders/4/4"),
    ]
    result = write_records(engine, batch)
    assert result.records == len(batch)
    assert (result.undecodable_record, result.unapplicable) == (2, 1)
    with engine.connect() as conn:
        failed = conn.execute(select(anomalies.c.reason, anomalies.c.source)).all()
        created = conn.scalar(select(func.count()).select_from(orders))
    assert counts(engine)[:2] == (3, 3)
    assert sorted(tuple(r) for r in failed) == [
        ("unapplicable", "orders/4/4"),
        ("undecodable_record", "order-paid/2/5"),
        ("undecodable_record", "orders/3/3"),
    ]
    assert created == 3


def decided(n: int, notify_id: str, decision: str, version: int) -> NotificationDecision:
    return NotificationDecision(
        notify_id=notify_id,
        out_trade_no=f"o-{n}",
        account="shop",
        provider="alipay",
        kind="payment",
        status="TRADE_SUCCESS",
        amount_minor=100 + n,
        currency="CNY",
        provider_trade_no=f"t-{n}",
        received_at="2026-11-26T02:00:02+00:00",
        occurred_at="2026-11-26T10:00:01+08:00",
        source="webhook",
        decision=decision,
        version=version,
    )


def check_notification_keeps_the_stream_s_latest_decision(engine: Engine) -> None:
    def write(*items: NotificationDecision) -> None:
        with engine.begin() as conn:
            write_batch(conn, [keyed(DECISIONS_TOPIC, d.to_bytes()) for d in items])

    def rows() -> list[tuple[object, ...]]:
        with engine.connect() as conn:
            query = select(notifications.c.notify_id, notifications.c.decision)
            return [tuple(r) for r in conn.execute(query.order_by(notifications.c.notify_id))]

    waiting, applied = decided(1, "n-1", "awaiting_order", 0), decided(1, "n-1", "paid", 1)
    write(waiting)
    assert rows() == [("n-1", "awaiting_order")]
    write(applied)
    write(waiting)  # a redelivered older decision: the row keeps the later one
    write(applied, waiting)
    write(decided(1, "n-2", "already_paid", 1))
    assert rows() == [("n-1", "paid"), ("n-2", "already_paid")]
