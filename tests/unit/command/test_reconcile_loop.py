"""The reconciler's rounds against a SQLite sink database, a fake broker and a fake Alipay."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from sqlalchemy import insert
from sqlalchemy.engine import Engine

from gateway.config import KafkaSettings
from gateway.providers.alipay import AlipayAccount
from gateway.records import Notification
from paynotify.reconcile.loop import Reconciler, ReconcileSettings, http_sender
from sinks.rows import orders
from sinks.schema import create_db_engine, upgrade
from stream.records import Anomaly
from tests.support import alipay as signer
from tests.support.alipay_answers import answer, trade

CREATED = datetime(2026, 11, 26, 10, 0, tzinfo=UTC).timestamp()
ACCOUNT = AlipayAccount(
    name="shop",
    app_id=signer.APP_ID,
    alipay_public_keys=(signer.key(0).public_key(),),
    app_private_key=signer.key(5),
    reconcile_after_seconds=60,
    reconcile_horizon_seconds=3600,
    query_url="http://127.0.0.1:9/gateway.do",
)


class FakeProducer:
    def __init__(self) -> None:
        self.records: list[tuple[str, bytes, bytes]] = []

    def produce(self, topic: str, value: bytes, key: bytes, on_delivery: Any) -> None:
        self.records.append((topic, key, value))

    def poll(self, _timeout: float) -> int:
        return 0

    def flush(self, _timeout: float) -> int:
        return 0

    def notifications(self) -> list[Notification]:
        return [Notification.from_bytes(v) for t, _, v in self.records if "notifications" in t]

    def anomalies(self) -> list[Anomaly]:
        return [Anomaly.from_bytes(v) for t, _, v in self.records if "anomalies" in t]


def alipay(paid: set[str], forge: bool = False) -> Callable[[httpx.Request], httpx.Response]:
    """Play alipay.trade.query: the orders in ``paid`` are paid, the others wait."""

    def handle(request: httpx.Request) -> httpx.Response:
        form = dict(parse_qsl(request.content.decode()))
        out_trade_no = json.loads(form["biz_content"])["out_trade_no"]
        status = "TRADE_SUCCESS" if out_trade_no in paid else "WAIT_BUYER_PAY"
        signed = answer(trade(out_trade_no, status), key=5 if forge else 0)
        return httpx.Response(200, content=signed.body)

    return handle


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'sink.db'}")
    upgrade(engine)
    rows = [
        {
            "out_trade_no": name,
            "account": "shop",
            "amount_minor": 8888,
            "currency": "CNY",
            "status": "created",
            "created_at": datetime.fromtimestamp(CREATED, UTC).isoformat(),
        }
        for name in ("o-paid", "o-waiting")
    ]
    with engine.begin() as conn:
        conn.execute(insert(orders), rows)
    return engine


class Clock:
    """Monotonic seconds that move only when the round waits or the provider answers slowly."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now


class Stop(threading.Event):
    """A stop event whose waits move the fake clock instead of sleeping; set at its
    ``set_at_wait``-th wait, as a SIGTERM arriving then would."""

    def __init__(self, clock: Clock, set_at_wait: int | None = None) -> None:
        super().__init__()
        self.clock, self.set_at_wait = clock, set_at_wait

    def wait(self, timeout: float | None = None) -> bool:
        self.clock.waits.append(timeout or 0.0)
        self.clock.now += timeout or 0.0
        if self.set_at_wait is not None and len(self.clock.waits) >= self.set_at_wait:
            self.set()
        return self.is_set()


def reconciler(
    engine: Engine,
    handler: Callable[[httpx.Request], httpx.Response],
    clock: Clock | None = None,
) -> tuple[Reconciler, FakeProducer]:
    settings = ReconcileSettings(
        accounts={"shop": ACCOUNT},
        database_url="unused",
        kafka=KafkaSettings("127.0.0.1:9", 8, "t-"),
        interval_s=1.0,
    )
    producer = FakeProducer()
    client = httpx.Client(transport=httpx.MockTransport(handler))
    loop = Reconciler(
        settings,
        engine,
        producer,  # type: ignore[arg-type]
        http_sender(client),
        monotonic=clock or Clock(),
    )
    return loop, producer


def test_round_publishes_the_proven_payment_only(engine: Engine) -> None:
    loop, producer = reconciler(engine, alipay({"o-paid"}))
    assert loop.round(CREATED + 61) == 2
    (note,) = producer.notifications()
    assert (note.out_trade_no, note.source, note.amount_minor) == ("o-paid", "query", 8888)
    assert producer.records[0][0] == "t-payment-notifications"
    assert producer.anomalies() == []


def test_young_orders_are_not_queried(engine: Engine) -> None:
    loop, producer = reconciler(engine, alipay({"o-paid"}))
    assert loop.round(CREATED + 30) == 0 and producer.records == []


def test_next_round_queries_only_at_the_next_attempt(engine: Engine) -> None:
    loop, _ = reconciler(engine, alipay(set()))
    assert loop.round(CREATED + 61) == 2
    assert loop.round(CREATED + 62) == 0
    assert loop.round(CREATED + 121) == 2  # the second attempt, at twice reconcile_after_seconds


def test_order_unpaid_at_the_deadline_is_unconfirmed_once_per_order(engine: Engine) -> None:
    loop, producer = reconciler(engine, alipay({"o-paid"}))
    loop.round(CREATED + 3600)
    loop.round(CREATED + 3661)  # crosses the deadline (60 + 3600)
    (anomaly,) = producer.anomalies()
    assert (anomaly.out_trade_no, anomaly.reason, anomaly.account) == (
        "o-waiting",
        "unconfirmed",
        "shop",
    )
    restarted, again = reconciler(engine, alipay({"o-paid"}))
    restarted.round(CREATED + 3700)
    assert [a.anomaly_id for a in again.anomalies()] == [anomaly.anomaly_id]


def test_forged_answer_publishes_nothing_and_logs_no_secret(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    loop, producer = reconciler(engine, alipay({"o-paid"}, forge=True))
    with caplog.at_level(logging.INFO, logger="paynotify.reconcile"):
        loop.round(CREATED + 61)
    assert producer.records == []
    proves_nothing = [
        r for r in caplog.records if r.getMessage() == "order query answer proves nothing"
    ]
    assert {getattr(r, "out_trade_no", "") for r in proves_nothing} == {"o-paid", "o-waiting"}
    assert "sign" not in caplog.text.replace("signature does not match", "")


def test_no_answer_is_logged_and_retried_later(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(_request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    loop, producer = reconciler(engine, refuse)
    with caplog.at_level(logging.WARNING, logger="paynotify.reconcile"):
        assert loop.round(CREATED + 61) == 2
    assert producer.records == [] and "order query got no answer" in caplog.text


def test_order_first_seen_past_its_deadline_is_still_reported(engine: Engine) -> None:
    loop, producer = reconciler(engine, alipay(set()))
    loop.round(CREATED + 3665)  # the two orders' deadline reports
    with engine.begin() as conn:  # the sink writes an order late
        conn.execute(
            insert(orders),
            {
                "out_trade_no": "o-late",
                "account": "shop",
                "amount_minor": 1,
                "currency": "CNY",
                "status": "created",
                "created_at": datetime.fromtimestamp(CREATED, UTC).isoformat(),
            },
        )
    producer.records.clear()
    loop.round(CREATED + 3700)
    assert [a.out_trade_no for a in producer.anomalies()] == ["o-late"]


def test_queries_of_an_account_are_paced(engine: Engine) -> None:
    clock = Clock()
    loop, _ = reconciler(engine, alipay(set()), clock)
    assert loop.round(CREATED + 61, Stop(clock)) == 2
    assert clock.waits == [pytest.approx(0.1)]  # reconcile_queries_per_second defaults to 10


def test_stop_ends_the_round_with_what_it_proved_published(engine: Engine) -> None:
    clock = Clock()
    loop, producer = reconciler(engine, alipay({"o-paid", "o-waiting"}), clock)
    assert loop.round(CREATED + 61, Stop(clock, set_at_wait=1)) == 1
    assert [n.out_trade_no for n in producer.notifications()] == ["o-paid"]


def slow(
    clock: Clock, seconds: float, stamps: list[str]
) -> Callable[[httpx.Request], httpx.Response]:
    """Alipay answering after ``seconds``, noting each request's signed ``timestamp``."""
    answer_of = alipay(set())

    def handle(request: httpx.Request) -> httpx.Response:
        stamps.append(request.url.params["timestamp"])
        clock.now += seconds
        return answer_of(request)

    return handle


def test_a_query_is_signed_with_the_time_it_is_sent(engine: Engine) -> None:
    clock, stamps = Clock(), []
    loop, _ = reconciler(engine, slow(clock, 400.0, stamps), clock)
    loop.round(CREATED + 61, Stop(clock))
    first, second = (datetime.strptime(s, "%Y-%m-%d %H:%M:%S") for s in stamps)
    assert (second - first).total_seconds() == 400


def test_a_long_round_logs_its_progress(engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    clock: Clock = Clock()
    loop, _ = reconciler(engine, slow(clock, 20.0, []), clock)
    with caplog.at_level(logging.INFO, logger="paynotify.reconcile"):
        loop.round(CREATED + 61, Stop(clock))
    lines = {r.getMessage(): r for r in caplog.records}
    progress, done = lines["reconciliation round in progress"], lines["reconciliation round done"]
    assert (progress.queried, progress.due) == (2, 2)
    assert (done.queried, done.seconds) == (2, 40.0)
