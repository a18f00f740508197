"""Poison records: values and keys no consumer of a topic can accept, one per class of bad input.

Each is derived from a valid record of its topic, so that exactly one thing is wrong with it.
The classes (``CLASSES``) are those of issue 12: not JSON or not an object, invalid UTF-8, parser
limits (a 4,400-digit integer, deep nesting), a lone surrogate, wrong types, absurd amounts
(2^63, negative, float, bool), times that are objects, numbers or unparseable, a missing field,
and a key other than the record's ``out_trade_no`` (or none).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.records import NOTIFICATIONS_TOPIC
from stream.records import (
    ANOMALIES_TOPIC,
    DECISIONS_TOPIC,
    ORDER_CLOSED_TOPIC,
    ORDER_PAID_TOPIC,
    ORDER_REFUNDED_TOPIC,
    ORDERS_TOPIC,
    TICKS_TOPIC,
)

HUGE_DIGITS = b"9" * 4400  # past 64 bits (orjson refuses it) and past Python's 4,300-digit limit


@dataclass(frozen=True)
class Poison:
    """One poison record: its class, the topic (logical name), key and value."""

    name: str
    topic: str
    key: bytes | None
    value: bytes


# Per topic: which field holds an amount, which a time, which a required string.
FIELDS: dict[str, tuple[str | None, str | None, str]] = {
    ORDERS_TOPIC: ("amount_minor", "created_at", "account"),
    NOTIFICATIONS_TOPIC: ("amount_minor", "received_at", "notify_id"),
    ORDER_PAID_TOPIC: ("amount_minor", "paid_at", "provider"),
    ORDER_REFUNDED_TOPIC: ("refunded_total_minor", "refunded_at", "refund_id"),
    ORDER_CLOSED_TOPIC: (None, "closed_at", "notify_id"),
    ANOMALIES_TOPIC: ("partition", "detected_at", "reason"),
    DECISIONS_TOPIC: ("amount_minor", "received_at", "decision"),
}


def _dump(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj).encode()


def _with(obj: dict[str, Any], name: str, value: Any) -> bytes:
    return _dump({**obj, name: value})


def _raw(obj: dict[str, Any], name: str, literal: bytes) -> bytes:
    """The record with one field's JSON text replaced by ``literal`` (what json cannot dump)."""
    marker = "\x1epoison\x1e"
    return _dump({**obj, name: marker}).replace(json.dumps(marker).encode(), literal)


def poisons(topic: str, good: dict[str, Any]) -> list[Poison]:
    """Return one poison record per class for ``topic``, derived from the valid record ``good``."""
    if topic == TICKS_TOPIC:
        return _tick_poisons()
    key = str(good["out_trade_no"]).encode()
    amount, time, text = FIELDS[topic]
    values: dict[str, bytes] = {
        "not_json": b"{not json",
        "not_an_object": b"[1, 2, 3]",
        "invalid_utf8": b'{"out_trade_no": "\xff\xfe"}',
        "deep_nesting": b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "lone_surrogate": _raw(good, text, b'"\\ud800"'),
        "string_is_object": _with(good, text, {"nested": True}),
        "string_is_number": _with(good, text, 12345),
        "missing_field": _dump({k: v for k, v in good.items() if k != text}),
        "nul_in_id": _with(good, "out_trade_no", str(good["out_trade_no"]) + "\x00"),
    }
    if amount is not None:
        values |= {
            "amount_huge_digits": _raw(good, amount, HUGE_DIGITS),
            "amount_2_63": _with(good, amount, 2**63),
            "amount_negative": _with(good, amount, -1 if amount != "partition" else -2),
            "amount_float": _with(good, amount, 1.5),
            "amount_bool": _with(good, amount, True),
            "amount_string": _with(good, amount, "100"),
        }
    if time is not None:
        values |= {"time_object": _with(good, time, {"at": "2026-11-26"})}
        values |= {"time_number": _with(good, time, 1_764_000_000)}
        if topic != ANOMALIES_TOPIC:  # an anomaly's detected_at is free text
            values |= {"time_unparseable": _with(good, time, "yesterday at noon")}
    out = [Poison(name, topic, key, value) for name, value in values.items()]
    out.append(Poison("key_differs", topic, b"someone-else", _dump(good)))
    out.append(Poison("no_key", topic, None, _dump(good)))
    return out


def _tick_poisons() -> list[Poison]:
    now: Callable[[bytes], bytes] = lambda literal: b'{"now": ' + literal + b"}"  # noqa: E731
    values = {
        "not_json": b"{not json",
        "not_an_object": b'["2026-11-26T10:00:00+00:00"]',
        "invalid_utf8": b'{"now": "\xff"}',
        "deep_nesting": b'{"now": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "time_huge_digits": now(HUGE_DIGITS),
        "time_object": now(b'{"at": 1}'),
        "time_number": now(b"1764000000"),
        "time_unparseable": now(b'"tomorrow"'),
        "time_without_offset": now(b'"2026-11-26T10:00:00"'),
        "missing_field": b'{"later": "2026-11-26T10:00:00+00:00"}',
    }
    return [Poison(name, TICKS_TOPIC, None, value) for name, value in values.items()]
