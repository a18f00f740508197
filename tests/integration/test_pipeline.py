"""The walking skeleton, for real: a signed Alipay notification sent five times in a row and five
times at once crosses the gateway, the real broker, the faust stream and the sink, and becomes
exactly one ``order-paid`` event and one paid row in PostgreSQL."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Producer
from sqlalchemy import func, select

from sinks.rows import anomalies, order_events, orders
from sinks.schema import create_db_engine
from tests.support import alipay as signer
from tests.support.kafka_checks import paid_counts, wait_group_caught_up
from tests.support.stack import Service, wait_http, write_config

pytestmark = pytest.mark.integration

FORM = {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}


def cli(config: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "paynotify.cli", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture
def stack(tmp_path: Path, kafka_bootstrap: str, database_url: str) -> Iterator[dict[str, object]]:
    config, port, prefix = write_config(tmp_path, kafka_bootstrap, database_url)
    cli(config, "db", "upgrade")
    services = {name: Service(name, config) for name in ("gateway", "stream", "sink")}
    for service in services.values():
        service.start()
    yield {"config": config, "port": port, "prefix": prefix, "services": services}
    codes = {name: service.stop() for name, service in services.items()}
    outputs = {name: service.output() for name, service in services.items()}
    for name, output in outputs.items():
        assert "Traceback" not in output, f"{name} logged an unhandled exception:\n{output[-4000:]}"
    # uvicorn re-raises SIGTERM after its graceful shutdown, so the gateway ends with -15.
    assert codes == {"gateway": -15, "stream": 0, "sink": 0}, codes
    assert "Application shutdown complete" in outputs["gateway"]


async def post_copies(url: str, body: bytes) -> list[tuple[int, str]]:
    async with httpx.AsyncClient(timeout=15) as client:
        sequential = [await client.post(url, content=body, headers=FORM) for _ in range(5)]
        concurrent = await asyncio.gather(
            *(client.post(url, content=body, headers=FORM) for _ in range(5))
        )
        forged = await client.post(url, content=body.replace(b"1.00", b"0.01"), headers=FORM)
    return [(r.status_code, r.text) for r in [*sequential, *concurrent, forged]]


def test_pipeline_ten_copies_become_one_event_and_one_paid_row(
    stack: dict[str, object], kafka_bootstrap: str, database_url: str
) -> None:
    config, port, prefix = stack["config"], stack["port"], stack["prefix"]
    services: dict[str, Service] = stack["services"]  # type: ignore[assignment]
    assert isinstance(config, Path) and isinstance(prefix, str)
    wait_http(f"http://127.0.0.1:{port}/healthz", service=services["gateway"])
    cli(
        config,
        "orders",
        "add",
        "--out-trade-no",
        "o-1",
        "--account",
        "shop",
        "--amount-minor",
        "100",
    )
    garbage = Producer({"bootstrap.servers": kafka_bootstrap})
    garbage.produce(f"{prefix}payment-notifications", b"not a notification", key=b"o-junk")
    assert garbage.flush(10) == 0
    body = signer.sign(signer.payment("o-1", amount="1.00"))
    answers = asyncio.run(post_copies(f"http://127.0.0.1:{port}/notify/alipay/shop", body))
    assert answers == [(200, "success")] * 10 + [(400, "fail")]

    wait_group_caught_up(
        kafka_bootstrap, f"{prefix}paynotify-stream", f"{prefix}payment-notifications"
    )
    wait_group_caught_up(kafka_bootstrap, f"{prefix}paynotify-sink", f"{prefix}order-paid")
    assert paid_counts(kafka_bootstrap, f"{prefix}order-paid", "o-") == {"o-1": 1}
    engine = create_db_engine(database_url)
    deadline = time.monotonic() + 30
    with engine.connect() as conn:
        while conn.scalar(select(orders.c.status).where(orders.c.out_trade_no == "o-1")) != "paid":
            assert time.monotonic() < deadline, "order o-1 was not marked paid"
            time.sleep(0.2)
            conn.rollback()
        row = conn.execute(select(orders).where(orders.c.out_trade_no == "o-1")).one()
        events = conn.scalar(select(func.count()).select_from(order_events))
        while conn.scalar(select(func.count()).select_from(anomalies)) == 0:
            assert time.monotonic() < deadline, "the undecodable record was not reported"
            time.sleep(0.2)
            conn.rollback()
        odd = conn.execute(select(anomalies.c.out_trade_no, anomalies.c.reason)).all()
    engine.dispose()
    assert (row.status, row.amount_minor, row.currency) == ("paid", 100, "CNY")
    assert (row.provider, events) == ("alipay", 1)
    assert [tuple(r) for r in odd] == [("o-junk", "undecodable_record")]
