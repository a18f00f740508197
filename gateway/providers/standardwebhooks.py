"""Standard Webhooks (github.com/standard-webhooks/standard-webhooks, spec ``v1``).

Headers ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` (a space-separated list
of ``<version>,<base64>``). ``v1`` is the base64 HMAC-SHA256 of ``"<id>.<timestamp>." + body``
keyed with the base64-decoded ``whsec_`` secret; other versions are ignored. The timestamp must be
within the tolerance, both ways. The payload is paynotify's own documented shape:
``{"type", "timestamp", "data": {"id", "out_trade_no", "amount", "currency", "refund_id"}}``.
Any 2xx answers success (paynotify's is ``{"received": true}``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterator, Mapping
from typing import Any, Literal

from pydantic import Field, PrivateAttr, model_validator

from gateway.errors import SignatureError, UnhandledEventError
from gateway.providers import fields
from gateway.providers.keys import Secret, check_material
from gateway.providers.provider import RECEIVED, Account, Kind, Provider, one
from gateway.records import Notification, encode_raw_body

KINDS: Mapping[str, Kind] = {
    "payment.succeeded": "payment",
    "payment.closed": "close",
    "refund.succeeded": "refund",
}
PREFIX = "whsec_"


class StandardWebhooksAccount(Account):
    """A Standard Webhooks sender: its ``whsec_`` secrets, base64-decoded once at load."""

    provider: Literal["standardwebhooks"] = "standardwebhooks"
    signing_secrets: tuple[Secret, ...] = ()
    timestamp_tolerance_seconds: int = Field(default=300, ge=1, le=3600)
    _keys: tuple[bytes, ...] = PrivateAttr(default=())

    def model_post_init(self, context: Any, /) -> None:
        self._keys = tuple(secret_key(s.get_secret_value()) for s in self.signing_secrets)

    @model_validator(mode="after")
    def _complete(self) -> StandardWebhooksAccount:
        self.require_some(self.signing_secrets, "secrets")
        if not all(self._keys):
            raise self.refuse("signing_secrets must be whsec_ plus base64")
        check_material(self, self._keys, "signing_secrets")
        return self

    @property
    def key_bytes(self) -> tuple[bytes, ...]:
        """Return the HMAC keys, one per signing secret."""
        return self._keys


def verify(
    body: bytes, headers: Mapping[str, str], account: StandardWebhooksAccount, *, now: float
) -> Notification:
    """Verify a Standard Webhooks message and normalize it.

    Raises:
        ContentTypeError, SignatureError, StaleTimestampError, MalformedBodyError,
        UnhandledEventError.
    """
    lowered = fields.lower_headers(headers)
    fields.check_content_type(lowered)
    msg_id = fields.required_header(lowered, "webhook-id")
    timestamp = fields.required_header(lowered, "webhook-timestamp")
    given = list(signatures(fields.required_header(lowered, "webhook-signature")))
    fields.unix_seconds(timestamp)
    expected = [sign(key, msg_id, timestamp, body).encode() for key in account.key_bytes if key]
    if not fields.any_equal(expected, (g.encode() for g in given)):
        raise SignatureError("no v1 signature matches a configured secret")
    fields.check_fresh(int(timestamp), now, account.timestamp_tolerance_seconds)
    return _normalize(fields.parse_object(body), msg_id, body, account, now=now)


def signatures(header: str) -> Iterator[str]:
    """Yield the base64 part of every ``v1,<base64>`` token, skipping other versions."""
    for token in header.split():
        version, sep, value = token.partition(",")
        if sep and version == "v1" and value:
            yield value


def secret_key(secret: str) -> bytes:
    """Return the HMAC key: the base64-decoded secret without its ``whsec_`` prefix."""
    text = secret.removeprefix(PREFIX)
    try:
        return base64.b64decode(text + "==")
    except (binascii.Error, ValueError):
        return b""


def sign(key: bytes, msg_id: str, timestamp: str, body: bytes) -> str:
    """Return the ``v1`` base64 signature (without the ``v1,`` prefix)."""
    message = f"{msg_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode("ascii")


def _normalize(
    payload: dict[str, Any],
    msg_id: str,
    body: bytes,
    account: StandardWebhooksAccount,
    *,
    now: float,
) -> Notification:
    event_type = fields.text(payload, "type")
    if event_type not in KINDS:
        raise UnhandledEventError("event type is not mapped")
    kind = KINDS[event_type]
    data = fields.child(payload, "data")
    amount = fields.minor_units(data, "amount")
    return Notification(
        provider="standardwebhooks",
        account=account.name,
        notify_id=msg_id,
        out_trade_no=fields.text(data, "out_trade_no"),
        kind=kind,
        status=event_type,
        amount_minor=amount,
        currency=fields.currency(data.get("currency")),
        provider_trade_no=fields.optional_text(data, "id") or "",
        occurred_at=fields.iso_time(payload.get("timestamp")),
        received_at=fields.from_unix(now),
        raw_body_b64=encode_raw_body(body),
        succeeded=True,
        content_type=fields.JSON,
        refund_id=fields.text(data, "refund_id") if kind == "refund" else None,
        refund_amount_minor=amount if kind == "refund" else None,
    )


PROVIDER = Provider(
    account=StandardWebhooksAccount,
    verify=one(verify),
    success=RECEIVED,
    kinds=KINDS,
)
