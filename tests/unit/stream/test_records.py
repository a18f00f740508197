from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.records import Notification, RecordError
from stream.records import (
    EVENT_NAMESPACE,
    Anomaly,
    ExpectedOrder,
    OrderPaid,
    event_id,
    uuid5_text,
)

ORDER = ExpectedOrder("o-1", "shop", 100, "CNY", "2026-11-26T10:00:00+08:00")


def test_expected_order_roundtrips_as_design_json() -> None:
    data = ORDER.to_bytes()
    assert data == (
        b'{"out_trade_no":"o-1","account":"shop","amount_minor":100,"currency":"CNY",'
        b'"created_at":"2026-11-26T10:00:00+08:00"}'
    )
    assert ExpectedOrder.from_bytes(data) == ORDER


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[1, 2]",
        b'{"out_trade_no": "o-1"}',
        b'{"out_trade_no":"o-1","account":"shop","amount_minor":"1.00","currency":"CNY","created_at":""}',
        b'{"out_trade_no":"o-1","account":"shop","amount_minor":-5,"currency":"CNY","created_at":""}',
        "\u00ff".encode("latin-1"),
    ],
)
def test_expected_order_invalid_value_raises_record_error(data: bytes) -> None:
    with pytest.raises(RecordError):
        ExpectedOrder.from_bytes(data)


def test_notification_unknown_kind_raises_record_error() -> None:
    good = Notification(
        "alipay",
        "shop",
        "n",
        "o-1",
        "payment",
        "TRADE_SUCCESS",
        100,
        "CNY",
        "t",
        None,
        "2026-11-26T00:00:00+00:00",
        "",
        True,
    )
    with pytest.raises(RecordError):
        Notification.from_bytes(good.to_bytes().replace(b'"payment"', b'"gift"'))
    assert Notification.from_bytes(good.to_bytes()) == good


def test_order_paid_has_the_design_fields() -> None:
    paid = OrderPaid(
        event_id("shop", "o-1", "paid"),
        "o-1",
        "shop",
        "alipay",
        "t",
        100,
        "CNY",
        None,
        "n",
        "paid",
        1,
    )
    decoded = OrderPaid.from_bytes(paid.to_bytes())
    assert decoded == paid and decoded.type == "order.paid"
    with pytest.raises(RecordError):
        OrderPaid.from_bytes(paid.to_bytes().replace(b"order.paid", b"order.lost"))


def test_event_id_is_deterministic_per_account_order_and_fact() -> None:
    assert event_id("shop", "o-1", "paid") == event_id("shop", "o-1", "paid")
    assert (
        len(
            {
                event_id("shop", "o-1", "paid"),
                event_id("shop", "o-2", "paid"),
                event_id("other", "o-1", "paid"),
                event_id("shop", "o-1", "refund:r1"),
            }
        )
        == 4
    )


def test_anomaly_roundtrips() -> None:
    anomaly = Anomaly("a", "o-1", "amount_mismatch", "paid 1, expected 100")
    assert Anomaly.from_bytes(anomaly.to_bytes()) == anomaly


@given(st.text())
def test_records_uuid5_text_is_uuid5(name: str) -> None:
    # Event and anomaly ids already written downstream were made by uuid.uuid5: same text.
    assert uuid5_text(name) == str(uuid.uuid5(EVENT_NAMESPACE, name))
