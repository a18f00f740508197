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

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    case,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from sinks.batch import SINK_TOPICS, Batch, BatchResult, Event, Record, decode_into
from sinks.errors import DatabaseUnavailableError
from sinks.failures import record_anomalies, record_unapplicable, record_undecodable
from sinks.notifications import record_decisions
from sinks.rows import order_events, orders, refunds
from sinks.sql import among, chunks, insert, insert_many
from stream.records import (
    ExpectedOrder,
    OrderClosed,
    OrderPaid,
    OrderRefunded,
    RecordError,
)

__all__ = ["SINK_TOPICS", "BatchResult", "Record", "is_transient", "write_batch", "write_records"]

log = logging.getLogger("paynotify.sink")


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
    batch = Batch()
    for record in records:
        result.records += 1
        try:
            decode_into(batch, record, result)
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
    refunded = {e.out_trade_no for e, _ in fresh if isinstance(e, OrderRefunded)}
    settle_orders(conn, {e.out_trade_no for e, _ in fresh} | set(batch.orders), refunded)
    result.reasons = record_anomalies(conn, batch.anomalies)
    result.anomalies += result.reasons.total()
    result.decisions = record_decisions(conn, batch.decisions)
    return result


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
    stmt, params = insert_many(conn, orders, rows)
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
    stmt, params = insert_many(conn, order_events, rows)
    stmt = stmt.on_conflict_do_nothing(index_elements=["event_id"]).returning(
        order_events.c.event_id
    )
    return set(conn.execute(stmt, params).scalars())


def record_payments(conn: Connection, new: Sequence[tuple[Event, str]], batch: Batch) -> None:
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
    stmt, params = insert_many(conn, orders, rows)
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


def _paid_conflict(batch: Batch, event: OrderPaid, source: str) -> None:
    detail = f"order already paid by another event; {event.event_id} not applied"
    _not_applied(batch, "paid_conflict", event, source, detail)


def _not_applied(batch: Batch, reason: str, event: Event, source: str, detail: str) -> None:
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


def record_refunds(conn: Connection, new: Sequence[tuple[Event, str]], batch: Batch) -> None:
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
    stmt = insert(conn, refunds).on_conflict_do_nothing().returning(refunds.c.event_id)
    inserted = set(conn.execute(stmt, rows).scalars())
    for eid, (event, source) in sources.items():
        if eid not in inserted:
            _refund_anomaly(batch, "refund_conflict", event, source)


def _refund_anomaly(batch: Batch, reason: str, event: OrderRefunded, source: str) -> None:
    detail = f"refund {event.refund_id} of {event.amount_minor} not applied"
    _not_applied(batch, reason, event, source, detail)


def settle_orders(conn: Connection, touched: set[str], refunded: set[str]) -> None:
    """Bring the touched orders' rows to what their recorded events say.

    Status and version come from the highest-version event, only when it is higher than the
    row's; ``refunded_minor`` is the largest refunded total of the order's refunds (never lower
    than it was; ``refunded``: the orders with new refunds); a close fills in
    ``closed_event_id`` and ``closed_at`` once. One grouped query finds the rows that are
    behind: usually none, as a payment's upsert already applied its own version.
    """
    for chunk in chunks(sorted(touched)):
        state = (
            select(
                orders.c.out_trade_no,
                orders.c.version,
                orders.c.closed_event_id,
                func.max(order_events.c.version),
                func.min(case((order_events.c.type == "order.closed", order_events.c.event_id))),
            )
            .join(order_events, order_events.c.out_trade_no == orders.c.out_trade_no)
            .where(among(conn, orders.c.out_trade_no, chunk))
            .group_by(orders.c.out_trade_no, orders.c.version, orders.c.closed_event_id)
        )
        behind = set(refunded.intersection(chunk))
        for out_trade_no, version, closed_id, latest, close_id in conn.execute(state).all():
            if latest is not None and latest > version:
                behind.add(out_trade_no)
            if closed_id is None and close_id is not None:
                conn.execute(
                    update(orders)
                    .where(orders.c.out_trade_no == out_trade_no)
                    .values(closed_event_id=close_id, closed_at=_closed_at(conn, close_id))
                )
        if behind:
            _catch_up(conn, sorted(behind))


def _catch_up(conn: Connection, numbers: Sequence[str]) -> None:
    """Set status, version and refunded total of these orders from their recorded events."""
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
    conn.execute(
        update(orders)
        .where(among(conn, orders.c.out_trade_no, numbers), or_(newer, more))
        .values(
            status=case((newer, status), else_=orders.c.status),
            version=case((newer, latest), else_=orders.c.version),
            refunded_minor=case((more, total), else_=orders.c.refunded_minor),
            updated_at=func.now(),
        )
    )


def _closed_at(conn: Connection, close_id: str) -> str | None:
    payload = conn.scalar(select(order_events.c.payload).where(order_events.c.event_id == close_id))
    try:
        return OrderClosed.from_bytes((payload or "").encode()).closed_at
    except RecordError:  # stored before the contract was checked this strictly: no time known
        return None
