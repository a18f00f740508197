"""Poison records on the stream's input topics: each decodes to a RecordError (never an exception)
and becomes an ``undecodable_record`` anomaly that the sink accepts, carrying its position."""

from __future__ import annotations

import json

import pytest

from gateway.records import NOTIFICATIONS_TOPIC, RecordError
from stream.processing import OrderProcessor
from stream.records import (
    ANOMALIES_TOPIC,
    ORDERS_TOPIC,
    TICKS_TOPIC,
    Anomaly,
    ExpectedOrder,
    undecodable_id,
)
from stream.state import Tick
from tests.support.poison import Poison, poisons
from tests.unit.stream.cases import ORDER, note

PROCESSOR = OrderProcessor(pending_timeout_s=3600.0, retention_s=86400.0)
GOOD = {
    ORDERS_TOPIC: json.loads(ORDER.to_bytes()),
    NOTIFICATIONS_TOPIC: json.loads(note().to_bytes()),
    TICKS_TOPIC: {"now": "2026-11-26T10:00:00+08:00"},
}
POISONS = [p for topic, good in GOOD.items() for p in poisons(topic, good)]


@pytest.mark.parametrize("topic", sorted(GOOD))
def test_decode_valid_record_gives_its_input(topic: str) -> None:
    key = None if topic == TICKS_TOPIC else b"o-1"
    item = PROCESSOR.decode(topic, key, json.dumps(GOOD[topic]).encode())
    assert not isinstance(item, RecordError)


@pytest.mark.parametrize("poison", POISONS, ids=lambda p: f"{p.topic}-{p.name}")
def test_decode_poison_record_returns_record_error_and_reports_it(poison: Poison) -> None:
    decoded = PROCESSOR.decode(poison.topic, poison.key, poison.value)
    assert isinstance(decoded, RecordError), decoded
    out = PROCESSOR.undecodable(f"p.{poison.topic}", 3, 41, poison.key, decoded)
    anomaly = Anomaly.from_bytes(out.value)  # what the sink will read: it must accept it
    assert out.topic == ANOMALIES_TOPIC and out.key == anomaly.out_trade_no.encode()
    assert (anomaly.reason, anomaly.topic, anomaly.partition, anomaly.offset) == (
        "undecodable_record",
        f"p.{poison.topic}",
        3,
        41,
    )
    assert anomaly.anomaly_id == undecodable_id(f"p.{poison.topic}/3/41")


def test_decode_no_value_or_not_bytes_returns_record_error() -> None:
    assert isinstance(PROCESSOR.decode(ORDERS_TOPIC, b"o-1", None), RecordError)
    assert isinstance(PROCESSOR.decode(ORDERS_TOPIC, b"o-1", "text"), RecordError)  # type: ignore[arg-type]


def test_decode_tick_in_any_offset_is_normalised_to_utc() -> None:
    tick = PROCESSOR.decode(TICKS_TOPIC, None, b'{"now": "2026-11-26T10:00:00+08:00"}')
    assert isinstance(tick, Tick) and tick.now == "2026-11-26T02:00:00.000000+00:00"


def test_undecodable_key_with_nul_or_invalid_utf8_gives_an_anomaly_the_sink_accepts() -> None:
    for key in (b"o-\x00", b"\xff" * 300):
        out = PROCESSOR.undecodable("orders", 0, 1, key, RecordError("x"))
        anomaly = Anomaly.from_bytes(out.value)
        assert out.key == anomaly.out_trade_no.encode() and len(anomaly.out_trade_no) <= 128


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount_minor", 2**63 - 1),
        ("amount_minor", 0),
        ("created_at", "2026-11-26T10:00:00Z"),
        ("created_at", "2026-11-26"),
    ],
)
def test_expected_order_boundary_values_are_accepted(field: str, value: object) -> None:
    data = {**json.loads(ORDER.to_bytes()), field: value}
    assert ExpectedOrder.from_bytes(json.dumps(data).encode()).out_trade_no == "o-1"
