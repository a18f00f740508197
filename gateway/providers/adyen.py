"""Adyen standard webhooks (notification batches), answered ``[accepted]``.

The body ``{"live", "notificationItems": [{"NotificationRequestItem": {...}}]}`` is a batch; each
item carries ``additionalData.hmacSignature``: the base64 HMAC-SHA256, keyed with the hex-decoded
HMAC key, of ``pspReference:originalReference:merchantAccountCode:merchantReference:value:
currency:eventCode:success`` (missing fields empty). Every item must match a configured key, or
the whole batch is refused. Successful ``AUTHORISATION``, ``REFUND`` and ``CANCELLATION`` items
become notifications; other items are acknowledged and not published.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import PrivateAttr, ValidationInfo, model_validator

from gateway.errors import AccountMismatchError, MalformedBodyError, SignatureError
from gateway.providers import fields
from gateway.providers.keys import Secret, check_material, loader
from gateway.providers.provider import Account, Kind, Provider, log, text_answer
from gateway.records import Notification, encode_raw_body

SIGNED_FIELDS = (
    "pspReference",
    "originalReference",
    "merchantAccountCode",
    "merchantReference",
    "value",
    "currency",
    "eventCode",
    "success",
)
# eventCode words; only items with ``success`` "true" are published.
KINDS: Mapping[str, Kind] = {
    "AUTHORISATION": "payment",
    "REFUND": "refund",
    "CANCELLATION": "close",
}
# What genuine items hold. No signed field may hold ``:``: the signing string joins them with
# colons, so a colon inside one would let the same signature cover differently cut fields.
FORMATS: Mapping[str, re.Pattern[str]] = {
    "pspReference": re.compile(r"[A-Za-z0-9]{16}"),
    "originalReference": re.compile(r"([A-Za-z0-9]{16})?"),
    "eventCode": re.compile(r"[A-Z_]{1,64}"),
    "currency": re.compile(r"[A-Z]{3}"),
    "success": re.compile(r"true|false"),
}


class AdyenAccount(Account):
    """An Adyen webhook: its HMAC keys (hex, decoded once at load) and the merchant accounts
    whose items it takes (empty: any, warned at start-up)."""

    provider: Literal["adyen"] = "adyen"
    hmac_keys: tuple[Secret, ...] = ()
    merchant_account_codes: frozenset[str] = frozenset()
    _keys: tuple[bytes, ...] = PrivateAttr(default=())

    def model_post_init(self, context: Any, /) -> None:
        self._keys = tuple(hex_key(k.get_secret_value()) for k in self.hmac_keys)

    @model_validator(mode="after")
    def _complete(self, info: ValidationInfo) -> AdyenAccount:
        self.require_some(self.hmac_keys, "secrets")
        if not all(self._keys):
            raise self.refuse("hmac_keys must be hex")
        check_material(self, self._keys, "hmac_keys")
        if not self.merchant_account_codes and loader(info) is not None:  # loaded from a file
            log.warning(
                "adyen account has no merchant_account_codes: items of any merchant account "
                "are accepted",
                extra={"account": self.name},
            )
        return self

    @property
    def key_bytes(self) -> tuple[bytes, ...]:
        """Return the HMAC keys, one per configured hex key."""
        return self._keys


def verify(
    body: bytes, headers: Mapping[str, str], account: AdyenAccount, *, now: float
) -> tuple[Notification, ...]:
    """Verify every item of an Adyen batch and normalize the ones paynotify maps.

    Raises:
        ContentTypeError, MalformedBodyError, SignatureError.
    """
    fields.check_content_type(fields.lower_headers(headers))
    items = batch_items(fields.parse_object(body))
    for item in items:
        expected = [item_signature(key, item).encode() for key in account.key_bytes if key]
        if not fields.any_equal(expected, [_given_signature(item)]):
            raise SignatureError("an item's hmacSignature matches no configured key")
    for item in items:
        check_formats(item)
        _check_merchant(item, account)
    mapped = (i for i in items if i.get("eventCode") in KINDS and i.get("success") == "true")
    return tuple(_normalize(item, body, account, now=now) for item in mapped)


def batch_items(batch: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return the ``NotificationRequestItem`` objects of a batch.

    Raises:
        MalformedBodyError: no items, or an item that is not an object.
    """
    wrapped = batch.get("notificationItems")
    if not isinstance(wrapped, list) or not wrapped:
        raise MalformedBodyError("no notificationItems", reason="missing_field")
    items = []
    for entry in wrapped:
        if not isinstance(entry, dict):
            raise MalformedBodyError("notification item is not an object", reason="field_type")
        items.append(fields.child(entry, "NotificationRequestItem"))
    return items


def signed_values(item: Mapping[str, Any]) -> dict[str, object]:
    """Return the eight signed fields of an item as sent (``""`` when absent).

    Raises:
        MalformedBodyError: ``amount`` is present but not an object.
    """
    amount = fields.child(item, "amount")
    values = {**item, "value": amount.get("value", ""), "currency": amount.get("currency", "")}
    return {name: values.get(name, "") for name in SIGNED_FIELDS}


def check_formats(item: Mapping[str, Any]) -> None:
    """Refuse an item whose signed fields are not what Adyen sends (see ``FORMATS``).

    Raises:
        MalformedBodyError: a field outside its format, a ``:`` in any signed field, or a
        ``value`` that is not an integer amount in minor units (when present).
    """
    values = signed_values(item)
    for name, value in values.items():
        text = _field_text(value)
        if ":" in text:
            raise MalformedBodyError(f"{name} holds ':'", reason="field_format")
        pattern = FORMATS.get(name)
        if pattern is not None and value != "" and not pattern.fullmatch(text):
            raise MalformedBodyError(f"{name} is not in its format", reason="field_format")
    if values["value"] != "":
        fields.minor_units(values, "value")


def _check_merchant(item: Mapping[str, Any], account: AdyenAccount) -> None:
    codes = account.merchant_account_codes
    if codes and item.get("merchantAccountCode") not in codes:
        raise AccountMismatchError(
            "merchantAccountCode is not this account's", reason="merchant_account"
        )


def signing_string(item: Mapping[str, Any]) -> str:
    """Return the 8-field string Adyen signs for one item.

    Raises:
        MalformedBodyError: a signed field is neither a string nor an integer.
    """
    return ":".join(_field_text(value) for value in signed_values(item).values())


def item_signature(key: bytes, item: Mapping[str, Any]) -> str:
    """Return the base64 HMAC-SHA256 of the item's signing string."""
    digest = hmac.new(key, signing_string(item).encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def _field_text(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise MalformedBodyError("a signed field has an unexpected type", reason="field_type")
    return str(value)


def _given_signature(item: Mapping[str, Any]) -> bytes:
    value = fields.child(item, "additionalData").get("hmacSignature")
    if not isinstance(value, str) or not value:
        raise SignatureError("item has no hmacSignature", reason="signature_missing")
    return value.encode()


def hex_key(key: str) -> bytes:
    """Return the HMAC key: the hex-decoded configured key (empty when it is not hex)."""
    try:
        return binascii.a2b_hex(key.strip())
    except (binascii.Error, ValueError):
        return b""


def _normalize(
    item: Mapping[str, Any], body: bytes, account: AdyenAccount, *, now: float
) -> Notification:
    event = fields.text(item, "eventCode")
    kind = KINDS[event]
    psp = fields.text(item, "pspReference")
    amount = fields.child(item, "amount")
    value = fields.minor_units(amount, "value")
    original = fields.optional_text(item, "originalReference")
    return Notification(
        provider="adyen",
        account=account.name,
        notify_id=f"{psp}:{event}",
        out_trade_no=fields.text(item, "merchantReference"),
        kind=kind,
        status=event,
        amount_minor=value,
        currency=fields.currency(amount.get("currency")),
        provider_trade_no=original if kind != "payment" and original else psp,
        occurred_at=fields.iso_time(item.get("eventDate")),
        received_at=fields.from_unix(now),
        raw_body_b64=encode_raw_body(body),
        succeeded=True,
        content_type=fields.JSON,
        refund_id=psp if kind == "refund" else None,
        refund_amount_minor=value if kind == "refund" else None,
    )


PROVIDER = Provider(
    account=AdyenAccount,
    verify=verify,
    success=text_answer("[accepted]"),
    kinds=KINDS,
)
