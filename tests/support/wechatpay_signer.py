"""WeChat Pay APIv3 notifications for tests, signed by the ``wechatpayv3`` SDK (the test plays the
platform) and encrypted with ``cryptography``'s AESGCM, independently of the gateway's code."""

from __future__ import annotations

import base64
import json
from functools import cache
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from wechatpayv3 import WeChatPay, WeChatPayType

from tests.support.alipay import key

MCHID = "1900000000"
APPID = "wx8888888888888888"
APIV3_KEY = "0123456789abcdef0123456789abcdef"
PUB_KEY_ID = "PUB_KEY_ID_0000000000000024101100397200000006"
CERT_SERIAL = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"


def _pem(n: int, private: bool) -> str:
    if private:
        return (
            key(n)
            .private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            .decode()
        )
    return (
        key(n)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@cache
def platform(n: int = 0) -> WeChatPay:
    """Return an SDK client holding generated key ``n`` (public-key mode: no network)."""
    return WeChatPay(
        wechatpay_type=WeChatPayType.NATIVE,
        mchid=MCHID,
        private_key=_pem(n, private=True),
        cert_serial_no="unused",
        appid=APPID,
        apiv3_key=APIV3_KEY,
        public_key=_pem(n, private=False),
        public_key_id=PUB_KEY_ID,
    )


def transaction(out_trade_no: str = "order-1", total: int = 100, **extra: Any) -> dict[str, Any]:
    """Return a decrypted TRANSACTION.SUCCESS resource."""
    return {
        "mchid": MCHID,
        "appid": APPID,
        "out_trade_no": out_trade_no,
        "transaction_id": "4200000000202611260000000001",
        "trade_type": "NATIVE",
        "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功",
        "bank_type": "OTHERS",
        "attach": "",
        "success_time": "2026-11-26T18:00:01+08:00",
        "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
        "amount": {
            "total": total,
            "payer_total": total,
            "currency": "CNY",
            "payer_currency": "CNY",
        },
        **extra,
    }


def refund(out_trade_no: str = "order-1", status: str = "SUCCESS") -> dict[str, Any]:
    """Return a decrypted REFUND.* resource (a 40 fen refund of a 100 fen order)."""
    return {
        "mchid": MCHID,
        "out_trade_no": out_trade_no,
        "transaction_id": "4200000000202611260000000001",
        "out_refund_no": "refund-1",
        "refund_id": "50000000382019052709732678859",
        "refund_status": status,
        "success_time": "2026-11-26T19:00:01+08:00",
        "user_received_account": "招商银行信用卡0403",
        "amount": {"total": 100, "refund": 40, "payer_total": 100, "payer_refund": 40},
    }


def envelope(
    resource: dict[str, Any],
    event_type: str = "TRANSACTION.SUCCESS",
    associated_data: str = "transaction",
    apiv3_key: str = APIV3_KEY,
) -> bytes:
    """Return the notification body with ``resource`` encrypted as AEAD_AES_256_GCM."""
    nonce = "abcdefghijkl"
    plain = json.dumps(resource, ensure_ascii=False).encode()
    sealed = AESGCM(apiv3_key.encode()).encrypt(nonce.encode(), plain, associated_data.encode())
    body = {
        "id": f"EV-{resource['out_trade_no']}-{event_type}",
        "create_time": "2026-11-26T18:00:02+08:00",
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": "支付成功",
        "resource": {
            "original_type": "transaction",
            "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": base64.b64encode(sealed).decode(),
            "associated_data": associated_data,
            "nonce": nonce,
        },
    }
    return json.dumps(body, ensure_ascii=False).encode()


def headers(
    body: bytes, timestamp: int, n: int = 0, serial: str = PUB_KEY_ID, nonce: str = "n0nce42"
) -> dict[str, str]:
    """Return the Wechatpay-* headers the platform sends, signed by the SDK with key ``n``."""
    signature = platform(n).sign([str(timestamp), nonce, body.decode()])
    return {
        "Content-Type": "application/json",
        "Wechatpay-Timestamp": str(timestamp),
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature": signature,
        "Wechatpay-Serial": serial,
        "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
        "Request-ID": "08F78BB5AF0610D302A18F0F2C2A5DCE",
    }
