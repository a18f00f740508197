"""Alipay asynchronous notifications (open platform v1, ``trade_status_sync``).

Alipay POSTs an ``application/x-www-form-urlencoded`` body. The signature covers every parameter
but ``sign`` and ``sign_type``, URL-decoded in the body's ``charset``, sorted by key and joined as
``k=v`` with ``&`` (empty values included). ``RSA2`` is SHA256withRSA, ``RSA`` SHA1withRSA, both
PKCS#1 v1.5. The answer Alipay wants is the plain text ``success``; any refusal is the plain
text ``fail``, and a bad signature is answered ``400`` (not ``401``) as Alipay's SDKs do.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Literal
from urllib.parse import unquote_to_bytes

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from pydantic import Field, model_validator

from gateway.errors import (
    AccountMismatchError,
    ContentTypeError,
    GatewayError,
    MalformedBodyError,
    SignatureError,
)
from gateway.providers.keys import PrivateKey, PublicKey
from gateway.providers.provider import Answer, Kind, Provider, one, text_answer
from gateway.providers.query import Reconcilable
from gateway.records import Notification, encode_raw_body

CONTENT_TYPE = "application/x-www-form-urlencoded"
CHARSETS = {"utf-8": "utf-8", "utf8": "utf-8", "gbk": "gbk", "gb2312": "gb2312"}
HASHES = {"RSA2": hashes.SHA256, "RSA": hashes.SHA1}
# trade_status words; a notification that carries out_biz_no and refund_fee is a refund.
KINDS: Mapping[str, Kind] = {
    "TRADE_SUCCESS": "payment",
    "TRADE_FINISHED": "payment",
    "TRADE_CLOSED": "close",
}
TRADE_STATUSES = frozenset({"WAIT_BUYER_PAY", *KINDS})
CHINA = timezone(timedelta(hours=8))

# What a genuine notification's fields look like. The signed string ``k=v&k=v`` does not say
# where a value ends, so a value holding ``&k=v`` could have been another field: every field
# paynotify reads, and every field that is not free text, is held to its format, and only the
# free-text fields below may hold ``&``.
_KEY = re.compile(r"[A-Za-z0-9_]{1,64}")
_AMOUNT = re.compile(r"[0-9]{1,9}(\.[0-9]{1,2})?")
_ORDER_NO = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,3})?")
FORMATS: Mapping[str, re.Pattern[str]] = {
    "notify_type": re.compile("trade_status_sync"),
    "trade_status": re.compile("|".join(sorted(TRADE_STATUSES))),
    "notify_id": re.compile(r"[A-Za-z0-9_-]{1,128}"),
    "app_id": re.compile(r"[0-9]{1,32}"),
    "version": re.compile(r"1\.0"),
    "out_trade_no": _ORDER_NO,
    "out_biz_no": _ORDER_NO,
    "trade_no": re.compile(r"[A-Za-z0-9_]{1,64}"),
    "buyer_id": re.compile(r"[A-Za-z0-9_]{0,32}"),
    "seller_id": re.compile(r"[A-Za-z0-9_]{0,32}"),
    **{
        name: _AMOUNT
        for name in (
            "total_amount",
            "receipt_amount",
            "invoice_amount",
            "buyer_pay_amount",
            "point_amount",
            "refund_fee",
            "send_back_fee",
        )
    },
    **{
        name: _TIME
        for name in ("notify_time", "gmt_create", "gmt_payment", "gmt_close", "gmt_refund")
    },
}
FREE_TEXT = frozenset(
    {"subject", "body", "fund_bill_list", "voucher_detail_list", "buyer_logon_id", "seller_email"}
)


class AlipayAccount(Reconcilable):
    """An Alipay merchant app: ``app_id`` and Alipay's public keys (several during a rotation);
    for reconciliation, the app's private key that signs ``alipay.trade.query``."""

    provider: Literal["alipay"] = "alipay"
    app_id: str = ""
    public_keys: tuple[PublicKey, ...] = Field(default=(), alias="alipay_public_keys", repr=False)
    seller_id: str | None = None
    currency: str = "CNY"
    sign_types: frozenset[Literal["RSA2", "RSA"]] = Field(
        default=frozenset({"RSA2", "RSA"}), min_length=1
    )

    app_private_key: PrivateKey | None = Field(default=None, repr=False)

    @model_validator(mode="after")
    def _complete(self) -> AlipayAccount:
        self.require(self.app_id, "app_id")
        self.require_some(self.public_keys, "alipay_public_keys")
        self.check_reconcile({"app_private_key": self.app_private_key})
        return self

    @property
    def reconciles(self) -> bool:
        """Return whether the app's private key is configured (``alipay.trade.query``)."""
        return self.app_private_key is not None


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
    check_formats(params)
    if params.get("app_id") != account.app_id:
        raise AccountMismatchError("app_id is not this account's", reason="app_id")
    if account.seller_id is not None and params.get("seller_id") != account.seller_id:
        raise AccountMismatchError("seller_id is not this account's", reason="seller_id")
    return _normalize(params, body, account, now=now)


def canonical_string(params: Mapping[str, str]) -> str:
    """Return the string Alipay signs: every parameter but sign/sign_type, sorted, k=v&k=v."""
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k not in ("sign", "sign_type"))


def check_formats(params: Mapping[str, str]) -> None:
    """Refuse a notification holding what a genuine one never does (see ``FORMATS``).

    Raises:
        MalformedBodyError: a key that is not a plain name, a known field outside its format, or
        an ``&`` in a field that is not free text.
    """
    for key, value in params.items():
        if not _KEY.fullmatch(key):
            raise MalformedBodyError("form field name is not a plain name", reason="field_format")
        pattern = FORMATS.get(key)
        if pattern is not None and not pattern.fullmatch(value):
            raise MalformedBodyError(f"field {key} is not in its format", reason="field_format")
        if "&" in value and key not in FREE_TEXT and key != "sign":
            raise MalformedBodyError(f"field {key} holds '&'", reason="field_format")


def parse_form(body: bytes) -> dict[str, str]:
    """Parse a form body into a dict, decoding values in the body's own ``charset`` field.

    Raises:
        MalformedBodyError: bad percent-encoding, a duplicated key, or an unknown charset.
    """
    pairs: list[tuple[bytes, bytes]] = []
    declared: bytes | None = None
    for chunk in body.split(b"&"):
        if not chunk:
            continue
        key, sep, value = chunk.partition(b"=")
        if not sep:
            raise MalformedBodyError("form field without '='")
        if b"%" in chunk or b"+" in chunk:  # most fields are plain: no call for them
            key, value = _unquote(key), _unquote(value)
        if declared is None and key == b"charset":
            declared = value
        pairs.append((key, value))
    charset = _charset(declared)
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


def _charset(declared: bytes | None) -> str:
    if declared is None:
        return "utf-8"
    name = declared.decode("ascii", "replace").strip().lower()
    if name not in CHARSETS:
        raise MalformedBodyError("unsupported charset", reason="charset")
    return CHARSETS[name]


def _check_content_type(value: str) -> None:
    if value.split(";", 1)[0].strip().lower() != CONTENT_TYPE:
        raise ContentTypeError(f"expected {CONTENT_TYPE}")


def _check_signature(params: Mapping[str, str], account: AlipayAccount) -> None:
    sign_type = params.get("sign_type", "RSA2")
    if sign_type not in HASHES or sign_type not in account.sign_types:
        raise SignatureError("sign_type not accepted for this account", reason="sign_type")
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
        occurred_at=china_time(params.get("gmt_payment") or params.get("notify_time")),
        received_at=datetime.fromtimestamp(now, UTC).isoformat(),
        raw_body_b64=encode_raw_body(body),
        succeeded=True,
        content_type=CONTENT_TYPE,
        refund_id=params.get("out_biz_no") if kind == "refund" else None,
        refund_total_minor=refund_total if kind == "refund" else None,
    )


def _kind(status: str, refund_total: int | None, params: Mapping[str, str]) -> str:
    if params.get("out_biz_no") and refund_total:
        return "refund"
    if status in KINDS:
        return KINDS[status]
    raise MalformedBodyError("trade_status is not a notification status", reason="trade_status")


def _required(params: Mapping[str, str], name: str) -> str:
    value = params.get(name, "")
    if not value:
        raise MalformedBodyError(f"missing field {name}", reason="missing_field")
    return value


def to_minor(amount: str) -> int:
    """Convert a yuan amount such as ``"1.00"`` to integer fen (100), never through a float.

    Raises:
        MalformedBodyError: not up to nine digits with at most two decimals (so no sign, no
        exponent, no NaN).
    """
    if not _AMOUNT.fullmatch(amount):
        raise MalformedBodyError("amount is not a valid yuan amount", reason="amount")
    yuan, _, fen = amount.partition(".")  # ASCII digits only, as the pattern says
    return int(yuan) * 100 + (int(fen) * (10 if len(fen) == 1 else 1) if fen else 0)


def _minor_or_none(amount: str | None) -> int | None:
    return to_minor(amount) if amount else None


def china_time(value: str | None) -> str | None:
    """Return a ``yyyy-MM-dd HH:mm:ss[.S]`` Beijing time as ISO-8601, or None when absent.

    Raises:
        MalformedBodyError: not a date (``check_formats`` saw its shape), or none in UTC.
    """
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.split(".", 1)[0]).replace(tzinfo=CHINA)
        parsed.astimezone(UTC)  # 0001-01-01 00:00:00 in China is before year 1 in UTC
    except (ValueError, OverflowError):
        raise MalformedBodyError("time is not a date", reason="field_format") from None
    return parsed.isoformat()


def failure(status: int, error: GatewayError) -> Answer:
    """Return Alipay's failure answer: ``fail``, and ``400`` for a signature that does not match."""
    return text_answer("fail", 400 if isinstance(error, SignatureError) else status)


PROVIDER = Provider(
    account=AlipayAccount,
    verify=one(verify),
    success=text_answer("success"),
    failure=failure,
    kinds=KINDS,
)
