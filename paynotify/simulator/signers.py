"""Sign planned notifications the way each provider does, with the keys of the configuration.

``prepare(order, message, keys, now=...)`` returns the body to send and a way to sign headers for
each attempt: Stripe, WeChat Pay and Standard Webhooks sign every attempt with a fresh timestamp;
Alipay and Adyen carry their signature inside the body, which stays the same across retries. A
``forged`` notification is signed with a key the gateway does not know; a ``tampered`` one is
signed genuinely and then has its amount changed. Only ``cryptography`` and ``hmac`` are used, so
this runs wherever paynotify runs (no provider SDK).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import quote

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from gateway.accounts import AccountConfig
from gateway.providers.adyen import SIGNED_FIELDS as ADYEN_SIGNED
from gateway.providers.adyen import AdyenAccount
from gateway.providers.alipay import AlipayAccount, canonical_string
from gateway.providers.standardwebhooks import StandardWebhooksAccount
from gateway.providers.stripe import StripeAccount
from gateway.providers.wechatpay import WechatPayAccount
from gateway.providers.wechatpay import message as wechat_message
from paynotify.errors import SigningKeyError
from paynotify.simulator import payloads
from paynotify.simulator.plan import Message, PlannedOrder

FORM = "application/x-www-form-urlencoded; charset=utf-8"
JSON = "application/json"
WECHAT_SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"


@dataclass(frozen=True)
class SigningKeys:
    """What one account's provider signs with: the account's secrets, plus for Alipay and WeChat
    Pay the provider's RSA private key (and for WeChat its ``Wechatpay-Serial``)."""

    account: AccountConfig
    private_key: RSAPrivateKey | None = None
    serial: str | None = None

    def forged(self) -> SigningKeys:
        """Return the keys of a forger: same account, secrets and private key it guessed."""
        guess = SecretStr("whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())
        account = self.account
        if isinstance(account, StripeAccount | StandardWebhooksAccount):
            account = _with(account, signing_secrets=(guess,))
        elif isinstance(account, AdyenAccount):
            account = _with(account, hmac_keys=(SecretStr(secrets.token_hex(32).upper()),))
        elif isinstance(account, WechatPayAccount):
            account = _with(account, apiv3_key=SecretStr(secrets.token_hex(16)))
        return SigningKeys(account, forger_key(), self.serial)

    def rsa(self) -> RSAPrivateKey:
        """Return the private key.

        Raises:
            SigningKeyError: none was given for this account.
        """
        if self.private_key is None:
            raise SigningKeyError(f"account {self.account.name!r} needs --signing-key")
        return self.private_key


def _with(account: AccountConfig, **changes: Any) -> AccountConfig:
    """Return a copy of an account with other settings, validated (so its keys decoded) anew."""
    return account.model_validate({**dict(account), **changes})


@cache
def forger_key() -> RSAPrivateKey:
    """Return an RSA key no gateway knows (generated once per process)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


HeaderSigner = Callable[[float], dict[str, str]]


@dataclass(frozen=True)
class Prepared:
    """A notification ready to send: the body and the headers for an attempt at time ``now``."""

    body: bytes
    headers: HeaderSigner


def prepare(order: PlannedOrder, message: Message, keys: SigningKeys, *, now: float) -> Prepared:
    """Build and sign one planned notification (forged or tampered as the plan says).

    Raises:
        SigningKeyError: Alipay or WeChat Pay without a private key.
    """
    if message.authenticity == "forged":
        keys = keys.forged()
    builder = BUILDERS[order.provider]
    return builder(order, message, keys, now, message.authenticity == "tampered")


def tampered_amount(amount: int) -> int:
    """Return the amount a tamperer writes instead (a hundredth, at least 1)."""
    return max(1, amount // 100)


def dumps(value: Any) -> bytes:
    """Serialize JSON compactly, as the providers' servers do."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _fixed(headers: Mapping[str, str]) -> HeaderSigner:
    return lambda _now: dict(headers)


def _signed_json(
    message: Message,
    tampered: bool,
    body: Callable[[int], bytes],
    headers: Callable[[bytes, float], dict[str, str]],
) -> Prepared:
    """Sign the body with the planned amount; send it, or (tampered) one with another amount."""
    signed = body(message.amount_minor)
    sent = body(tampered_amount(message.amount_minor)) if tampered else signed
    return Prepared(sent, lambda at: headers(signed, at))


# -- Alipay -----------------------------------------------------------------------------------


def sign_alipay(
    params: Mapping[str, str], key: RSAPrivateKey, sign_type: str = "RSA2"
) -> dict[str, str]:
    """Return the parameters with ``sign_type`` and ``sign`` (RSA2: SHA256withRSA)."""
    digest = hashes.SHA256() if sign_type == "RSA2" else hashes.SHA1()  # noqa: S303 - Alipay's legacy "RSA"
    charset = params.get("charset", "utf-8")
    signature = key.sign(canonical_string(params).encode(charset), padding.PKCS1v15(), digest)
    return {**params, "sign_type": sign_type, "sign": base64.b64encode(signature).decode()}


def encode_form(params: Mapping[str, str]) -> bytes:
    """Percent-encode the parameters as a form body (in the parameters' own charset)."""
    charset = params.get("charset", "utf-8")
    pairs = (f"{quote(k)}={quote(v, safe='', encoding=charset)}" for k, v in params.items())
    return "&".join(pairs).encode("ascii")


def _alipay(
    order: PlannedOrder, message: Message, keys: SigningKeys, now: float, tampered: bool
) -> Prepared:
    account = keys.account
    assert isinstance(account, AlipayAccount)
    params = payloads.alipay_params(
        order, message, app_id=account.app_id, seller_id=account.seller_id, now=now
    )
    signed = sign_alipay(params, keys.rsa())
    if tampered:
        signed["total_amount"] = payloads.yuan(tampered_amount(message.amount_minor))
    return Prepared(encode_form(signed), _fixed({"content-type": FORM}))


# -- WeChat Pay APIv3 -------------------------------------------------------------------------


def wechat_seal(resource: Mapping[str, Any], apiv3_key: str, nonce: str, associated: str) -> str:
    """Encrypt a resource as AEAD_AES_256_GCM and return the base64 ciphertext (with tag)."""
    sealed = AESGCM(apiv3_key.encode()).encrypt(
        nonce.encode(), dumps(resource), associated.encode()
    )
    return base64.b64encode(sealed).decode()


def wechat_signature(key: RSAPrivateKey, timestamp: str, nonce: str, body: bytes) -> str:
    """Return the base64 SHA256withRSA signature of ``timestamp\\nnonce\\nbody\\n``."""
    signed = wechat_message(timestamp, nonce, body)
    return base64.b64encode(key.sign(signed, padding.PKCS1v15(), hashes.SHA256())).decode()


def _wechat(
    order: PlannedOrder, message: Message, keys: SigningKeys, now: float, tampered: bool
) -> Prepared:
    account = keys.account
    assert isinstance(account, WechatPayAccount)
    key, serial = keys.rsa(), keys.serial or ""
    nonce = message.notify_id[:12]
    associated = "refund" if message.kind == "refund" else "transaction"

    def body(amount: int) -> bytes:
        resource = payloads.wechat_resource(
            order, message, mchid=account.mchid, appid=account.appid, amount=amount
        )
        apiv3 = account.apiv3_key.get_secret_value()
        envelope = {
            "id": f"EV-{message.notify_id}",
            "create_time": "2026-11-26T18:00:02+08:00",
            "resource_type": "encrypt-resource",
            "event_type": payloads.wechat_event_type(message),
            "summary": "支付成功" if message.kind != "refund" else "退款成功",
            "resource": {
                "original_type": associated,
                "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": wechat_seal(resource, apiv3, nonce, associated),
                "associated_data": associated,
                "nonce": nonce,
            },
        }
        return dumps(envelope)

    def headers(signed: bytes, at: float) -> dict[str, str]:
        timestamp, attempt_nonce = str(int(at)), secrets.token_hex(16)
        return {
            "content-type": JSON,
            "wechatpay-timestamp": timestamp,
            "wechatpay-nonce": attempt_nonce,
            "wechatpay-signature": wechat_signature(key, timestamp, attempt_nonce, signed),
            "wechatpay-serial": serial,
            "wechatpay-signature-type": WECHAT_SIGNATURE_TYPE,
            "request-id": secrets.token_hex(16),
        }

    return _signed_json(message, tampered, body, headers)


# -- Stripe -----------------------------------------------------------------------------------


def stripe_header(secret: str, timestamp: int, body: bytes) -> str:
    """Return ``Stripe-Signature``: ``t=<unix>,v1=<hex HMAC-SHA256 of "t." + body>``."""
    message = str(timestamp).encode() + b"." + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def _stripe(
    order: PlannedOrder, message: Message, keys: SigningKeys, now: float, tampered: bool
) -> Prepared:
    account = keys.account
    assert isinstance(account, StripeAccount)
    secret = account.signing_secrets[0].get_secret_value()

    def body(amount: int) -> bytes:
        key = account.order_id_metadata_key
        return dumps(
            payloads.stripe_event(order, message, metadata_key=key, amount=amount, now=now)
        )

    def headers(signed: bytes, at: float) -> dict[str, str]:
        return {"content-type": JSON, "stripe-signature": stripe_header(secret, int(at), signed)}

    return _signed_json(message, tampered, body, headers)


# -- Standard Webhooks ------------------------------------------------------------------------


def standard_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Return ``v1,<base64 HMAC-SHA256>`` keyed with the base64-decoded ``whsec_`` secret."""
    key = base64.b64decode(secret.removeprefix("whsec_") + "==")
    message = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def _standard(
    order: PlannedOrder, message: Message, keys: SigningKeys, now: float, tampered: bool
) -> Prepared:
    account = keys.account
    assert isinstance(account, StandardWebhooksAccount)
    secret = account.signing_secrets[0].get_secret_value()
    msg_id = f"msg_{message.notify_id}"

    def body(amount: int) -> bytes:
        return dumps(payloads.standard_payload(order, message, amount=amount, now=now))

    def headers(signed: bytes, at: float) -> dict[str, str]:
        signature = standard_signature(secret, msg_id, int(at), signed)
        return {
            "content-type": JSON,
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(at)),
            "webhook-signature": signature,
        }

    return _signed_json(message, tampered, body, headers)


# -- Adyen ------------------------------------------------------------------------------------


def adyen_signature(hex_key: str, item: Mapping[str, Any]) -> str:
    """Return the item's ``hmacSignature``: base64 HMAC-SHA256 of the 8 fields, hex-decoded key."""
    values = {**item, **item.get("amount", {})}
    text = ":".join(str(values.get(name, "")) for name in ADYEN_SIGNED)
    digest = hmac.new(bytes.fromhex(hex_key), text.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _adyen(
    order: PlannedOrder, message: Message, keys: SigningKeys, now: float, tampered: bool
) -> Prepared:
    account = keys.account
    assert isinstance(account, AdyenAccount)
    item = payloads.adyen_item(order, message, amount=message.amount_minor)
    signature = adyen_signature(account.hmac_keys[0].get_secret_value().strip(), item)
    item["additionalData"] = {"hmacSignature": signature}
    if tampered:
        amount = tampered_amount(message.amount_minor)
        item["amount"] = {**item["amount"], "value": amount}
    return Prepared(dumps(payloads.adyen_batch(item)), _fixed({"content-type": JSON}))


Builder = Callable[[PlannedOrder, Message, SigningKeys, float, bool], Prepared]
BUILDERS: Mapping[str, Builder] = {
    "alipay": _alipay,
    "wechatpay": _wechat,
    "stripe": _stripe,
    "standardwebhooks": _standard,
    "adyen": _adyen,
}
