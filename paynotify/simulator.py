"""Play Alipay against a running gateway: sign notifications with the merchant's test key and
send them, duplicates included. ``paynotify up --demo`` uses it for its demonstration burst."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlencode

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from gateway.providers.alipay import canonical_string

CHINA = timezone(timedelta(hours=8))
FORM = {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}


def sign_alipay(params: Mapping[str, str], key: RSAPrivateKey, sign_type: str = "RSA2") -> bytes:
    """Return the form body Alipay would send: the parameters, ``sign_type`` and ``sign``."""
    digest = hashes.SHA256() if sign_type == "RSA2" else hashes.SHA1()  # noqa: S303 - Alipay's legacy "RSA" sign_type
    charset = params.get("charset", "utf-8")
    signature = key.sign(canonical_string(params).encode(charset), padding.PKCS1v15(), digest)
    signed = {**params, "sign_type": sign_type, "sign": base64.b64encode(signature).decode()}
    return urlencode(signed, encoding=charset).encode("ascii")


def alipay_payment(
    *, app_id: str, out_trade_no: str, amount_minor: int, notify_id: str, now: datetime
) -> dict[str, str]:
    """Return the parameters of a TRADE_SUCCESS notification as Alipay sends them."""
    local = now.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S")
    yuan = f"{amount_minor // 100}.{amount_minor % 100:02d}"
    return {
        "notify_time": local,
        "notify_type": "trade_status_sync",
        "notify_id": notify_id,
        "app_id": app_id,
        "charset": "utf-8",
        "version": "1.0",
        "trade_no": f"2026{uuid.uuid5(uuid.NAMESPACE_OID, out_trade_no).int % 10**24:024d}",
        "out_trade_no": out_trade_no,
        "trade_status": "TRADE_SUCCESS",
        "total_amount": yuan,
        "receipt_amount": yuan,
        "buyer_id": "2088102177846880",
        "seller_id": "2088102177296610",
        "gmt_create": local,
        "gmt_payment": local,
        "subject": "paynotify demo",
        "refund_fee": "0.00",
        "fund_bill_list": f'[{{"amount":"{yuan}","fundChannel":"ALIPAYACCOUNT"}}]',
    }


def generate_key() -> RSAPrivateKey:
    """Generate a 2048-bit RSA key playing Alipay's signing key."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def write_key_pair(key: RSAPrivateKey, folder: Path) -> tuple[Path, Path]:
    """Write the private key (PKCS#8 PEM) and the public key (SPKI PEM); return both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    private = folder / "alipay_private.pem"
    public = folder / "alipay_public.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    private.chmod(0o600)
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def load_private_key(path: Path) -> RSAPrivateKey:
    """Load a PEM private key."""
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, RSAPrivateKey)
    return key


@dataclass
class SendStats:
    """What was sent and how the gateway answered."""

    sent: int = 0
    answers: Counter[str] = field(default_factory=Counter)

    def record(self, response: httpx.Response) -> None:
        self.sent += 1
        self.answers[f"{response.status_code} {response.text[:20]}"] += 1


async def post(
    client: httpx.AsyncClient, url: str, body: bytes, stats: SendStats
) -> httpx.Response:
    """POST one form body and record the answer."""
    response = await client.post(url, content=body, headers=FORM)
    stats.record(response)
    return response


async def send_copies(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    copies: int,
    *,
    concurrent: bool,
    stats: SendStats,
) -> list[httpx.Response]:
    """Send ``copies`` identical requests, one after another or all at once."""
    if concurrent:
        return list(await asyncio.gather(*(post(client, url, body, stats) for _ in range(copies))))
    return [await post(client, url, body, stats) for _ in range(copies)]


def now_utc() -> datetime:
    """Return the current time (the simulator is an edge: it may read the clock)."""
    return datetime.now(UTC)
