"""Alipay asynchronous notifications (open platform v1, ``trade_status_sync``).

Alipay POSTs an ``application/x-www-form-urlencoded`` body. The signature covers every parameter
but ``sign`` and ``sign_type``, URL-decoded in the body's ``charset``, sorted by key and joined as
``k=v`` with ``&`` (empty values included). ``RSA2`` is SHA256withRSA, ``RSA`` SHA1withRSA, both
PKCS#1 v1.5. The answer Alipay wants is the plain text ``success``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from urllib.parse import unquote_to_bytes

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from gateway.accounts import AlipayAccount
from gateway.errors import (
    AccountMismatchError,
    ContentTypeError,
    MalformedBodyError,
    SignatureError,
)
from gateway.records import Notification, encode_raw_body

CONTENT_TYPE = "application/x-www-form-urlencoded"
CHARSETS = {"utf-8": "utf-8", "utf8": "utf-8", "gbk": "gbk", "gb2312": "gb2312"}
HASHES = {"RSA2": hashes.SHA256, "RSA": hashes.SHA1}
PAID_STATUSES = frozenset({"TRADE_SUCCESS", "TRADE_FINISHED"})
CHINA = timezone(timedelta(hours=8))


def verify(
    body: bytes, headers: Mapping[str, str], account: AlipayAccount, *, now: float
) -> Notification:
    """Verify an Alipay notification and normalize it.

    Raises:
        ContentTypeError, MalformedBodyError, SignatureError, AccountMismatchError.
    """
    _check_content_type(headers.get("content-type", ""))
    params = parse_form(body)
    _check_signature(params, account)
    if params.get("app_id") != account.app_id:
        raise AccountMismatchError("app_id is not this account's", reason="app_id")
    if account.seller_id is not None and params.get("seller_id") != account.seller_id:
        raise AccountMismatchError("seller_id is not this account's", reason="seller_id")
    return _normalize(params, body, account, now=now)


def canonical_string(params: Mapping[str, str]) -> str:
    """Return the string Alipay signs: every parameter but sign/sign_type, sorted, k=v&k=v."""
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k not in ("sign", "sign_type"))


def parse_form(body: bytes) -> dict[str, str]:
    """Parse a form body into a dict, decoding values in the body's own ``charset`` field.

    Raises:
        MalformedBodyError: bad percent-encoding, a duplicated key, or an unknown charset.
    """
    pairs: list[tuple[bytes, bytes]] = []
    for chunk in body.split(b"&"):
        if not chunk:
            continue
        key, sep, value = chunk.partition(b"=")
        if not sep:
            raise MalformedBodyError("form field without '='")
        pairs.append((_unquote(key), _unquote(value)))
    charset = _charset(pairs)
    params: dict[str, str] = {}
    for key, value in pairs:
        try:
            name, text = key.decode(charset), value.decode(charset)
        except UnicodeDecodeError:
            raise MalformedBodyError(f"form field is not valid {charset}") from None
        if name in params:
            raise MalformedBodyError("form field repeated", reason="duplicate_field")
        params[name] = text
    return params


def _unquote(raw: bytes) -> bytes:
    if b"%" not in raw and b"+" not in raw:
        return raw
    return unquote_to_bytes(raw.replace(b"+", b" "))


def _charset(pairs: list[tuple[bytes, bytes]]) -> str:
    declared = [value for key, value in pairs if key == b"charset"]
    if not declared:
        return "utf-8"
    name = declared[0].decode("ascii", "replace").strip().lower()
    if name not in CHARSETS:
        raise MalformedBodyError("unsupported charset", reason="charset")
    return CHARSETS[name]


def _check_content_type(value: str) -> None:
    if value.split(";", 1)[0].strip().lower() != CONTENT_TYPE:
        raise ContentTypeError(f"expected {CONTENT_TYPE}")


def _check_signature(params: Mapping[str, str], account: AlipayAccount) -> None:
    sign_type = params.get("sign_type", "RSA2")
    if sign_type not in HASHES:
        raise SignatureError("unsupported sign_type", reason="sign_type")
    try:
        signature = base64.b64decode(params["sign"], validate=True)
    except (KeyError, binascii.Error, ValueError):
        raise SignatureError("missing or unparsable sign", reason="signature_missing") from None
    message = canonical_string(params).encode(_charset_name(params))
    for key in account.public_keys:
        try:
            key.verify(signature, message, padding.PKCS1v15(), HASHES[sign_type]())
        except InvalidSignature:
            continue
        return
    raise SignatureError("signature does not match any configured key")


def _charset_name(params: Mapping[str, str]) -> str:
    return CHARSETS[params.get("charset", "utf-8").strip().lower()]


def _normalize(
    params: Mapping[str, str], body: bytes, account: AlipayAccount, *, now: float
) -> Notification:
    status = _required(params, "trade_status")
    refund_total = _minor_or_none(params.get("refund_fee"))
    kind = _kind(status, refund_total, params)
    return Notification(
        provider="alipay",
        account=account.name,
        notify_id=_required(params, "notify_id"),
        out_trade_no=_required(params, "out_trade_no"),
        kind=kind,
        status=status,
        amount_minor=to_minor(_required(params, "total_amount")),
        currency=account.currency,
        provider_trade_no=params.get("trade_no", ""),
        occurred_at=_china_time(params.get("gmt_payment") or params.get("notify_time")),
        received_at=datetime.fromtimestamp(now, UTC).isoformat(),
        raw_body_b64=encode_raw_body(body),
        content_type=CONTENT_TYPE,
        refund_id=params.get("out_biz_no") if kind == "refund" else None,
        refund_total_minor=refund_total if kind == "refund" else None,
    )


def _kind(status: str, refund_total: int | None, params: Mapping[str, str]) -> str:
    if params.get("out_biz_no") and refund_total:
        return "refund"
    if status in PAID_STATUSES:
        return "payment"
    if status == "TRADE_CLOSED":
        return "close"
    raise MalformedBodyError("trade_status is not a notification status", reason="trade_status")


def _required(params: Mapping[str, str], name: str) -> str:
    value = params.get(name, "")
    if not value:
        raise MalformedBodyError(f"missing field {name}", reason="missing_field")
    return value


def to_minor(amount: str) -> int:
    """Convert a yuan amount such as ``"1.00"`` to integer fen (100), never through a float.

    Raises:
        MalformedBodyError: not a non-negative amount with at most two decimals.
    """
    try:
        value = Decimal(amount)
    except InvalidOperation:
        raise MalformedBodyError("amount is not a number", reason="amount") from None
    minor = value * 100
    if not value.is_finite() or value < 0 or minor != minor.to_integral_value():
        raise MalformedBodyError("amount is not a valid yuan amount", reason="amount")
    return int(minor)


def _minor_or_none(amount: str | None) -> int | None:
    return to_minor(amount) if amount else None


def _china_time(value: str | None) -> str | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.split(".", 1)[0])
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        return None
    return parsed.replace(tzinfo=CHINA).isoformat()
