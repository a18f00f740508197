"""Poison records on every consumed topic, for real: while genuine orders and signed payments
cross the gateway, the real broker, the stream and the sink, records of every bad-input class
(tests/support/poison.py) are produced to ``orders``, ``payment-notifications``, ``stream-ticks``
and to each topic the sink reads. Every genuine order is paid exactly once, every poison record
is one ``undecodable_record`` row carrying its own topic/partition/offset, and no service
crashed, restarted or stalled.

Written against the public contracts only (topics, tables, ``paynotify`` commands), so it runs
on either stream engine.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Producer
from sqlalchemy import Engine, select

from gateway.records import NOTIFICATIONS_TOPIC
from paynotify.topics import ensure_topics
from sinks.rows import anomalies, orders
from sinks.schema import create_db_engine, upgrade
from stream.records import (
    ALL_TOPICS,
    ANOMALIES_TOPIC,
    ORDER_CLOSED_TOPIC,
    ORDER_PAID_TOPIC,
    ORDER_REFUNDED_TOPIC,
    ORDERS_TOPIC,
    TICKS_TOPIC,
    Anomaly,
    ExpectedOrder,
)
from tests.support import alipay as signer
from tests.support import writer_cases
from tests.support.kafka_checks import paid_counts
from tests.support.poison import Poison, poisons
from tests.support.stack import Service, wait_http, write_config
from tests.unit.stream.cases import note

pytestmark = pytest.mark.integration

FORM = {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}
GENUINE = [f"p-{i}" for i in range(6)]


def expected(number: str) -> ExpectedOrder:
    return ExpectedOrder(number, "shop", 100, "CNY", datetime.now(UTC).isoformat())


def poison_records() -> list[Poison]:
    """Poison of every class for every consumed topic. Those of the stream's inputs are keyed to
    genuine orders (the same partition and state); those of the sink's own topics to orders
    of their own (o-9xx), so that one the sink wrongly accepted would show as a row."""
    stream_inputs = {
        ORDERS_TOPIC: json.loads(expected("p-0").to_bytes()),
        NOTIFICATIONS_TOPIC: json.loads(
            replace(note("notify-p-1", amount=1), out_trade_no="p-1").to_bytes()
        ),
        TICKS_TOPIC: {},
    }
    sink_inputs = {
        ORDER_PAID_TOPIC: writer_cases.paid(900),
        ORDER_REFUNDED_TOPIC: writer_cases.refunded(901, "r1", 40, 40, 2),
        ORDER_CLOSED_TOPIC: writer_cases.closed(902),
        ANOMALIES_TOPIC: Anomaly("a-903", "o-903", "amount_mismatch", "paid 1", "shop"),
    }
    out = [p for topic, good in stream_inputs.items() for p in poisons(topic, good)]
    for topic, record in sink_inputs.items():
        out += poisons(topic, json.loads(record.to_bytes()))
    return out


def produce(
    bootstrap: str, prefix: str, records: list[tuple[str, bytes | None, bytes]]
) -> list[str]:
    """Produce (topic, key, value) records; return each one's ``topic/partition/offset``."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "partitioner": "murmur2_random",  # as the gateway and the stream place keys (DESIGN)
        }
    )
    where: dict[int, str] = {}
    for i, (topic, key, value) in enumerate(records):

        def done(err: object, msg: object, i: int = i) -> None:
            assert err is None, err
            where[i] = f"{msg.topic()}/{msg.partition()}/{msg.offset()}"  # type: ignore[attr-defined]

        producer.produce(prefix + topic, value, key=key, on_delivery=done)
        producer.poll(0)
    assert producer.flush(30) == 0
    return [where[i] for i in range(len(records))]


async def pay(port: int, numbers: list[str]) -> list[tuple[int, str]]:
    url = f"http://127.0.0.1:{port}/notify/alipay/shop"
    async with httpx.AsyncClient(timeout=15) as client:
        answers = []
        for number in numbers:
            body = signer.sign(signer.payment(number, amount="1.00"))
            for _ in range(2):  # and a provider's retry
                answers.append(await client.post(url, content=body, headers=FORM))
    return [(r.status_code, r.text) for r in answers]


@pytest.fixture(params=["services", "up"])
def services(
    request: pytest.FixtureRequest, tmp_path: Path, kafka_bootstrap: str, database_url: str
) -> Iterator[tuple[dict[str, Service], Path, int, str]]:
    """The gateway, stream and sink as three ``paynotify`` processes, or in one ``paynotify up``
    (which exits as soon as one of its services does)."""
    config, port, prefix = write_config(tmp_path, kafka_bootstrap, database_url)
    ensure_topics(kafka_bootstrap, [prefix + t for t in ALL_TOPICS], 8)
    engine = create_db_engine(database_url)
    upgrade(engine)
    engine.dispose()
    names = ("gateway", "stream", "sink") if request.param == "services" else ("up",)
    running = {name: Service(name, config) for name in names}
    for service in running.values():
        service.start()
    try:
        yield running, config, port, prefix
    finally:
        for service in running.values():
            service.stop()


def test_poison_on_every_consumed_topic_is_reported_and_every_order_paid_once(
    services: tuple[dict[str, Service], Path, int, str], kafka_bootstrap: str, database_url: str
) -> None:
    running, _config, port, prefix = services
    wait_http(f"http://127.0.0.1:{port}/healthz", service=running.get("gateway", running.get("up")))
    bad = poison_records()
    half = len(bad) // 2
    genuine = [(ORDERS_TOPIC, n.encode(), expected(n).to_bytes()) for n in GENUINE]

    produce(kafka_bootstrap, prefix, genuine[:3])
    where = produce(kafka_bootstrap, prefix, [(p.topic, p.key, p.value) for p in bad[:half]])
    assert asyncio.run(pay(port, GENUINE)) == [(200, "success")] * 2 * len(GENUINE)
    where += produce(kafka_bootstrap, prefix, [(p.topic, p.key, p.value) for p in bad[half:]])
    produce(kafka_bootstrap, prefix, genuine[3:])

    engine = create_db_engine(database_url)
    try:
        reported, paid = _wait_rows(engine, set(where), running)
    finally:
        engine.dispose()
    assert paid == set(GENUINE)
    assert paid_counts(kafka_bootstrap, f"{prefix}order-paid", "p-") == dict.fromkeys(GENUINE, 1)
    assert reported == dict.fromkeys(where, "undecodable_record"), "not one row per poison record"
    _alive_and_clean(running)


def _wait_rows(
    engine: Engine, where: set[str], running: dict[str, Service], timeout: float = 120.0
) -> tuple[dict[str, str], set[str]]:
    """Wait until every poison record has its row and every genuine order is paid."""
    deadline = time.monotonic() + timeout
    while True:
        for service in running.values():
            assert service.process is not None and service.process.poll() is None, (
                f"{service.name} exited:\n{service.output()[-4000:]}"
            )
        with engine.connect() as conn:
            rows = conn.execute(select(anomalies.c.source, anomalies.c.reason)).all()
            paid = set(
                conn.scalars(
                    select(orders.c.out_trade_no).where(
                        orders.c.status == "paid", orders.c.out_trade_no.in_(GENUINE)
                    )
                )
            )
        reported = {r.source: r.reason for r in rows}
        if where <= set(reported) and paid == set(GENUINE):
            time.sleep(2.0)  # anything wrongly produced after the last expected row shows up too
            with engine.connect() as conn:
                rows = conn.execute(select(anomalies.c.source, anomalies.c.reason)).all()
            return {r.source: r.reason for r in rows}, paid
        if time.monotonic() > deadline:
            with engine.connect() as conn:
                rows = conn.execute(select(anomalies)).all()
            others = [(r.reason, r.source, r.detail[:200]) for r in rows if r.source not in where]
            raise AssertionError(
                f"unpaid {set(GENUINE) - paid}, unreported {sorted(where - set(reported))}, "
                f"other anomalies {others}"
            )
        time.sleep(0.5)


def _alive_and_clean(running: dict[str, Service]) -> None:
    for service in running.values():
        assert service.process is not None and service.process.poll() is None, service.name
    codes = {name: service.stop() for name, service in running.items()}
    for name, service in running.items():
        output = service.output()
        assert "Traceback" not in output, f"{name} logged an unhandled exception:\n{output[-4000:]}"
        assert "restarting" not in output, f"{name} restarted:\n{output[-4000:]}"
        assert len(service.logs) == 1
    # uvicorn re-raises SIGTERM after its graceful shutdown, so the gateway ends with -15
    want = {"up": 0} if "up" in running else {"gateway": -15, "stream": 0, "sink": 0}
    assert codes == want, codes
