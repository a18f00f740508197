"""A workload for the sink on the real broker, and what it must leave in the database."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from paynotify.broker import free_port
from paynotify.topics import ensure_topics
from sinks.rows import anomalies, order_events
from sinks.schema import create_db_engine, upgrade
from sinks.writer import Record
from stream.records import (
    ORDER_CLOSED_TOPIC,
    ORDER_PAID_TOPIC,
    ORDER_REFUNDED_TOPIC,
    ORDERS_TOPIC,
    OUTPUT_TOPICS,
)
from tests.support import writer_cases
from tests.support.stack import write_config

SINK_TOPICS = (ORDERS_TOPIC, *OUTPUT_TOPICS)
FAILED = ("undecodable_record", "unapplicable")


def workload(orders: int, seed: int, duplicates: float = 0.3) -> list[Record]:
    """A consistent history of ``orders`` orders (paid, refunded, closed, created only), with
    ``duplicates`` of it redelivered, shuffled across topics."""
    rng = random.Random(seed)
    facts: list[Record] = []
    for n in range(orders):
        facts.append(_record(ORDERS_TOPIC, writer_cases.expected(n).to_bytes()))
        kind = n % 10
        if kind < 7:
            facts.append(_record(ORDER_PAID_TOPIC, writer_cases.paid(n).to_bytes()))
        if kind in (1, 2):
            part = writer_cases.refunded(n, "r1", 40, 40, 2)
            facts.append(_record(ORDER_REFUNDED_TOPIC, part.to_bytes()))
        if kind == 2:
            rest = writer_cases.refunded(n, "r2", 60 + n, 100 + n, 3)
            facts.append(_record(ORDER_REFUNDED_TOPIC, rest.to_bytes()))
        if kind in (7, 8):
            facts.append(_record(ORDER_CLOSED_TOPIC, writer_cases.closed(n).to_bytes()))
    facts += [rng.choice(facts) for _ in range(int(len(facts) * duplicates))]
    rng.shuffle(facts)
    return facts


def _record(topic: str, value: bytes) -> Record:
    return writer_cases.keyed(topic, value)


def produce(bootstrap: str, prefix: str, records: Sequence[Record]) -> list[str]:
    """Produce records keyed by their order; return each record's ``topic/partition/offset``."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    where: dict[int, str] = {}
    for i, record in enumerate(records):
        key = record.key

        def done(err: object, msg: object, i: int = i) -> None:
            assert err is None, err
            where[i] = f"{msg.topic()}/{msg.partition()}/{msg.offset()}"  # type: ignore[attr-defined]

        producer.produce(prefix + record.topic, record.value, key=key, on_delivery=done)
        producer.poll(0)
    assert producer.flush(30) == 0
    return [where[i] for i in range(len(records))]


def reference(folder: Path, records: Sequence[Record]) -> writer_cases.Snapshot:
    """The rows an uninterrupted, in-order write of ``records`` gives (on SQLite)."""
    engine = create_db_engine(f"sqlite:///{folder / 'reference.db'}")
    upgrade(engine)
    writer_cases.write_in_batches(engine, list(records), [500])
    want = writer_cases.snapshot(engine)
    engine.dispose()
    return want


def sink_config(folder: Path, bootstrap: str, database: str, **sink: object) -> tuple[Path, str]:
    """Write a config for ``paynotify sink`` with extra ``[sink]`` settings; create the topics."""
    path, _port, prefix = write_config(folder, bootstrap, database)
    extra = "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in sink.items())
    kept = [
        line
        for line in path.read_text().splitlines(keepends=True)
        if line.split(" = ")[0] not in sink
    ]
    path.write_text("".join(kept).replace("[sink]\n", f"[sink]\n{extra}"))
    ensure_topics(bootstrap, [prefix + t for t in SINK_TOPICS], 8)
    return path, prefix


def metrics_port() -> int:
    return free_port()


def wait_caught_up(bootstrap: str, prefix: str, timeout: float = 120.0) -> None:
    """Wait until the sink group has committed the end of every partition it reads."""
    with _group_probe(bootstrap, prefix) as probe:
        partitions = _sink_partitions(prefix)
        deadline = time.monotonic() + timeout
        while True:
            ends = [probe.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions]
            done = probe.committed(partitions, timeout=10)
            behind = [
                (tp.topic, tp.partition, tp.offset, end)
                for tp, end in zip(done, ends, strict=True)
                if end > 0 and tp.offset < end
            ]
            if not behind:
                return
            assert time.monotonic() < deadline, f"the sink did not catch up: {behind}"
            time.sleep(0.3)


def committed_offsets(bootstrap: str, prefix: str) -> dict[tuple[str, int], int]:
    """Return the sink group's committed offset of every partition it reads (-1001: none)."""
    with _group_probe(bootstrap, prefix) as probe:
        done = probe.committed(_sink_partitions(prefix), timeout=10)
    return {(tp.topic, tp.partition): tp.offset for tp in done}


@contextmanager
def _group_probe(bootstrap: str, prefix: str) -> Iterator[Consumer]:
    probe = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{prefix}paynotify-sink",  # reads the group's offsets, never joins it
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    try:
        yield probe
    finally:
        probe.close()


def _sink_partitions(prefix: str) -> list[TopicPartition]:
    return [TopicPartition(prefix + t, p) for t in SINK_TOPICS for p in range(8)]


@contextmanager
def fresh_database(postgres_url: str) -> Iterator[str]:
    """A new PostgreSQL database; dropped afterwards even if the server was restarted."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def event_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(order_events)) or 0


def wait_rows(engine: Engine, at_least: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while event_rows(engine) < at_least:
        assert time.monotonic() < deadline, f"fewer than {at_least} order_events rows"
        time.sleep(0.1)


def failed_sources(engine: Engine) -> dict[str, str]:
    """Return ``source -> reason`` of the records the sink could not decode or apply."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(anomalies.c.source, anomalies.c.reason).where(anomalies.c.reason.in_(FAILED))
        ).all()
    return {r.source: r.reason for r in rows}


def without_failed(snapshot: writer_cases.Snapshot) -> writer_cases.Snapshot:
    """Drop undecodable_record/unapplicable anomaly rows (their ids come from the position)."""
    out = dict(snapshot)
    out["anomalies"] = [r for r in snapshot["anomalies"] if r[2] not in FAILED]
    return out


def event_rows_in(snapshot: writer_cases.Snapshot) -> int:
    return len(snapshot["order_events"])
