"""Accounts are isolated, on the real stack: another configured account's genuinely signed
notifications for an order (a flood larger than the waiting queue, one of them with the genuine
notification's notify id) neither fill the order's queue nor claim its notify id. The genuine
payment is paid once, and each foreign notification is an ``account_mismatch`` anomaly."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from sinks.schema import create_db_engine
from stream.state import MAX_PENDING
from tests.integration.test_pipeline import FORM, cli
from tests.support import alipay as signer
from tests.support.kafka_checks import paid_counts
from tests.support.keys import write_public_pem
from tests.support.stack import Service, wait_http, write_config

pytestmark = pytest.mark.integration

OTHER_APP_ID = "2021000000000099"
OTHER_ACCOUNT = """
[[accounts]]
name = "other"
provider = "alipay"
app_id = "{app_id}"
alipay_public_keys = ["keys/other_public.pem"]
"""


@pytest.fixture
def stack(tmp_path: Path, kafka_bootstrap: str, database_url: str) -> Iterator[tuple[Path, int]]:
    config, port, _prefix = write_config(tmp_path, kafka_bootstrap, database_url)
    write_public_pem(signer.key(1), tmp_path / "keys" / "other_public.pem")
    config.write_text(config.read_text() + OTHER_ACCOUNT.format(app_id=OTHER_APP_ID))
    cli(config, "db", "upgrade")
    services = [Service(name, config) for name in ("gateway", "stream", "sink")]
    for service in services:
        service.start()
    wait_http(f"http://127.0.0.1:{port}/healthz", service=services[0])
    yield config, port
    for service in services:
        service.stop()
        assert "Traceback" not in service.output(), service.output()[-3000:]


def post(client: httpx.Client, port: int, account: str, body: bytes) -> str:
    response = client.post(f"http://127.0.0.1:{port}/notify/alipay/{account}", content=body)
    return f"{response.status_code} {response.text}"


def foreign(number: str, notify_id: str) -> bytes:
    """Return the other account's genuinely signed payment of ``number``."""
    params = signer.payment(number, app_id=OTHER_APP_ID, notify_id=notify_id)
    return signer.sign(params, signer.key(1))


def add_order(config: Path, number: str) -> None:
    cli(
        config,
        "orders",
        "add",
        "--out-trade-no",
        number,
        "--account",
        "shop",
        "--amount-minor",
        "100",
    )


def rows(database: str, query: str) -> list[tuple[object, ...]]:
    engine = create_db_engine(database)
    with engine.connect() as conn:
        found = [tuple(r) for r in conn.execute(text(query))]
    engine.dispose()
    return found


def test_isolation_another_account_neither_crowds_out_nor_claims_an_order(
    stack: tuple[Path, int], kafka_bootstrap: str, database_url: str
) -> None:
    config, port = stack
    flood = MAX_PENDING + 8
    with httpx.Client(timeout=15, headers=FORM) as client:
        # order unknown: the other account floods it, first with the genuine notify id
        answers = [post(client, port, "other", foreign("iso-1", "notify-iso-1"))]
        answers += [
            post(client, port, "other", foreign("iso-1", f"x-{i}")) for i in range(flood - 1)
        ]
        genuine = post(client, port, "shop", signer.sign(signer.payment("iso-1")))
        add_order(config, "iso-1")
        # order known: the other account's copy of the genuine notify id comes first
        add_order(config, "iso-2")
        answers.append(post(client, port, "other", foreign("iso-2", "notify-iso-2")))
        time.sleep(2)  # the foreign one is applied (and refused) before the genuine one comes
        genuine_2 = post(client, port, "shop", signer.sign(signer.payment("iso-2")))
    assert set(answers) == {"200 success"} and genuine == genuine_2 == "200 success"
    deadline = time.monotonic() + 90
    query = "SELECT out_trade_no, account, status FROM orders WHERE status = 'paid'"
    while len(paid := rows(database_url, query)) < 2:
        assert time.monotonic() < deadline, f"paid rows: {paid}"
        time.sleep(0.5)
    assert sorted(paid) == [("iso-1", "shop", "paid"), ("iso-2", "shop", "paid")]
    prefix = config.read_text().split('topic_prefix = "')[1].split('"')[0]
    assert paid_counts(kafka_bootstrap, f"{prefix}order-paid", "iso-") == {"iso-1": 1, "iso-2": 1}
    mismatches = "SELECT count(*) FROM anomalies WHERE reason = 'account_mismatch'"
    while rows(database_url, mismatches)[0][0] < MAX_PENDING + 1:
        assert time.monotonic() < deadline, rows(database_url, "SELECT reason FROM anomalies")
        time.sleep(0.5)
    events = rows(database_url, "SELECT payload FROM order_events WHERE type = 'order.paid'")
    assert all('"account":"shop"' in str(p[0]).replace(" ", "") for p in events), events
