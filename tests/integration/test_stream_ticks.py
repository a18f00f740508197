"""Timers on the real broker: a payment whose order never comes becomes an ``order_missing``
anomaly once ``pending_timeout_seconds`` have passed, found by the engine's ticks alone; every
decision about the two notifications is on ``notification-decisions``, and the Quix worker's
``/metrics`` counts what it read and wrote."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.request import urlopen

import pytest
from confluent_kafka import Producer

from gateway.records import NOTIFICATIONS_TOPIC
from paynotify.broker import free_port
from stream.records import ANOMALIES_TOPIC, DECISIONS_TOPIC, ORDERS_TOPIC
from tests.support.stack import Service
from tests.support.stream_load import READY, order, payment, read_committed, write_stream_config

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("engine", ["quix", "faust"])]


@pytest.fixture
def metrics_port() -> int:
    return free_port()


@pytest.fixture
def worker(
    tmp_path: Path, kafka_bootstrap: str, engine: str, metrics_port: int
) -> Iterator[tuple[Service, str]]:
    config, prefix = write_stream_config(
        tmp_path,
        kafka_bootstrap,
        guarantee="exactly_once",
        engine=engine,
        tick=0.5,
        pending=3.0,
        metrics_listen=f"127.0.0.1:{metrics_port}",
    )
    service = Service("stream", config)
    service.start()
    yield service, prefix
    service.kill()


def wait_anomalies(bootstrap: str, topic: str, timeout: float = 90.0) -> list[dict[str, str]]:
    deadline = time.monotonic() + timeout
    while not (found := read_committed(bootstrap, topic, settle=1.0)):
        assert time.monotonic() < deadline, "no anomaly"
    return found


def test_stream_payment_without_order_becomes_order_missing_after_the_timeout(
    kafka_bootstrap: str, worker: tuple[Service, str], engine: str, metrics_port: int
) -> None:
    service, prefix = worker
    deadline = time.monotonic() + 90
    while READY[engine] not in service.output():
        assert time.monotonic() < deadline and service.process and service.process.poll() is None
        time.sleep(0.3)
    out = Producer({"bootstrap.servers": kafka_bootstrap, "partitioner": "murmur2_random"})
    out.produce(prefix + ORDERS_TOPIC, order("paid-1").to_bytes(), key=b"paid-1")
    for number in ("lonely-1", "paid-1"):
        note = payment(number, f"n-{number}").to_bytes()
        out.produce(prefix + NOTIFICATIONS_TOPIC, note, key=number.encode())
    assert out.flush(30) == 0
    found = wait_anomalies(kafka_bootstrap, prefix + ANOMALIES_TOPIC)
    time.sleep(3)  # a second report (or one for the paid order) would show up by now
    found = read_committed(kafka_bootstrap, prefix + ANOMALIES_TOPIC, settle=1.0)
    assert [(a["out_trade_no"], a["reason"]) for a in found] == [("lonely-1", "order_missing")]
    decided = read_committed(kafka_bootstrap, prefix + DECISIONS_TOPIC, settle=1.0)
    by_order: dict[str, list[str]] = {}
    for d in decided:
        by_order.setdefault(d["out_trade_no"], []).append(d["decision"])
    assert by_order["lonely-1"] == ["awaiting_order", "order_missing"]
    assert by_order["paid-1"][-1] == "paid"  # after awaiting_order if it overtook its order
    if engine == "quix":  # the faust engine exports no metrics
        text = urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
        assert 'paynotify_stream_records_total{topic="payment-notifications"} 2.0' in text
        assert 'paynotify_stream_outputs_total{topic="payment-anomalies"} 1.0' in text
        # the three inputs and the state's changelog, 8 partitions each
        assert "paynotify_stream_assigned_partitions 32.0" in text
        assert 'paynotify_stream_consumer_lag{partition="' in text
