"""``paynotify orders show`` and ``paynotify anomalies list`` on a SQLite database the sink's
writer filled: the order's whole story in time order, as a table and as JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from paynotify.cli import main
from paynotify.story import since
from sinks.schema import create_db_engine, upgrade
from sinks.writer import write_batch
from stream.records import (
    ANOMALIES_TOPIC,
    DECISIONS_TOPIC,
    ORDER_PAID_TOPIC,
    ORDERS_TOPIC,
    Anomaly,
)
from tests.support import writer_cases
from tests.support.writer_cases import decided, keyed


@pytest.fixture
def config(tmp_path: Path) -> Path:
    database = tmp_path / "sink.db"
    engine = create_db_engine(f"sqlite:///{database}")
    upgrade(engine)
    records = [
        (ORDERS_TOPIC, writer_cases.expected(1)),
        (DECISIONS_TOPIC, decided(1, "n-1", "awaiting_order", 0)),
        (DECISIONS_TOPIC, decided(1, "n-1", "paid", 1)),
        (DECISIONS_TOPIC, decided(1, "n-2", "already_paid", 1)),
        (ORDER_PAID_TOPIC, writer_cases.paid(1)),
        (ANOMALIES_TOPIC, Anomaly("a-1", "o-1", "amount_mismatch", "paid 1, expected 101")),
        (ANOMALIES_TOPIC, Anomaly("a-2", "o-2", "order_missing", "no order within 3600s")),
    ]
    with engine.begin() as conn:
        write_batch(conn, [keyed(topic, r.to_bytes()) for topic, r in records])
    engine.dispose()
    path = tmp_path / "paynotify.toml"
    path.write_text(
        f'[kafka]\nbootstrap_servers = "127.0.0.1:1"\n\n[database]\nurl = "sqlite:///{database}"\n'
    )
    return path


def test_orders_show_prints_the_order_and_its_timeline(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["orders", "show", "o-1", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    head, *lines = out.splitlines()
    assert head.startswith("order o-1  account shop  101 CNY  status paid (version 1)")
    body = "\n".join(lines)
    assert "alipay payment TRADE_SUCCESS 101 CNY by webhook: paid" in body
    assert "by webhook: already_paid" in body and "awaiting_order" not in body
    assert "order.paid: status paid (version 1)" in body
    assert "amount_mismatch: paid 1, expected 101" in body


def test_orders_show_json_lists_notifications_events_and_anomalies_in_time_order(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["orders", "show", "o-1", "--json", "--config", str(config)]) == 0
    story = json.loads(capsys.readouterr().out)
    assert story["order"]["status"] == "paid"
    kinds = sorted(entry["what"] for entry in story["timeline"])
    assert kinds == ["anomaly", "event", "notification", "notification"]
    times = [datetime.fromisoformat(entry["at"]) for entry in story["timeline"]]
    assert times == sorted(times)
    assert all("payload" not in entry for entry in story["timeline"] if entry["what"] == "anomaly")


def test_orders_show_unknown_order_says_so_in_one_line(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["orders", "show", "o-404", "--config", str(config)]) == 2
    assert capsys.readouterr().err == "paynotify: nothing on record for order 'o-404'\n"


def test_anomalies_list_filters_by_reason_and_time(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["anomalies", "list", "--json", "--config", str(config)]) == 0
    assert {a["reason"] for a in json.loads(capsys.readouterr().out)} == {
        "amount_mismatch",
        "order_missing",
    }
    argv = ["anomalies", "list", "--reason", "order_missing", "--config", str(config)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "order_missing" in out and "amount_mismatch" not in out
    assert main(["anomalies", "list", "--since", "2999-01-01", "--config", str(config)]) == 0
    assert capsys.readouterr().out == "no anomalies\n"


def test_since_takes_an_age_or_an_iso_time() -> None:
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    assert since("2h", lambda: now) == datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    assert since("2026-11-30T08:00:00") == datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    with pytest.raises(Exception, match="neither an ISO-8601 time nor an age"):
        since("yesterday")
