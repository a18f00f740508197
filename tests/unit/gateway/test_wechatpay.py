from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from gateway.errors import (
    AccountMismatchError,
    ContentTypeError,
    DecryptionError,
    SignatureError,
    StaleTimestampError,
    UnhandledEventError,
)
from gateway.providers import wechatpay
from gateway.providers.wechatpay import WechatPayAccount
from tests.support import vectors
from tests.support import wechatpay_signer as wx
from tests.support.alipay import key

NOW = 1795687200


def account(**keys: int) -> WechatPayAccount:
    chosen = keys or {wx.PUB_KEY_ID: 0}
    return WechatPayAccount(
        name="shop-wechat",
        mchid=wx.MCHID,
        appid=wx.APPID,
        apiv3_key=SecretStr(wx.APIV3_KEY),
        platform_public_keys={serial: key(n).public_key() for serial, n in chosen.items()},
    )


def verify(body: bytes, headers: dict[str, str], acct: WechatPayAccount | None = None) -> Any:
    return wechatpay.verify(body, headers, acct or account(), now=NOW)


def genuine(resource: dict[str, Any] | None = None, **kwargs: Any) -> tuple[bytes, dict[str, str]]:
    body = wx.envelope(resource or wx.transaction("wx-1"))
    return body, wx.headers(body, NOW, **kwargs)


def test_verify_genuine_transaction_normalizes_payment() -> None:
    note = verify(*genuine())
    assert (note.provider, note.kind, note.status) == ("wechatpay", "payment", "SUCCESS")
    assert (note.out_trade_no, note.amount_minor, note.currency) == ("wx-1", 100, "CNY")
    assert note.notify_id == "EV-wx-1-TRANSACTION.SUCCESS"
    assert note.provider_trade_no == "4200000000202611260000000001"
    assert note.occurred_at == "2026-11-26T18:00:01+08:00"


@pytest.mark.parametrize("status", ["SUCCESS", "ABNORMAL", "CLOSED"])
def test_verify_refund_event_keeps_refund_amount_and_status(status: str) -> None:
    body = wx.envelope(wx.refund("wx-2", status), event_type=f"REFUND.{status}", associated_data="")
    note = verify(body, wx.headers(body, NOW))
    assert (note.kind, note.status, note.refund_amount_minor, note.amount_minor) == (
        "refund",
        status,
        40,
        100,
    )
    assert note.refund_id == "50000000382019052709732678859"
    assert note.succeeded is (status == "SUCCESS")  # the stream reads this, not the status


def test_verify_certificate_serial_and_public_key_id_both_configured() -> None:
    both = account(**{wx.PUB_KEY_ID: 1, wx.CERT_SERIAL: 0})
    assert verify(*genuine(serial=wx.CERT_SERIAL), both).amount_minor == 100
    assert verify(*genuine(n=1), both).amount_minor == 100


def test_verify_tampered_byte_raises_signature_error() -> None:
    body, headers = genuine()
    with pytest.raises(SignatureError):
        verify(body.replace(b'"id": "EV', b'"id": "Ev'), headers)


def test_verify_wrong_key_raises_signature_error() -> None:
    with pytest.raises(SignatureError):
        verify(*genuine(n=1))


def test_verify_unknown_serial_raises_signature_error() -> None:
    with pytest.raises(SignatureError, match="Serial"):
        verify(*genuine(serial="PUB_KEY_ID_0000000000000000000000000000000000"))


@pytest.mark.parametrize("offset", [-301, 301])
def test_verify_stale_or_future_timestamp_raises(offset: int) -> None:
    body = wx.envelope(wx.transaction())
    with pytest.raises(StaleTimestampError):
        verify(body, wx.headers(body, NOW + offset))


@pytest.mark.parametrize(
    "header",
    ["Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature", "Wechatpay-Serial"],
)
def test_verify_missing_header_raises_signature_error(header: str) -> None:
    body, headers = genuine()
    del headers[header]
    with pytest.raises(SignatureError):
        verify(body, headers)


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("Wechatpay-Timestamp", "soon"),
        ("Wechatpay-Signature", "%%%"),
        ("Wechatpay-Signature-Type", "WECHATPAY2-SM2-WITH-SM3"),
    ],
)
def test_verify_unparsable_header_raises_signature_error(header: str, value: str) -> None:
    body, headers = genuine()
    headers[header] = value
    with pytest.raises(SignatureError):
        verify(body, headers)


def test_verify_missing_signature_type_defaults_to_rsa() -> None:
    body, headers = genuine()
    del headers["Wechatpay-Signature-Type"]
    assert verify(body, headers).amount_minor == 100


@pytest.mark.parametrize(("field", "value"), [("mchid", "1900000001"), ("appid", "wx0000")])
def test_verify_other_mchid_or_appid_raises_account_mismatch(field: str, value: str) -> None:
    with pytest.raises(AccountMismatchError):
        verify(*genuine(wx.transaction(**{field: value})))


def test_verify_wrong_apiv3_key_raises_decryption_error() -> None:
    body = wx.envelope(wx.transaction(), apiv3_key="f" * 32)
    with pytest.raises(DecryptionError):
        verify(body, wx.headers(body, NOW))


def test_verify_unmapped_event_raises_unhandled() -> None:
    body = wx.envelope(wx.transaction(), event_type="TRANSACTION.CLOSED")
    with pytest.raises(UnhandledEventError):
        verify(body, wx.headers(body, NOW))


def test_verify_form_content_type_raises() -> None:
    body, headers = genuine()
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    with pytest.raises(ContentTypeError):
        verify(body, headers)


def test_verify_empty_attach_and_json_valued_fields_kept() -> None:
    resource = wx.transaction(attach="", promotion_detail=[{"amount": 1, "type": "CASH"}])
    assert verify(*genuine(resource)).amount_minor == 100


def test_decrypt_reference_vector_gives_plaintext() -> None:
    v = vectors.load("wechatpay")
    resource = {
        "algorithm": "AEAD_AES_256_GCM",
        "ciphertext": v["ciphertext"],
        "associated_data": v["associated_data"],
        "nonce": v["nonce"],
    }
    assert wechatpay.decrypt(resource, AESGCM(v["apiv3_key"].encode()))["out_trade_no"] == "o1"


def test_message_matches_the_sdk_signed_string() -> None:
    body = b'{"a":1}'
    sdk = wx.platform(0).sign(["1", "n", body.decode()])
    key(0).public_key().verify(
        base64.b64decode(sdk),
        wechatpay.message("1", "n", body),
        *_pkcs1_sha256(),
    )


def test_decrypt_empty_associated_data_accepted() -> None:
    sealed = AESGCM(wx.APIV3_KEY.encode()).encrypt(b"123456789012", b'{"x":1}', b"")
    resource = {
        "algorithm": "AEAD_AES_256_GCM",
        "ciphertext": base64.b64encode(sealed).decode(),
        "associated_data": "",
        "nonce": "123456789012",
    }
    assert wechatpay.decrypt(resource, AESGCM(wx.APIV3_KEY.encode())) == {"x": 1}


def _pkcs1_sha256() -> tuple[Any, Any]:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    return padding.PKCS1v15(), hashes.SHA256()


def test_verify_uses_the_cipher_made_at_load(monkeypatch: pytest.MonkeyPatch) -> None:
    acct = account()
    monkeypatch.setattr(wechatpay, "AESGCM", None)  # no cipher is made per request
    assert verify(*genuine(), acct).kind == "payment"
    assert verify(*genuine(), acct).kind == "payment"
