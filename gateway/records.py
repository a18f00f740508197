"""The wire contract of the ``payment-notifications`` topic.

A :class:`Notification` is what the gateway publishes once a provider's request has been verified:
normalized (integer minor units, ISO currency, one ``kind`` per fact) and keyed by
``out_trade_no`` so that every record about one order lands on one partition.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, fields
from typing import Any, TypeVar

import orjson

NOTIFICATIONS_TOPIC = "payment-notifications"

KINDS = frozenset({"payment", "refund", "close"})

Self = TypeVar("Self", bound="JsonRecord")


class RecordError(ValueError):
    """A record could not be decoded: bad JSON, a missing field or a wrong type."""


class JsonRecord:
    """A topic value: a dataclass encoded as UTF-8 JSON; ``check`` validates a decoded one."""

    __slots__ = ()

    def to_bytes(self) -> bytes:
        """Encode as the topic's UTF-8 JSON value."""
        return orjson.dumps(asdict(self))  # type: ignore[call-overload]

    @classmethod
    def from_bytes(cls: type[Self], data: bytes) -> Self:
        """Decode a topic value.

        Raises:
            RecordError: not JSON, a missing field, or a value ``check`` refuses.
        """
        obj = decode_json_object(data)
        names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        try:
            record = cls(**{name: obj[name] for name in names if name in obj})
        except TypeError as exc:
            raise RecordError(f"{cls.__name__} is missing a field: {exc}") from None
        record.check()
        return record

    def check(self) -> None:
        """Raise RecordError when a decoded value is not acceptable."""


@dataclass(frozen=True, slots=True)
class Notification(JsonRecord):
    """One verified, normalized provider notification.

    ``amount_minor`` is the order's (paid) amount. For a refund, ``refund_id`` names the refund,
    ``refund_amount_minor`` is this refund's amount when the provider says it, and
    ``refund_total_minor`` the cumulative refunded amount when the provider says that instead
    (Alipay's ``refund_fee``). ``notify_id`` is the provider's id of this notification (Alipay
    ``notify_id``, WeChat ``id``, Stripe ``evt_…``, ``webhook-id``, Adyen ``pspReference`` and
    ``eventCode``): the same on every retry, so it is the deduplication key.
    """

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
    refund_amount_minor: int | None = None
    refund_total_minor: int | None = None

    def to_bytes(self) -> bytes:
        """Encode as the topic's UTF-8 JSON value (flat fields: no deep copy as ``asdict``)."""
        return orjson.dumps({name: getattr(self, name) for name in _NOTIFICATION_FIELDS})

    def key(self) -> bytes:
        """Return the Kafka key: the merchant's order number."""
        return self.out_trade_no.encode()

    def check(self) -> None:
        """Raise RecordError on an unknown kind, a non-integer amount or an empty id."""
        if self.kind not in KINDS:
            raise RecordError(f"unknown kind {self.kind!r}")
        if not isinstance(self.amount_minor, int) or isinstance(self.amount_minor, bool):
            raise RecordError("amount_minor must be an integer")
        for name in ("provider", "account", "notify_id", "out_trade_no", "currency"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise RecordError(f"{name} must be a non-empty string")

    def raw_body(self) -> bytes:
        """Return the provider's request body exactly as received."""
        return base64.b64decode(self.raw_body_b64)


_NOTIFICATION_FIELDS = tuple(f.name for f in fields(Notification))


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
