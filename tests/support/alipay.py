"""An Alipay signer for tests, written independently of ``gateway.providers.alipay``: it builds
the canonical string from the documented rule itself and signs with ``cryptography``."""

from __future__ import annotations

import base64
from functools import cache
from urllib.parse import quote

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

APP_ID = "2021000000000000"


@cache
def _generated(n: int) -> RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def key(n: int = 0) -> RSAPrivateKey:
    """Return the n-th generated test key (one per n for the whole session)."""
    return _generated(n)


def payment(out_trade_no: str = "order-1", amount: str = "1.00", **extra: str) -> dict[str, str]:
    """Return a TRADE_SUCCESS notification's parameters."""
    params = {
        "app_id": APP_ID,
        "charset": "utf-8",
        "version": "1.0",
        "notify_type": "trade_status_sync",
        "notify_id": f"notify-{out_trade_no}",
        "notify_time": "2026-11-26 10:00:05",
        "gmt_payment": "2026-11-26 10:00:01",
        "trade_no": f"2026112622001{abs(hash(out_trade_no)) % 10**9:09d}",
        "out_trade_no": out_trade_no,
        "trade_status": "TRADE_SUCCESS",
        "total_amount": amount,
        "buyer_id": "2088102177846880",
        "seller_id": "2088102177296610",
        "subject": "test",
        "refund_fee": "0.00",
    }
    params.update(extra)
    return params


def sign(
    params: dict[str, str],
    private: RSAPrivateKey | None = None,
    sign_type: str = "RSA2",
    charset: str = "utf-8",
) -> bytes:
    """Sign as Alipay does and return the urlencoded body in ``charset``."""
    private = private or key()
    unsigned = sorted((k, v) for k, v in params.items() if k not in ("sign", "sign_type"))
    message = "&".join(f"{k}={v}" for k, v in unsigned).encode(charset)
    digest = hashes.SHA256() if sign_type == "RSA2" else hashes.SHA1()  # noqa: S303
    signature = base64.b64encode(private.sign(message, padding.PKCS1v15(), digest)).decode()
    fields = {**params, "sign_type": sign_type, "sign": signature}
    return "&".join(
        f"{quote(k)}={quote(v, safe='', encoding=charset)}" for k, v in fields.items()
    ).encode("ascii")
