"""The wire contract of the ``payment-notifications`` topic.

A :class:`Notification` is what the gateway publishes once a provider's request has been verified:
normalized (integer minor units, ISO currency, one ``kind`` per fact) and keyed by
``out_trade_no`` so that every record about one order lands on one partition.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, fields
from typing import Any

NOTIFICATIONS_TOPIC = "payment-notifications"

KINDS = frozenset({"payment", "refund", "close"})


class RecordError(ValueError):
    """A record could not be decoded: bad JSON, a missing field or a wrong type."""


@dataclass(frozen=True, slots=True)
class Notification:
    """One verified, normalized provider notification."""

    provider: str
    account: str
    notify_id: str
    out_trade_no: str
    kind: str
    status: str
    amount_minor: int
    currency: str
    provider_trade_no: str
    occurred_at: str | None
    received_at: str
    raw_body_b64: str
    content_type: str = ""
    refund_id: str | None = None
    refund_total_minor: int | None = None

    def key(self) -> bytes:
        """Return the Kafka key: the merchant's order number."""
        return self.out_trade_no.encode()

    def to_bytes(self) -> bytes:
        """Encode as the topic's UTF-8 JSON value."""
        return json.dumps(asdict(self), separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Notification:
        """Decode a topic value.

        Raises:
            RecordError: the value is not a valid notification.
        """
        obj = decode_json_object(data)
        try:
            note = cls(**{f.name: obj[f.name] for f in fields(cls) if f.name in obj})
        except TypeError as exc:
            raise RecordError(f"notification is missing a field: {exc}") from None
        _check_types(note)
        return note

    def raw_body(self) -> bytes:
        """Return the provider's request body exactly as received."""
        return base64.b64decode(self.raw_body_b64)


def encode_raw_body(body: bytes) -> str:
    """Encode a request body for the ``raw_body_b64`` audit field."""
    return base64.b64encode(body).decode("ascii")


def decode_json_object(data: bytes) -> dict[str, Any]:
    """Parse a UTF-8 JSON object.

    Raises:
        RecordError: not UTF-8, not JSON, or not an object.
    """
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordError(f"value is not UTF-8 JSON: {exc.__class__.__name__}") from None
    if not isinstance(obj, dict):
        raise RecordError("value is not a JSON object")
    return obj


def _check_types(note: Notification) -> None:
    if note.kind not in KINDS:
        raise RecordError(f"unknown kind {note.kind!r}")
    if not isinstance(note.amount_minor, int) or isinstance(note.amount_minor, bool):
        raise RecordError("amount_minor must be an integer")
    for name in ("provider", "account", "notify_id", "out_trade_no", "currency"):
        value = getattr(note, name)
        if not isinstance(value, str) or not value:
            raise RecordError(f"{name} must be a non-empty string")
