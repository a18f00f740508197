"""The wire contract of the ``payment-notifications`` topic.

A :class:`Notification` is what the gateway publishes once a provider's request has been verified:
normalized (integer minor units, ISO currency, one ``kind`` per fact) and keyed by
``out_trade_no`` so that every record about one order lands on one partition.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson

NOTIFICATIONS_TOPIC = "payment-notifications"

KINDS = frozenset({"payment", "refund", "close"})
# How a notification came: pushed to the gateway, or proven by querying the provider (reconcile).
SOURCES = frozenset({"webhook", "query"})
# Amounts are minor units in a signed 64-bit integer (what Kafka clients, databases and JSON
# parsers of other languages all hold without loss).
MAX_MINOR = 2**63 - 1
# The longest value of each text field (the database's columns hold these, see sinks/rows.py);
# a time is ISO-8601, 32 characters at most when written by ``datetime.isoformat``.
TEXT_LIMITS = {
    "provider": 32,
    "account": 64,
    "notify_id": 192,
    "out_trade_no": 128,
    "kind": 16,
    "status": 64,
    "currency": 3,
    "provider_trade_no": 128,
    "content_type": 128,
    "refund_id": 128,
}
TIME_LIMIT = 40
REQUIRED_TEXT = ("provider", "account", "notify_id", "out_trade_no", "currency")

Self = TypeVar("Self", bound="JsonRecord")
Record = TypeVar("Record")


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
        try:
            record = from_fields(cls, obj)  # the usual case: exactly the record's fields
        except TypeError:
            record = cls._from_other_fields(obj)
        try:
            record.check()
        except RecordError:
            raise
        except (TypeError, ValueError) as exc:  # a check meeting a type it did not expect
            raise RecordError(f"{cls.__name__} has a field of the wrong type") from exc
        return record

    @classmethod
    def _from_other_fields(cls: type[Self], obj: dict[str, Any]) -> Self:
        """Build a record from a value with fields it does not know (a newer writer's: ignored)
        or without some it needs (RecordError)."""
        try:
            return cls(**{name: obj[name] for name in field_names(cls) if name in obj})
        except TypeError as exc:
            raise RecordError(f"{cls.__name__} is missing a field: {exc}") from None

    def check(self) -> None:
        """Raise RecordError when a decoded value is not acceptable."""


@dataclass(frozen=True, slots=True)
class Notification(JsonRecord):
    """One verified, normalized provider notification.

    ``amount_minor`` is the order's (paid) amount. For a refund, ``refund_id`` names the refund,
    ``refund_amount_minor`` is this refund's amount when the provider says it, and
    ``refund_total_minor`` the cumulative refunded amount when the provider says that instead
    (Alipay's ``refund_fee``). ``succeeded`` says whether the provider reports the fact as done
    (False: a refund the provider says failed or was closed): the stream reads it instead of any
    provider's status words. ``notify_id`` is the provider's id of this notification (Alipay
    ``notify_id``, WeChat ``id``, Stripe ``evt_…``, ``webhook-id``, Adyen ``pspReference`` and
    ``eventCode``): the same on every retry, so it is the deduplication key. ``source`` says how
    it came: ``webhook`` (the gateway) or ``query`` (``paynotify reconcile`` asked the provider).
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
    succeeded: bool
    content_type: str = ""
    refund_id: str | None = None
    refund_amount_minor: int | None = None
    refund_total_minor: int | None = None
    source: str = "webhook"

    def to_bytes(self) -> bytes:
        """Encode as the topic's UTF-8 JSON value (flat fields: no deep copy as ``asdict``)."""
        return orjson.dumps({name: getattr(self, name) for name in field_names(Notification)})

    def key(self) -> bytes:
        """Return the Kafka key: the merchant's order number."""
        return self.out_trade_no.encode()

    def check(self) -> None:
        """Raise RecordError unless every field is what the stream can rely on.

        Text fields are strings that encode as UTF-8, within their length; the ids, order number,
        provider, account and currency are non-empty (currency three upper-case letters);
        amounts are integers in 0..2^63-1 (optional ones may be None); ``received_at`` and
        ``occurred_at`` (or None) are ISO-8601 times with a UTC offset; the raw body is base64.
        """
        if not self._plainly_valid():
            self._check_fields()
        _check_time("received_at", self.received_at, required=True)
        _check_time("occurred_at", self.occurred_at, required=False)
        _check_base64(self.raw_body_b64)

    def _plainly_valid(self) -> bool:
        """Return whether the texts, amounts and flags pass :meth:`_check_fields`, tested the
        cheap way: every text at once (one join, one NUL search, one ASCII test), lengths and
        types in C loops. False sends the record to the field-by-field checks, which raise
        the precise error (and accept non-ASCII text that encodes as UTF-8).

        ``check`` was a fifth of the stream's own time per record; a property test holds this
        to the field-by-field checks.
        """
        refund_id = "" if self.refund_id is None else self.refund_id
        texts = (  # in TEXT_LIMITS' order
            self.provider,
            self.account,
            self.notify_id,
            self.out_trade_no,
            self.kind,
            self.status,
            self.currency,
            self.provider_trade_no,
            self.content_type,
            refund_id,
        )
        try:
            joined = "".join(texts)
        except TypeError:  # a value that is not text
            return False
        return (
            joined.isascii()
            and "\x00" not in joined
            and all(map(int.__le__, map(len, texts), _TEXT_LIMITS))
            and all(texts[:4])  # provider, account, notify_id, out_trade_no: not empty
            and self.kind in KINDS
            and self.currency.isalpha()
            and self.currency.isupper()
            and type(self.amount_minor) is int
            and 0 <= self.amount_minor <= MAX_MINOR
            and _plain_optional_amount(self.refund_amount_minor)
            and _plain_optional_amount(self.refund_total_minor)
            and type(self.succeeded) is bool
            and type(self.source) is str
            and self.source in SOURCES
        )

    def _check_fields(self) -> None:
        """Raise RecordError naming the first text, amount or flag that is not acceptable."""
        if not isinstance(self.kind, str) or self.kind not in KINDS:
            raise RecordError(f"unknown kind {self.kind!r:.40}")
        for name, limit in TEXT_LIMITS.items():
            value = getattr(self, name)
            if value is None and name == "refund_id":
                continue
            _check_text(name, value, limit, required=name in REQUIRED_TEXT)
        if not (self.currency.isascii() and self.currency.isalpha() and self.currency.isupper()):
            raise RecordError("currency must be three upper-case letters")
        _check_amount("amount_minor", self.amount_minor, required=True)
        _check_amount("refund_amount_minor", self.refund_amount_minor, required=False)
        _check_amount("refund_total_minor", self.refund_total_minor, required=False)
        if not isinstance(self.succeeded, bool):
            raise RecordError("succeeded must be true or false")
        if not isinstance(self.source, str) or self.source not in SOURCES:
            raise RecordError(f"unknown source {self.source!r:.40}")

    def raw_body(self) -> bytes:
        """Return the provider's request body exactly as received."""
        return base64.b64decode(self.raw_body_b64)


_TEXT_LIMITS = tuple(TEXT_LIMITS.values())  # ``Notification._plainly_valid`` lists the texts so


def _plain_optional_amount(value: object) -> bool:
    return value is None or (type(value) is int and 0 <= value <= MAX_MINOR)


def _check_text(name: str, value: object, limit: int, *, required: bool) -> None:
    if not isinstance(value, str) or (required and not value):
        raise RecordError(f"{name} must be a non-empty string" if required else f"{name}: text")
    if len(value) > limit:
        raise RecordError(f"{name} is longer than {limit} characters")
    if "\x00" in value:  # PostgreSQL's text cannot hold it
        raise RecordError(f"{name} holds a NUL character")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise RecordError(f"{name} holds a lone surrogate") from None


def _check_amount(name: str, value: object, *, required: bool) -> None:
    if value is None and not required:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise RecordError(f"{name} must be an integer")
    if not 0 <= value <= MAX_MINOR:
        raise RecordError(f"{name} must be between 0 and 2^63-1")


def _check_time(name: str, value: object, *, required: bool) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str) or len(value) > TIME_LIMIT:
        raise RecordError(f"{name} must be an ISO-8601 time")
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError("no UTC offset")
        parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise RecordError(f"{name} must be an ISO-8601 time with a UTC offset") from None


def _check_base64(value: object) -> None:
    if not isinstance(value, str):
        raise RecordError("raw_body_b64 must be a string")
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise RecordError("raw_body_b64 is not base64") from None


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def field_names(cls: type) -> tuple[str, ...]:
    """Return a record class's field names (``dataclasses.fields`` walks them on every call)."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


def from_fields(cls: type[Record], obj: dict[str, Any]) -> Record:
    """Return ``cls(**obj)``, passing the values by position when ``obj`` holds exactly the
    record's fields in their order (what every writer of ours produces).

    Python matches keyword arguments to parameters by name; names parsed from JSON are not the
    interned parameter names, so each is compared as text against the parameters in turn.
    Same values, same order: the same record.

    Raises:
        TypeError: a missing or unknown field (as ``cls(**obj)`` does).
    """
    if tuple(obj) == field_names(cls):
        return cls(*obj.values())
    return cls(**obj)


def encode_raw_body(body: bytes) -> str:
    """Encode a request body for the ``raw_body_b64`` audit field."""
    return base64.b64encode(body).decode("ascii")


def decode_json_object(data: bytes) -> dict[str, Any]:
    """Parse a UTF-8 JSON object with orjson (faster than the standard library's parser).

    orjson is the stricter parser: it also refuses integers beyond 64 bits, NaN and Infinity,
    escaped lone surrogates and nesting past 1,024 levels, none of which a record may hold.

    Raises:
        RecordError: not UTF-8, not JSON, or not an object.
    """
    try:
        obj = orjson.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise RecordError(f"value is not UTF-8 JSON: {exc.__class__.__name__}") from None
    if not isinstance(obj, dict):
        raise RecordError("value is not a JSON object")
    return obj
