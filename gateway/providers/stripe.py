"""Stripe webhook events, verified as ``docs.stripe.com/webhooks#verify-manually`` describes.

``Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...][,v0=...]``: each ``v1`` is the hex
HMAC-SHA256 of ``"<t>." + body`` keyed with the whole ``whsec_...`` string (not base64-decoded).
Only ``v1`` counts (``v0`` and unknown schemes are ignored, so no downgrade); several ``v1`` appear
while a rolled secret is still active. The timestamp must be within the account's tolerance.
The order number is read from the object's ``metadata`` under ``order_id_metadata_key``. Any 2xx
answers success (paynotify's is ``{"received": true}``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, PrivateAttr, SecretStr, model_validator

from gateway.errors import MalformedBodyError, SignatureError, UnhandledEventError
from gateway.providers import fields
from gateway.providers.keys import Secret, check_material
from gateway.providers.provider import RECEIVED, Kind, Provider, one
from gateway.providers.query import Reconcilable
from gateway.records import Notification, encode_raw_body

HEADER = "stripe-signature"
PREFIX = "whsec_"
API_KEY_PREFIXES = ("sk_", "rk_")  # a secret key, or a restricted (read-only) one
# Event types; ``checkout.session.completed`` is a payment only once ``payment_status`` is paid.
KINDS: Mapping[str, Kind] = {
    "payment_intent.succeeded": "payment",
    "checkout.session.completed": "payment",
    "charge.refunded": "refund",
}


class StripeAccount(Reconcilable):
    """A Stripe endpoint: its signing secrets (several while one is rolled). The HMAC key is the
    whole ``whsec_...`` string, encoded once at load. For reconciliation, an API key that may
    read PaymentIntents (``sk_...`` or a restricted ``rk_...``)."""

    provider: Literal["stripe"] = "stripe"
    signing_secrets: tuple[Secret, ...] = ()
    timestamp_tolerance_seconds: int = Field(default=300, ge=1, le=3600)
    order_id_metadata_key: str = "out_trade_no"
    api_key: Secret = Field(default=SecretStr(""), repr=False)
    _keys: tuple[bytes, ...] = PrivateAttr(default=())

    def model_post_init(self, context: Any, /) -> None:
        self._keys = tuple(s.get_secret_value().encode("utf-8") for s in self.signing_secrets)

    @model_validator(mode="after")
    def _complete(self) -> StripeAccount:
        self.require_some(self.signing_secrets, "secrets")
        # What follows whsec_ is the key material (the prefix is no secret).
        material = (key.removeprefix(PREFIX.encode()) for key in self._keys)
        check_material(self, material, "signing_secrets")
        self.check_reconcile({"api_key": self.reconciles})
        key = self.api_key.get_secret_value()
        if key and not key.startswith(API_KEY_PREFIXES):
            raise self.refuse("api_key must be a secret (sk_) or restricted (rk_) API key")
        check_material(self, [key.encode("utf-8")[3:]] if key else [], "api_key")
        return self

    @property
    def reconciles(self) -> bool:
        """Return whether an API key is configured (to query PaymentIntents)."""
        return bool(self.api_key.get_secret_value())

    @property
    def key_bytes(self) -> tuple[bytes, ...]:
        """Return the HMAC keys, one per signing secret."""
        return self._keys


def verify(
    body: bytes, headers: Mapping[str, str], account: StripeAccount, *, now: float
) -> Notification:
    """Verify a Stripe event and normalize it.

    Raises:
        ContentTypeError, SignatureError, StaleTimestampError, MalformedBodyError,
        UnhandledEventError.
    """
    lowered = fields.lower_headers(headers)
    fields.check_content_type(lowered)
    timestamp, signatures = parse_header(fields.required_header(lowered, HEADER))
    expected = [
        sign(key, timestamp, body).encode()
        for key in account.key_bytes
        if key  # an empty key would let anyone sign (the account model refuses it too)
    ]
    if not fields.any_equal(expected, (s.encode() for s in signatures)):
        raise SignatureError("no v1 signature matches a configured secret")
    fields.check_fresh(int(timestamp), now, account.timestamp_tolerance_seconds)
    return _normalize(fields.parse_object(body), body, account, now=now)


def parse_header(value: str) -> tuple[str, list[str]]:
    """Split ``t=...,v1=...`` into the timestamp text and the ``v1`` signatures.

    Raises:
        SignatureError: no ``t``, an unparsable ``t``, or no ``v1``.
    """
    timestamp = ""
    signatures: list[str] = []
    for item in value.split(","):
        scheme, _, signature = item.strip().partition("=")
        if scheme == "t":
            timestamp = signature
        elif scheme == "v1" and signature:
            signatures.append(signature)
    fields.unix_seconds(timestamp)
    if not signatures:
        raise SignatureError("no v1 signature in Stripe-Signature", reason="header_unparsable")
    return timestamp, signatures


def expected_signature(secret: str, timestamp: str, body: bytes) -> str:
    """Return the hex ``v1`` signature of ``body`` sent at ``timestamp`` with ``secret``."""
    return sign(secret.encode("utf-8"), timestamp, body)


def sign(key: bytes, timestamp: str, body: bytes) -> str:
    """Return the hex ``v1`` signature of ``body`` sent at ``timestamp`` with a decoded key."""
    message = timestamp.encode("ascii") + b"." + body
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _normalize(
    event: dict[str, Any], body: bytes, account: StripeAccount, *, now: float
) -> Notification:
    event_type = fields.text(event, "type")
    obj = fields.child(fields.child(event, "data"), "object")
    kind, amount, trade_no = _facts(event_type, obj)
    refund_total = fields.minor_units(obj, "amount_refunded") if kind == "refund" else None
    created = event.get("created")
    return Notification(
        provider="stripe",
        account=account.name,
        notify_id=fields.text(event, "id"),
        out_trade_no=_order_id(obj, account.order_id_metadata_key),
        kind=kind,
        status=event_type,
        amount_minor=amount,
        currency=fields.currency(obj.get("currency")),
        provider_trade_no=trade_no,
        occurred_at=fields.from_unix(created) if isinstance(created, int) else None,
        received_at=fields.from_unix(now),
        raw_body_b64=encode_raw_body(body),
        succeeded=True,
        content_type=fields.JSON,
        refund_id=_latest_refund(obj) if kind == "refund" else None,
        refund_total_minor=refund_total,
    )


def _facts(event_type: str, obj: Mapping[str, Any]) -> tuple[str, int, str]:
    """Return (kind, amount in minor units, provider trade number) for a mapped event."""
    intent = fields.optional_text(obj, "payment_intent")
    kind = KINDS.get(event_type)
    if kind is None:
        raise UnhandledEventError("event type is not mapped")
    if event_type == "payment_intent.succeeded":
        amount = obj.get("amount_received") or obj.get("amount")
        return kind, fields.minor_units({"amount": amount}, "amount"), fields.text(obj, "id")
    if event_type == "checkout.session.completed":
        if obj.get("payment_status") != "paid":
            raise UnhandledEventError("checkout session is not paid yet")
        return kind, fields.minor_units(obj, "amount_total"), intent or fields.text(obj, "id")
    return kind, fields.minor_units(obj, "amount"), intent or fields.text(obj, "id")


def _order_id(obj: Mapping[str, Any], key: str) -> str:
    metadata = fields.child(obj, "metadata")
    value = metadata.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedBodyError("order number missing from metadata", reason="order_id_missing")
    return value


def _latest_refund(obj: Mapping[str, Any]) -> str | None:
    refunds = fields.child(obj, "refunds").get("data")
    if isinstance(refunds, list) and refunds and isinstance(refunds[0], dict):
        return fields.optional_text(refunds[0], "id")
    return None


PROVIDER = Provider(
    account=StripeAccount,
    verify=one(verify),
    success=RECEIVED,
    kinds=KINDS,
)
