"""``Notification.check``: what the stream reads from ``payment-notifications`` is sane."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.records import (
    TEXT_LIMITS,
    Notification,
    RecordError,
    encode_raw_body,
    from_fields,
)

GOOD = Notification(
    provider="alipay",
    account="shop",
    notify_id="n-1",
    out_trade_no="o-1",
    kind="payment",
    status="TRADE_SUCCESS",
    amount_minor=100,
    currency="CNY",
    provider_trade_no="2026",
    occurred_at="2026-11-26T10:00:01+08:00",
    received_at="2026-11-26T02:00:05+00:00",
    raw_body_b64=encode_raw_body(b"a=b"),
    succeeded=True,
)


def test_notification_check_genuine_record_round_trips() -> None:
    assert Notification.from_bytes(GOOD.to_bytes()) == GOOD
    refund = replace(GOOD, kind="refund", refund_id="r-1", refund_total_minor=2**63 - 1)
    assert Notification.from_bytes(refund.to_bytes()) == refund
    queried = replace(GOOD, source="query")
    assert Notification.from_bytes(queried.to_bytes()) == queried


@pytest.mark.parametrize(
    "change",
    [
        {"amount_minor": -1},
        {"amount_minor": 2**63},
        {"amount_minor": 1.5},
        {"amount_minor": True},
        {"amount_minor": "100"},
        {"refund_amount_minor": -5},
        {"refund_total_minor": 2**64},
        {"out_trade_no": "\ud800"},
        {"notify_id": "a\udfff"},
        {"out_trade_no": ""},
        {"out_trade_no": "x" * 129},
        {"out_trade_no": 12},
        {"currency": "cny"},
        {"currency": "CN1"},
        {"kind": "chargeback"},
        {"kind": ["payment"]},
        {"received_at": "yesterday"},
        {"received_at": "2026-11-26T10:00:00"},  # no UTC offset
        {"occurred_at": "0001-01-01T00:00:00+08:00"},  # before year 1 in UTC
        {"occurred_at": "2026-11-26T10:00:00" + "0" * 40},
        {"refund_id": 7},
        {"raw_body_b64": "not base64!"},
        {"out_trade_no": "o-\x001"},  # PostgreSQL's text cannot hold NUL
        {"status": "TRADE\x00SUCCESS"},
        {"source": "email"},
        {"source": None},
    ],
)
def test_notification_check_absurd_field_raises_record_error(change: dict[str, Any]) -> None:
    with pytest.raises(RecordError):
        replace(GOOD, **change).check()


@pytest.mark.parametrize(
    "value",
    [
        b'{"a": 1' + b"0" * 5000 + b"}",
        b"[" * 100_000 + b"]" * 100_000,
        b"\xff",
        b"[]",
        json.dumps({**asdict(GOOD), "amount_minor": 2**64}).encode(),
        json.dumps({**asdict(GOOD), "kind": {"a": 1}}).encode(),
        json.dumps({**asdict(GOOD), "amount_minor": float("nan")}).encode(),  # NaN: not JSON
        json.dumps({**asdict(GOOD), "out_trade_no": "\ud800"}).encode(),  # an escaped surrogate
        GOOD.to_bytes().replace(b'"amount_minor":100', b'"amount_minor":1' + b"0" * 30),
    ],
)
def test_notification_from_bytes_poison_raises_record_error(value: bytes) -> None:
    with pytest.raises(RecordError):
        Notification.from_bytes(value)


ODD_VALUES = [None, True, False, -1, 0, 1, 2**63 - 1, 2**63, "", "CNY", "cny", "CN1", "x" * 200]
ODD_VALUES += ["payment", "close", "query", "a\x00b", "é", "\ud800", [1]]
CHECKED_FIELDS = [*TEXT_LIMITS, "amount_minor", "refund_amount_minor", "refund_total_minor"]
CHECKED_FIELDS += ["succeeded", "source"]


def _agree(note: Notification) -> None:
    try:
        note._check_fields()
    except RecordError:
        assert not note._plainly_valid()
    else:  # the quick check may only send a good record the long way (non-ASCII text)
        texts = [v for v in (getattr(note, n) for n in CHECKED_FIELDS) if isinstance(v, str)]
        assert note._plainly_valid() or not "".join(texts).isascii()


@pytest.mark.parametrize("value", ODD_VALUES, ids=repr)
@pytest.mark.parametrize("name", CHECKED_FIELDS)
def test_notification_quick_check_agrees_with_the_field_checks(name: str, value: object) -> None:
    _agree(replace(GOOD, **{name: value}))


@given(st.dictionaries(st.sampled_from(CHECKED_FIELDS), st.sampled_from(ODD_VALUES), max_size=4))
def test_notification_quick_check_agrees_on_several_odd_fields(changes: dict[str, Any]) -> None:
    _agree(replace(GOOD, **changes))


@pytest.mark.parametrize("extra", [0, 1])
@pytest.mark.parametrize(("name", "limit"), [(n, lim) for n, lim in TEXT_LIMITS.items()])
def test_notification_quick_check_applies_each_text_its_own_limit(
    name: str, limit: int, extra: int
) -> None:
    _agree(replace(GOOD, **{name: "A" * (limit + extra)}))


def test_records_from_fields_builds_what_keywords_build_in_any_field_order() -> None:
    fields = asdict(GOOD)
    assert from_fields(Notification, fields) == Notification(**fields) == GOOD
    reordered = dict(reversed(fields.items()))  # by keyword: not the fields' order
    assert from_fields(Notification, reordered) == GOOD
    shorter = {k: v for k, v in fields.items() if k != "source"}  # a default left out
    assert from_fields(Notification, shorter) == GOOD
    parsed = json.loads(GOOD.to_bytes())  # names parsed from JSON, in the fields' order
    assert list(parsed) == list(fields) and from_fields(Notification, parsed) == GOOD


def test_records_from_fields_unknown_or_missing_field_raises_type_error() -> None:
    with pytest.raises(TypeError):
        from_fields(Notification, {**asdict(GOOD), "extra": 1})
    with pytest.raises(TypeError):
        from_fields(Notification, {k: v for k, v in asdict(GOOD).items() if k != "account"})
