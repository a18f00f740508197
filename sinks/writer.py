"""Idempotent writes: any number of redeliveries, in any order across topics, give one database.

The stream decides every order's status; the sink records what it decided. A batch is written
with a few multi-row statements, in the caller's transaction:

1. every event (paid, refunded, closed) goes into ``order_events`` once (``ON CONFLICT DO
   NOTHING ... RETURNING``), with the ``status`` and ``version`` it carries; only the events that
   were new there are applied, so an effect is applied once even when the event comes back;
2. expected orders insert ``created`` rows (version 0; of a known order only ``created_at`` is
   filled in);
3. a payment fills in its order's payment fields once (``paid_event_id``), creating the row
   from the event when the expected order has not been read yet; refunds go into ``refunds``
   once per (order, refund id), and a close fills in ``closed_event_id`` and ``closed_at``;
4. every touched order then takes the status of its highest-version event, only from a higher
   version than its own, and the largest refunded total of its refunds: the topics may deliver
   the events in any order and the row still ends where the stream's state did.

A record that cannot be decoded (not JSON of its topic, a field of the wrong type, an amount
outside 0..2^63-1, a time that is not an ISO-8601 string, a key other than its ``out_trade_no``,
an event without its status and version) becomes an ``undecodable_record`` row, and one whose
facts contradict the database (a second payment event, a second event for one refund id) an
anomaly of its own reason, each with its ``topic/partition/offset`` in ``source``.

Poison is permanent, an outage is transient. :func:`write_records` raises only when the database
cannot be written at all (:func:`is_transient`, or it refuses even the anomaly row): the consumer
then waits and retries. Any other failure of a batch is a record's fault: the batch is rewritten
one record per savepoint and a record that still fails becomes an ``unapplicable`` row, so that no
record is retried forever.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    Table,
    Text,
    any_,
    bindparam,
    case,
    cast,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from sinks.errors import DatabaseUnavailableError
from sinks.rows import anomalies, order_events, orders, refunds
from stream.records import (
    ANOMALIES_TOPIC,
    ORDER_CLOSED_TOPIC,
    ORDER_PAID_TOPIC,
    ORDER_REFUNDED_TOPIC,
    ORDERS_TOPIC,
    UNDECODABLE,
    Anomaly,
    ExpectedOrder,
    JsonRecord,
    OrderClosed,
    OrderPaid,
    OrderRefunded,
    RecordError,
    event_id,
    undecodable_id,
)

log = logging.getLogger("paynotify.sink")

DECODERS: dict[str, type[JsonRecord]] = {
    ORDERS_TOPIC: ExpectedOrder,
    ORDER_PAID_TOPIC: OrderPaid,
    ORDER_REFUNDED_TOPIC: OrderRefunded,
    ORDER_CLOSED_TOPIC: OrderClosed,
    ANOMALIES_TOPIC: Anomaly,
}
SINK_TOPICS = tuple(DECODERS)
CHUNK = 5000

Event = OrderPaid | OrderRefunded | OrderClosed


@dataclass(frozen=True, slots=True)
class Record:
    """One Kafka record as the sink sees it: its topic without prefix, value, where it was
    (``topic/partition/offset``, the topic as consumed) and its key."""

    topic: str
    value: bytes | None
    source: str
    key: bytes | None


@dataclass(slots=True)
class BatchResult:
    """What one batch did; ``add`` sums them up."""

    records: int = 0
    events_new: int = 0
    events_seen: int = 0
    orders: int = 0
    anomalies: int = 0
    undecodable_record: int = 0
    unapplicable: int = 0

    def add(self, other: BatchResult) -> None:
        """Add another batch's counts to these."""
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class _Batch:
    """A decoded batch: one entry per order and per event id, anomaly rows by id."""

    orders: dict[str, ExpectedOrder] = field(default_factory=dict)
    events: dict[str, tuple[Event, str]] = field(default_factory=dict)
    raw: dict[str, bytes] = field(default_factory=dict)
    anomalies: dict[str, dict[str, Any]] = field(default_factory=dict)
    event_records: int = 0

    def anomaly(
        self,
        reason: str,
        out_trade_no: str,
        detail: str,
        source: str,
        *,
        account: str,
        key: str | None = None,
        payload: str = "",
    ) -> None:
        """Keep a detected anomaly; its id is derived from the reason and the fact (or order)."""
        self.anomalies.setdefault(
            event_id(account, key or out_trade_no, f"anomaly:{reason}"),
            _anomaly_row(reason, out_trade_no, detail, source, payload),
        )


def _anomaly_row(
    reason: str, out_trade_no: str, detail: str, source: str, payload: str
) -> dict[str, Any]:
    return {
        "out_trade_no": _text(out_trade_no, 128),
        "reason": reason,
        "detail": _text(detail, 500),
        "source": _text(source, 256),
        "payload": _text(payload, 4000),
    }


def _text(value: str, limit: int) -> str:
    """Cut a value to its column; PostgreSQL text cannot hold NUL characters."""
    return value.replace("\x00", "\ufffd")[:limit]


def is_transient(exc: BaseException) -> bool:
    """Return whether a failure is the database's (down, restarting, busy), not a record's."""
    if not isinstance(exc, DBAPIError):
        return False
    return exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)


def write_records(engine: Engine, records: Sequence[Record]) -> BatchResult:
    """Write a batch in one transaction; isolate the records that make it fail.

    Raises:
        DatabaseUnavailableError: the database is unreachable or refuses every write.
    """
    try:
        return _write_records(engine, records)
    except DBAPIError as exc:
        raise DatabaseUnavailableError(type(exc.orig or exc).__name__) from exc


def _write_records(engine: Engine, records: Sequence[Record]) -> BatchResult:
    try:
        with engine.begin() as conn:
            return write_batch(conn, records)
    except Exception as exc:  # a record's fault unless is_transient: see the module docstring
        if is_transient(exc):
            raise
        log.warning(
            "the database refused a batch; writing it record by record",
            extra={"error": exc.__class__.__name__},
        )
    with engine.begin() as conn:
        return _write_isolated(conn, records)


def _write_isolated(conn: Connection, records: Sequence[Record]) -> BatchResult:
    result = BatchResult()
    for record in records:
        savepoint = conn.begin_nested()
        try:
            result.add(write_batch(conn, [record]))
            savepoint.commit()
        except Exception as exc:
            if is_transient(exc):
                raise
            savepoint.rollback()
            record_unapplicable(conn, record, exc)  # raises if the database refuses this too
            result.records += 1
            result.unapplicable += 1
    return result


def write_batch(conn: Connection, records: Iterable[Record]) -> BatchResult:
    """Write a batch of records in the caller's transaction."""
    result = BatchResult()
    batch = _Batch()
    for record in records:
        result.records += 1
        try:
            _decode_into(batch, record, result)
        except RecordError as exc:
            result.undecodable_record += 1
            record_undecodable(conn, record, str(exc))
    result.orders = upsert_orders(conn, list(batch.orders.values()))
    new = record_events(conn, batch.events, batch.raw)
    result.events_new = len(new)
    result.events_seen = batch.event_records - len(new)
    fresh = [batch.events[i] for i in sorted(new)]
    record_payments(conn, fresh, batch)
    record_refunds(conn, fresh, batch)
    settle_orders(conn, {e.out_trade_no for e, _ in fresh} | set(batch.orders))
    result.anomalies += record_anomalies(conn, batch.anomalies)
    return result


def _decode_into(batch: _Batch, record: Record, result: BatchResult) -> None:
    decoder = DECODERS.get(record.topic)
    if decoder is None:
        raise RecordError(f"the sink does not read topic {record.topic}")
    if record.value is None:
        raise RecordError("the record has no value")
    value = decoder.from_bytes(record.value)
    assert isinstance(value, ExpectedOrder | Anomaly | OrderPaid | OrderRefunded | OrderClosed)
    _check_key(record.key, value.out_trade_no)
    if isinstance(value, ExpectedOrder):
        batch.orders.setdefault(value.out_trade_no, value)
    elif isinstance(value, Anomaly):
        batch.anomalies.setdefault(value.anomaly_id, _from_topic(value, record.source))
    else:
        assert isinstance(value, OrderPaid | OrderRefunded | OrderClosed)
        batch.event_records += 1
        batch.events.setdefault(value.event_id, (value, record.source))
        batch.raw.setdefault(value.event_id, record.value)


def _check_key(key: bytes | None, out_trade_no: str) -> None:
    """Raise RecordError unless the record is keyed by its order (an anomaly about none: no key)."""
    if key == out_trade_no.encode() or not (key or out_trade_no):
        return
    raise RecordError("the record's key is not its out_trade_no")


def _from_topic(anomaly: Anomaly, source: str) -> dict[str, Any]:
    """An anomaly from the topic; one about an undecodable record keeps that record's place."""
    payload = json.dumps(asdict(anomaly), ensure_ascii=False)
    where = anomaly.source or source
    return _anomaly_row(anomaly.reason, anomaly.out_trade_no, anomaly.detail, where, payload)


def _insert(conn: Connection, table: Any) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def _insert_many(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> tuple[Any, Any]:
    """Return a multi-row INSERT and its parameters.

    On PostgreSQL it is ``INSERT ... SELECT * FROM unnest(array, ...)``: one array parameter per
    column, so every batch sends the same short statement (no per-row placeholders to build and
    parse). The arrays are text/bigint, so a value too long for its column is still refused.
    Elsewhere it is an ``executemany``.
    """
    if conn.dialect.name != "postgresql":
        return sqlite.insert(table), rows
    names = list(rows[0])
    arrays = [
        cast(bindparam(name), ARRAY(BigInteger if _is_int(table, name) else Text)) for name in names
    ]
    source = func.unnest(*arrays).table_valued(*names).render_derived(name="batch")
    stmt = postgresql.insert(table).from_select(names, select(*(source.c[n] for n in names)))
    return stmt, {name: [row[name] for row in rows] for name in names}


def _is_int(table: Table, name: str) -> bool:
    return isinstance(table.c[name].type, BigInteger)


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def upsert_orders(conn: Connection, expected: Sequence[ExpectedOrder]) -> int:
    """Record expected orders as ``created``; of a known order only fill in ``created_at``."""
    if not expected:
        return 0
    rows = [
        {
            "out_trade_no": o.out_trade_no,
            "account": o.account,
            "amount_minor": o.amount_minor,
            "currency": o.currency,
            "status": "created",
            "created_at": o.created_at,
        }
        for o in sorted(expected, key=lambda o: o.out_trade_no)
    ]
    stmt, params = _insert_many(conn, orders, rows)
    stmt = stmt.on_conflict_do_update(
        index_elements=["out_trade_no"],
        set_={"created_at": stmt.excluded.created_at},
        where=orders.c.created_at.is_(None),
    )
    conn.execute(stmt, params)
    return len(rows)


def record_events(
    conn: Connection, events: dict[str, tuple[Event, str]], raw: dict[str, bytes]
) -> set[str]:
    """Insert events (their JSON as received) into ``order_events`` once; return the new ids."""
    rows = [
        {
            "event_id": eid,
            "out_trade_no": event.out_trade_no,
            "type": event.type,
            "payload": raw[eid].decode(),
            "status": event.status,
            "version": event.version,
        }
        for eid, (event, _source) in sorted(events.items())
    ]
    if not rows:
        return set()
    stmt, params = _insert_many(conn, order_events, rows)
    stmt = stmt.on_conflict_do_nothing(index_elements=["event_id"]).returning(
        order_events.c.event_id
    )
    return set(conn.execute(stmt, params).scalars())


def record_payments(conn: Connection, new: Sequence[tuple[Event, str]], batch: _Batch) -> None:
    """Fill in the payment of orders paid by their new ``order.paid`` events, once per order.

    The row is created from the event when the expected order has not been read yet; its status
    changes only if the event's version is higher than the row's.
    """
    chosen: dict[str, tuple[OrderPaid, str]] = {}
    for event, source in new:
        if not isinstance(event, OrderPaid):
            continue
        if event.out_trade_no in chosen:
            _paid_conflict(batch, event, source)
        else:
            chosen[event.out_trade_no] = (event, source)
    if not chosen:
        return
    rows = [_paid_row(event) for out_trade_no, (event, _) in sorted(chosen.items())]
    stmt, params = _insert_many(conn, orders, rows)
    paid = ("amount_minor", "currency", "paid_at", "provider", "provider_trade_no", "paid_event_id")
    newer = orders.c.version < stmt.excluded.version
    stmt = stmt.on_conflict_do_update(
        index_elements=["out_trade_no"],
        set_={
            **{name: stmt.excluded[name] for name in paid},
            "status": case((newer, stmt.excluded.status), else_=orders.c.status),
            "version": case((newer, stmt.excluded.version), else_=orders.c.version),
            "updated_at": func.now(),
        },
        where=orders.c.paid_event_id.is_(None),
    ).returning(orders.c.out_trade_no)
    done = set(conn.scalars(stmt, params))
    for out_trade_no, (event, source) in chosen.items():
        if out_trade_no not in done:
            _paid_conflict(batch, event, source)


def _paid_row(event: OrderPaid) -> dict[str, Any]:
    return {
        "out_trade_no": event.out_trade_no,
        "account": event.account,
        "amount_minor": event.amount_minor,
        "currency": event.currency,
        "status": event.status,
        "version": event.version,
        "paid_at": event.paid_at,
        "provider": event.provider,
        "provider_trade_no": event.provider_trade_no,
        "paid_event_id": event.event_id,
    }


def _paid_conflict(batch: _Batch, event: OrderPaid, source: str) -> None:
    detail = f"order already paid by another event; {event.event_id} not applied"
    _not_applied(batch, "paid_conflict", event, source, detail)


def _not_applied(batch: _Batch, reason: str, event: Event, source: str, detail: str) -> None:
    """Report an event that was recorded in ``order_events`` but cannot change its order."""
    batch.anomaly(
        reason,
        event.out_trade_no,
        detail,
        source,
        account=event.account,
        key=event.event_id,
        payload=event.to_bytes().decode(),
    )


def record_refunds(conn: Connection, new: Sequence[tuple[Event, str]], batch: _Batch) -> None:
    """Insert new refunds, one per (order, refund id), as the stream applied them."""
    rows: list[dict[str, Any]] = []
    sources: dict[str, tuple[OrderRefunded, str]] = {}
    for event, source in new:
        if not isinstance(event, OrderRefunded):
            continue
        if event.amount_minor == 0 and event.refund_id:
            # a cumulative refunded total (the notification's refund_total_minor) that came
            # after a larger one: the stream emits it as 0, as nothing is left for it to add
            continue
        if event.amount_minor < 0 or not event.refund_id:
            _refund_anomaly(batch, "refund_invalid", event, source)
            continue
        sources[event.event_id] = (event, source)
        rows.append(
            {
                "event_id": event.event_id,
                "out_trade_no": event.out_trade_no,
                "refund_id": event.refund_id,
                "account": event.account,
                "amount_minor": event.amount_minor,
                "currency": event.currency,
                "refunded_at": event.refunded_at,
                "refunded_total_minor": event.refunded_total_minor,
                "state": "applied",
            }
        )
    if not rows:
        return
    stmt = _insert(conn, refunds).on_conflict_do_nothing().returning(refunds.c.event_id)
    inserted = set(conn.execute(stmt, rows).scalars())
    for eid, (event, source) in sources.items():
        if eid not in inserted:
            _refund_anomaly(batch, "refund_conflict", event, source)


def _refund_anomaly(batch: _Batch, reason: str, event: OrderRefunded, source: str) -> None:
    detail = f"refund {event.refund_id} of {event.amount_minor} not applied"
    _not_applied(batch, reason, event, source, detail)


def settle_orders(conn: Connection, touched: set[str]) -> None:
    """Bring the touched orders' rows to what their recorded events say.

    Status and version come from the highest-version event, only when it is higher than the
    row's; ``refunded_minor`` is the largest refunded total of the order's refunds (never lower
    than it was); a close fills in ``closed_event_id`` and ``closed_at`` once.
    """
    event, refund = order_events.alias("e"), refunds.alias("r")
    own = event.c.out_trade_no == orders.c.out_trade_no
    latest = select(func.max(event.c.version)).where(own).scalar_subquery()
    status = (
        select(event.c.status)
        .where(own, event.c.version.is_not(None))
        .order_by(event.c.version.desc())
        .limit(1)
        .scalar_subquery()
    )
    total = (
        select(func.coalesce(func.max(refund.c.refunded_total_minor), 0))
        .where(refund.c.out_trade_no == orders.c.out_trade_no)
        .scalar_subquery()
    )
    newer = func.coalesce(latest, 0) > orders.c.version
    more = total > orders.c.refunded_minor
    for chunk in _chunks(sorted(touched)):
        conn.execute(
            update(orders)
            .where(_among(conn, orders.c.out_trade_no, chunk), or_(newer, more))
            .values(
                status=case((newer, status), else_=orders.c.status),
                version=case((newer, latest), else_=orders.c.version),
                refunded_minor=case((more, total), else_=orders.c.refunded_minor),
                updated_at=func.now(),
            )
        )
        closes = (
            select(orders.c.out_trade_no, func.min(order_events.c.event_id))
            .join(order_events, order_events.c.out_trade_no == orders.c.out_trade_no)
            .where(
                _among(conn, orders.c.out_trade_no, chunk),
                orders.c.closed_event_id.is_(None),
                order_events.c.type == "order.closed",
            )
            .group_by(orders.c.out_trade_no)
        )
        for out_trade_no, close_id in conn.execute(closes).all():
            conn.execute(
                update(orders)
                .where(orders.c.out_trade_no == out_trade_no)
                .values(closed_event_id=close_id, closed_at=_closed_at(conn, close_id))
            )


def _among(conn: Connection, column: Any, values: Sequence[str]) -> Any:
    """``column IN values``; on PostgreSQL ``= ANY(array)``, one parameter for the whole list."""
    if conn.dialect.name == "postgresql":
        return column == any_(cast(bindparam("among", list(values)), ARRAY(Text)))
    return column.in_(values)


def _closed_at(conn: Connection, close_id: str) -> str | None:
    payload = conn.scalar(select(order_events.c.payload).where(order_events.c.event_id == close_id))
    try:
        return OrderClosed.from_bytes((payload or "").encode()).closed_at
    except RecordError:  # stored before the contract was checked this strictly: no time known
        return None


def record_anomalies(conn: Connection, rows: dict[str, dict[str, Any]]) -> int:
    """Insert anomaly rows once each; return how many were new."""
    if not rows:
        return 0
    stmt = (
        _insert(conn, anomalies)
        .on_conflict_do_nothing(index_elements=["anomaly_id"])
        .returning(anomalies.c.anomaly_id)
    )
    params = [{"anomaly_id": aid[:64], **row} for aid, row in sorted(rows.items())]
    return len(conn.execute(stmt, params).all())


def record_undecodable(conn: Connection, record: Record, error: str) -> None:
    """Keep a record the sink cannot decode as an ``undecodable_record`` anomaly.

    Its id is the stream's for the same record (:func:`stream.records.undecodable_id`), so a
    poison record on ``orders``, which both read, is one row.
    """
    _record_failed(conn, record, UNDECODABLE, error, undecodable_id(record.source))


def record_unapplicable(conn: Connection, record: Record, exc: Exception) -> None:
    """Keep a record the database refused as an anomaly with its source and the error class."""
    error = getattr(exc, "orig", exc)
    aid = event_id("", record.source, "anomaly:unapplicable")
    _record_failed(conn, record, "unapplicable", f"{error.__class__.__name__}: {error}", aid)


def _record_failed(
    conn: Connection, record: Record, reason: str, error: str, anomaly_id: str
) -> None:
    number = (record.key or b"").decode("utf-8", "replace")
    payload = (record.value or b"").decode("utf-8", "replace")
    conn.execute(
        _insert(conn, anomalies)
        .values(
            anomaly_id=anomaly_id,
            **_anomaly_row(reason, number, error, record.source, payload),
        )
        .on_conflict_do_nothing(index_elements=["anomaly_id"])
    )
