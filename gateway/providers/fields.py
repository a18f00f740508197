"""Parsing pieces the JSON providers share: headers, JSON objects, typed fields, timestamps.

Every failure becomes the gateway's own error: a header that cannot be parsed is a
``SignatureError`` (the request is not proven genuine), a field that cannot be parsed once the
signature matched is a ``MalformedBodyError``.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from gateway.errors import (
    ContentTypeError,
    MalformedBodyError,
    SignatureError,
    StaleTimestampError,
)

JSON = "application/json"
# The largest amount in minor units a record carries: a signed 64-bit integer.
MAX_MINOR = 2**63 - 1
# Unix times that are a date between 1970 and 9999 (datetime's last year).
MAX_UNIX = 253402300799
# A JSON string escape of a UTF-16 surrogate; only such an escape can make a lone surrogate.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Return the headers with lower-case names (HTTP header names are case-insensitive)."""
    return {name.lower(): value for name, value in headers.items()}


def check_content_type(headers: Mapping[str, str], expected: str = JSON) -> None:
    """Refuse a request whose media type is not ``expected``.

    Raises:
        ContentTypeError: another or no media type.
    """
    value = headers.get("content-type", "")
    if value.split(";", 1)[0].strip().lower() != expected:
        raise ContentTypeError(f"expected {expected}")


def required_header(headers: Mapping[str, str], name: str) -> str:
    """Return a non-empty header value.

    Raises:
        SignatureError: the header is missing or empty.
    """
    value = headers.get(name, "").strip()
    if not value:
        raise SignatureError(f"missing header {name}", reason="header_missing")
    return value


def unix_seconds(value: str) -> int:
    """Parse a decimal unix timestamp from a signature header.

    Raises:
        SignatureError: not a decimal integer.
    """
    if not (value.isascii() and value.isdigit()) or len(value) > 12:
        raise SignatureError("timestamp is not a unix time", reason="header_unparsable")
    return int(value)


def check_fresh(timestamp: int, now: float, tolerance: int) -> None:
    """Refuse a timestamp more than ``tolerance`` seconds away from ``now``, either way.

    Raises:
        StaleTimestampError: too old or too far in the future.
    """
    if abs(now - timestamp) > tolerance:
        raise StaleTimestampError("timestamp outside the tolerance")


def any_equal(expected: Iterable[bytes], given: Iterable[bytes]) -> bool:
    """Return whether any expected value equals any given one, comparing in constant time."""
    candidates = list(given)
    return any(hmac.compare_digest(e, g) for e in expected for g in candidates)


def parse_object(data: bytes) -> dict[str, Any]:
    """Parse a UTF-8 JSON object, refusing what makes its meaning ambiguous or unencodable.

    Refused: a duplicated key (parsers disagree on which copy wins), ``NaN``/``Infinity``, an
    integer longer than Python converts (4,300 digits), nesting deeper than the interpreter's
    recursion limit, and a string holding a lone UTF-16 surrogate (it has no UTF-8 encoding).

    Raises:
        MalformedBodyError: not UTF-8, not JSON, not an object, or one of the above.
    """
    try:
        obj = json.loads(
            data.decode("utf-8"), object_pairs_hook=_unique_keys, parse_constant=_no_constant
        )
    except (UnicodeDecodeError, ValueError, RecursionError):  # JSONDecodeError is a ValueError
        raise MalformedBodyError("body is not a UTF-8 JSON document") from None
    if not isinstance(obj, dict):
        raise MalformedBodyError("body is not a JSON object")
    if _SURROGATE_ESCAPE.search(data) and not _encodable(obj):
        raise MalformedBodyError("body holds a lone surrogate", reason="surrogate")
    return obj


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicated key")
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _encodable(value: Any) -> bool:
    """Return whether every string (keys included) in a parsed document encodes as UTF-8."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and not is_utf8(item):
            return False
    return True


def is_utf8(value: str) -> bool:
    """Return whether a string can be encoded as UTF-8 (holds no lone surrogate)."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def child(obj: Mapping[str, Any], name: str) -> dict[str, Any]:
    """Return a nested object, or an empty one when the field is absent.

    Raises:
        MalformedBodyError: the field is present but not an object.
    """
    value = obj.get(name, {})
    if not isinstance(value, dict):
        raise MalformedBodyError(f"field {name} is not an object", reason="field_type")
    return value


def text(obj: Mapping[str, Any], name: str) -> str:
    """Return a required, non-empty string field.

    Raises:
        MalformedBodyError: missing, empty or not a string.
    """
    value = obj.get(name)
    if not isinstance(value, str) or not value:
        raise MalformedBodyError(f"missing field {name}", reason="missing_field")
    return value


def optional_text(obj: Mapping[str, Any], name: str) -> str | None:
    """Return a string field, or None when it is absent or empty.

    Raises:
        MalformedBodyError: present but not a string.
    """
    value = obj.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MalformedBodyError(f"field {name} is not a string", reason="field_type")
    return value


def minor_units(obj: Mapping[str, Any], name: str) -> int:
    """Return a required integer amount in minor units, between 0 and 2^63-1.

    Raises:
        MalformedBodyError: missing, negative, beyond int64, a float, a string or a boolean.
    """
    value = obj.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_MINOR:
        raise MalformedBodyError(f"{name} is not an amount in minor units", reason="amount")
    return value


def currency(value: object) -> str:
    """Return an ISO 4217 code in upper case.

    Raises:
        MalformedBodyError: not three ASCII letters.
    """
    if not isinstance(value, str) or len(value) != 3 or not value.isascii() or not value.isalpha():
        raise MalformedBodyError("currency is not an ISO 4217 code", reason="currency")
    return value.upper()


def iso_time(value: object) -> str | None:
    """Return an ISO-8601 time with a UTC offset, rewritten by ``isoformat``, or None when it is
    absent, not ISO-8601, without an offset, or outside the years 1-9999 once in UTC."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            return None
        parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    return parsed.isoformat()


def from_unix(seconds: float) -> str:
    """Return a unix time as an ISO-8601 UTC string.

    Raises:
        MalformedBodyError: before 1970 or after the year 9999.
    """
    if not 0 <= seconds <= MAX_UNIX:
        raise MalformedBodyError("time is not a plausible unix time", reason="timestamp")
    return datetime.fromtimestamp(seconds, UTC).isoformat()
