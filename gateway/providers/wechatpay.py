"""WeChat Pay APIv3 notifications (``TRANSACTION.SUCCESS`` and ``REFUND.*``).

The platform signs ``"<Wechatpay-Timestamp>\\n<Wechatpay-Nonce>\\n<body>\\n"`` with SHA256withRSA
(PKCS#1 v1.5, base64 in ``Wechatpay-Signature``); ``Wechatpay-Serial`` names the key: a platform
certificate serial or a ``PUB_KEY_ID_...`` public key, both configurable at once during the
migration. The body's ``resource`` is AEAD_AES_256_GCM-encrypted with the APIv3 key. Success is
answered ``204``; a refusal ``{"code": "FAIL", "message": ...}`` with its 4xx/5xx status.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import Field, PrivateAttr, SecretStr, ValidationInfo, field_validator, model_validator

from gateway.errors import (
    AccountMismatchError,
    ConfigError,
    DecryptionError,
    GatewayError,
    MalformedBodyError,
    SignatureError,
    UnhandledEventError,
)
from gateway.providers import fields
from gateway.providers.keys import PrivateKey, PublicKey, Secret
from gateway.providers.provider import Answer, Kind, Provider, json_answer, one
from gateway.providers.query import Reconcilable
from gateway.records import Notification, encode_raw_body

SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
APIV3_KEY_BYTES = 32
# event_type words. Every ``REFUND.*`` is a refund; only ``REFUND.SUCCESS`` succeeded (its
# ``refund_status`` is ``SUCCESS``), ``REFUND.ABNORMAL`` and ``REFUND.CLOSED`` did not.
KINDS: Mapping[str, Kind] = {
    "TRANSACTION.SUCCESS": "payment",
    "REFUND.SUCCESS": "refund",
    "REFUND.ABNORMAL": "refund",
    "REFUND.CLOSED": "refund",
}
REFUND_PREFIX = "REFUND."


class WechatPayAccount(Reconcilable):
    """A WeChat Pay merchant: ``mchid``, ``appid``, the APIv3 key and the platform's public keys
    by ``Wechatpay-Serial``; the AES-GCM cipher is made from the key once, at load. For
    reconciliation, the merchant API private key and its certificate's serial number."""

    provider: Literal["wechatpay"] = "wechatpay"
    mchid: str = ""
    appid: str = ""
    platform_public_keys: dict[str, PublicKey] = Field(default_factory=dict, repr=False)
    apiv3_key: Secret = Field(default=SecretStr(""), validate_default=True)
    timestamp_tolerance_seconds: int = Field(default=300, ge=1, le=3600)
    merchant_private_key: PrivateKey | None = Field(default=None, repr=False)
    merchant_serial_no: str = ""
    _cipher: AESGCM | None = PrivateAttr(default=None)

    @field_validator("apiv3_key", mode="before")
    @classmethod
    def _given(cls, value: Any, info: ValidationInfo) -> Any:
        if not value:  # as written: an env: or file: that resolves to nothing is "not 32 bytes"
            raise ConfigError(f"account {info.data.get('name')!r}: apiv3_key is required")
        return value

    def model_post_init(self, context: Any, /) -> None:
        key = self.apiv3_key.get_secret_value().encode("utf-8")
        self._cipher = AESGCM(key) if len(key) == APIV3_KEY_BYTES else None

    @model_validator(mode="after")
    def _complete(self) -> WechatPayAccount:
        if self._cipher is None:
            raise self.refuse(f"apiv3_key must be {APIV3_KEY_BYTES} bytes")
        self.require(self.mchid, "mchid")
        self.require(self.appid, "appid")
        self.require_some(self.platform_public_keys, "platform_public_keys")
        self.check_reconcile(
            {
                "merchant_private_key": self.merchant_private_key,
                "merchant_serial_no": self.merchant_serial_no,
            }
        )
        return self

    @property
    def reconciles(self) -> bool:
        """Return whether the merchant API key that signs order queries is configured."""
        return self.merchant_private_key is not None

    @property
    def cipher(self) -> AESGCM:
        """Return the AES-GCM cipher keyed with the APIv3 key.

        Raises:
            DecryptionError: the account was built without validation and has no valid key.
        """
        if self._cipher is None:
            raise DecryptionError("no APIv3 key")
        return self._cipher


def verify(
    body: bytes, headers: Mapping[str, str], account: WechatPayAccount, *, now: float
) -> Notification:
    """Verify a WeChat Pay APIv3 notification, decrypt its resource and normalize it.

    Raises:
        ContentTypeError, SignatureError, StaleTimestampError, DecryptionError,
        AccountMismatchError, MalformedBodyError, UnhandledEventError.
    """
    lowered = fields.lower_headers(headers)
    fields.check_content_type(lowered)
    timestamp = fields.required_header(lowered, "wechatpay-timestamp")
    check_signature(lowered, timestamp, body, account)
    fields.check_fresh(int(timestamp), now, account.timestamp_tolerance_seconds)
    envelope = fields.parse_object(body)
    resource = decrypt(fields.child(envelope, "resource"), account.cipher)
    _check_account(resource, account)
    return _normalize(envelope, resource, body, account, now=now)


def message(timestamp: str, nonce: str, body: bytes) -> bytes:
    """Return the bytes WeChat Pay signs: three lines, each ending in a newline."""
    return f"{timestamp}\n{nonce}\n".encode() + body + b"\n"


def check_signature(
    headers: Mapping[str, str], timestamp: str, body: bytes, account: WechatPayAccount
) -> None:
    """Check the platform's signature of a body (a notification, or an answer to a query).

    Raises:
        SignatureError: a missing or unparsable header, an unknown serial, or no match.
    """
    nonce = fields.required_header(headers, "wechatpay-nonce")
    serial = fields.required_header(headers, "wechatpay-serial")
    encoded = fields.required_header(headers, "wechatpay-signature")
    fields.unix_seconds(timestamp)
    if headers.get("wechatpay-signature-type", SIGNATURE_TYPE) != SIGNATURE_TYPE:
        raise SignatureError("unsupported Wechatpay-Signature-Type", reason="signature_type")
    key = account.platform_public_keys.get(serial)
    if key is None:
        raise SignatureError("Wechatpay-Serial names no configured key", reason="unknown_serial")
    try:
        signature = base64.b64decode(encoded, validate=True)
        key.verify(signature, message(timestamp, nonce, body), padding.PKCS1v15(), hashes.SHA256())
    except (binascii.Error, ValueError, InvalidSignature):
        raise SignatureError("signature does not match the platform key") from None


def decrypt(resource: Mapping[str, Any], cipher: AESGCM) -> dict[str, Any]:
    """Decrypt an AEAD_AES_256_GCM ``resource`` and parse the JSON inside.

    Raises:
        MalformedBodyError: the resource lacks a field or names another algorithm.
        DecryptionError: the ciphertext does not decrypt with the APIv3 key.
    """
    if resource.get("algorithm") != "AEAD_AES_256_GCM":
        raise MalformedBodyError("resource algorithm is not AEAD_AES_256_GCM", reason="algorithm")
    nonce = fields.text(resource, "nonce").encode()
    associated = (fields.optional_text(resource, "associated_data") or "").encode()
    try:
        ciphertext = base64.b64decode(fields.text(resource, "ciphertext"), validate=True)
        plain = cipher.decrypt(nonce, ciphertext, associated)
    except (binascii.Error, ValueError, InvalidTag):
        raise DecryptionError("resource does not decrypt with the APIv3 key") from None
    return fields.parse_object(plain)


def _check_account(resource: Mapping[str, Any], account: WechatPayAccount) -> None:
    if resource.get("mchid") != account.mchid:
        raise AccountMismatchError("mchid is not this account's", reason="mchid")
    if "appid" in resource and resource["appid"] != account.appid:
        raise AccountMismatchError("appid is not this account's", reason="appid")


def _normalize(
    envelope: Mapping[str, Any],
    resource: Mapping[str, Any],
    body: bytes,
    account: WechatPayAccount,
    *,
    now: float,
) -> Notification:
    event_type = fields.text(envelope, "event_type")
    amount = fields.child(resource, "amount")
    refund = event_type.startswith(REFUND_PREFIX)
    if not refund and KINDS.get(event_type) != "payment":
        raise UnhandledEventError("event type is not mapped")
    status = fields.text(resource, "refund_status" if refund else "trade_state")
    return Notification(
        provider="wechatpay",
        account=account.name,
        notify_id=fields.text(envelope, "id"),
        out_trade_no=fields.text(resource, "out_trade_no"),
        kind="refund" if refund else "payment",
        status=status,
        amount_minor=fields.minor_units(amount, "total"),
        currency=fields.currency(amount.get("currency", "CNY")),
        provider_trade_no=fields.optional_text(resource, "transaction_id") or "",
        occurred_at=fields.iso_time(resource.get("success_time") or envelope.get("create_time")),
        received_at=fields.from_unix(now),
        raw_body_b64=encode_raw_body(body),
        succeeded=status == "SUCCESS" if refund else True,  # REFUND.ABNORMAL, REFUND.CLOSED
        content_type=fields.JSON,
        refund_id=fields.text(resource, "refund_id") if refund else None,
        refund_amount_minor=fields.minor_units(amount, "refund") if refund else None,
    )


def failure(status: int, error: GatewayError) -> Answer:
    """Return WeChat Pay's failure answer: ``{"code": "FAIL", "message": ...}``."""
    return json_answer({"code": "FAIL", "message": str(error)}, status)


PROVIDER = Provider(
    account=WechatPayAccount,
    verify=one(verify),
    success=Answer(204),
    failure=failure,
    kinds=KINDS,
)
