"""Absurd payloads for the signed fuzz tests: values no genuine provider sends (huge and negative
numbers, NaN-like text, lone surrogates, deep nesting, absurd times, missing and duplicated
fields), written as JSON text that Python's ``json`` module could not always write itself."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st


@dataclass(frozen=True)
class Raw:
    """A JSON token written as is (``NaN``, a 4,400-digit integer, 3,000 nested arrays)."""

    text: str


@dataclass(frozen=True)
class Pairs:
    """A JSON object written from its pairs, so that a key may appear twice."""

    items: tuple[tuple[str, Any], ...]


def dump(value: Any) -> bytes:
    """Write ``value`` as ASCII JSON (lone surrogates become ``\\udXXX`` escapes)."""
    return _text(value).encode("ascii")


def _text(value: Any) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Pairs):
        return "{" + ",".join(f"{json.dumps(k)}:{_text(v)}" for k, v in value.items) + "}"
    if isinstance(value, dict):
        return _text(Pairs(tuple(value.items())))
    if isinstance(value, list):
        return "[" + ",".join(_text(v) for v in value) + "]"
    return json.dumps(value)


def signing_text(value: Any) -> str:
    """Return a value as a provider would put it in a signing string (Adyen: ``str(value)``)."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, bool):
        return str(value)
    return str(value) if isinstance(value, int | str) else json.dumps(value)


ABSURD_NUMBERS = (
    st.sampled_from([-1, -(2**63) - 1, 2**63, 2**64, 10**30, 0, 2**63 - 1, 1.5, -0.0, 1e308])
    | st.integers()
)
ABSURD_RAW = st.sampled_from(
    [
        Raw("NaN"),
        Raw("-Infinity"),
        Raw("1e999"),
        Raw("1" + "0" * 4400),
        Raw("-" + "9" * 4400),
        Raw("[" * 3000 + "]" * 3000),
        Raw('{"a":' * 3000 + "1" + "}" * 3000),
    ]
)
ABSURD_TEXT = st.sampled_from(
    [
        "",
        "\ud800",
        "a\udfffb",
        "NaN",
        "sNaN",
        "Infinity",
        "-1",
        "1e999",
        "0x10",
        "1" * 40,
        "9999-12-31T23:59:59-23:59",
        "0001-01-01T00:00:00+14:00",
        "10000-01-01T00:00:00Z",
        "2026-13-45T99:99:99Z",
        "a:b",
        "a&b=c",
        "x" * 300,
    ]
) | st.text(max_size=40)
ABSURD = ABSURD_NUMBERS | ABSURD_RAW | ABSURD_TEXT | st.booleans() | st.none() | st.just([])


@st.composite
def mutated(draw: st.DrawFn, payload: dict[str, Any], depth: int = 3) -> Any:
    """Return ``payload`` with one to three of its fields (at any depth) replaced by an absurd
    value, removed, or duplicated with an absurd value."""
    for _ in range(draw(st.integers(1, 3))):
        payload = _mutate_once(draw, payload, depth)
    return payload


def _mutate_once(draw: st.DrawFn, obj: Any, depth: int) -> Any:
    if isinstance(obj, Pairs):
        obj = dict(obj.items)  # a duplicate collapses when mutated again: fine
    if not isinstance(obj, dict) or not obj:
        return draw(ABSURD)
    key = draw(st.sampled_from(sorted(obj)))
    child = obj[key]
    action = draw(st.sampled_from(["replace", "remove", "duplicate", "descend"]))
    if action == "descend" and depth > 0 and isinstance(child, dict):
        return {**obj, key: _mutate_once(draw, child, depth - 1)}
    if action == "remove":
        return {k: v for k, v in obj.items() if k != key}
    if action == "duplicate":
        return Pairs((*obj.items(), (key, draw(ABSURD))))
    return {**obj, key: draw(ABSURD)}
