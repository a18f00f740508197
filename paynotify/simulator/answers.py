"""The providers' order-query APIs as the simulator plays them: check the merchant's signed
request, answer what the plan says the customer really paid, signed as the provider signs.

Alipay answers ``alipay.trade.query`` with the ``..._response`` node signed by its key (the
``--signing-key`` of the account); WeChat Pay signs ``timestamp\\nnonce\\nbody\\n`` with the
platform key and names it in ``Wechatpay-Serial``; Stripe signs nothing and checks the API key.
A request whose signature (or key) is wrong gets the provider's refusal, unsigned. Pure: the
server (``paynotify.simulator.queries``) passes the clock and the nonce in.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from gateway.providers.alipay import AlipayAccount
from gateway.providers.alipay_query import NODE, sign_string
from gateway.providers.stripe import StripeAccount
from gateway.providers.wechatpay import WechatPayAccount
from gateway.providers.wechatpay import message as wechat_message
from gateway.providers.wechatpay_query import sign_message
from paynotify.simulator.payloads import china_time, digits, yuan
from paynotify.simulator.plan import PlannedOrder
from paynotify.simulator.signers import JSON, SigningKeys


@dataclass(frozen=True)
class Asked:
    """A query as received: method, path with its query string, headers (lower-case), body."""

    method: str
    target: str
    headers: Mapping[str, str]
    body: bytes = b""

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(self.target.partition("?")[2], keep_blank_values=True))


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes


def truth(order: PlannedOrder | None) -> tuple[str, int]:
    """Return what the provider knows of an order: ``paid`` (and the amount really paid),
    ``closed``, ``unpaid`` or ``unknown``."""
    if order is None:
        return "unknown", 0
    paid = order.paid_minor
    if paid is not None:
        return "paid", paid
    if "closed" in order.scenario:
        return "closed", order.amount_minor
    return "unpaid", order.amount_minor


def alipay_order_no(asked: Asked, account: AlipayAccount) -> str | None:
    """Return the order a genuine ``alipay.trade.query`` asks about, or None if not genuine."""
    params = {**asked.query, **dict(parse_qsl(asked.body.decode("utf-8", "replace")))}
    sign = params.pop("sign", "")
    key = account.app_private_key
    if key is None or params.get("app_id") != account.app_id:
        return None
    if params.get("method") != "alipay.trade.query":
        return None
    try:
        message = sign_string(params).encode("utf-8")
        key.public_key().verify(
            base64.b64decode(sign), message, padding.PKCS1v15(), hashes.SHA256()
        )
        number = json.loads(params["biz_content"])["out_trade_no"]
    except (InvalidSignature, ValueError, KeyError, TypeError):
        return None
    return number if isinstance(number, str) else None


def alipay_reply(
    order: PlannedOrder | None, number: str, keys: SigningKeys, *, now: float
) -> Reply:
    """Return Alipay's signed answer about order ``number``."""
    state, amount = truth(order)
    if order is None or state == "unknown":
        node: dict[str, Any] = {
            "code": "40004",
            "msg": "Business Failed",
            "sub_code": "ACQ.TRADE_NOT_EXIST",
            "sub_msg": "交易不存在",
            "out_trade_no": number,
        }
    else:
        status = {"paid": "TRADE_SUCCESS", "closed": "TRADE_CLOSED"}.get(state, "WAIT_BUYER_PAY")
        node = {
            "code": "10000",
            "msg": "Success",
            "out_trade_no": number,
            "trade_no": "2026" + digits(order.payment_ref, 24),
            "trade_status": status,
            "total_amount": yuan(amount),
            "send_pay_date": china_time(now),
        }
    text = json.dumps(node, ensure_ascii=False, separators=(",", ":"))
    assert keys.private_key is not None
    signature = keys.private_key.sign(text.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    sign = base64.b64encode(signature).decode("ascii")
    body = f'{{"{NODE}":{text},"sign":"{sign}"}}'.encode()
    return Reply(200, {"content-type": "text/html;charset=utf-8"}, body)


ALIPAY_REFUSAL = Reply(
    200,
    {"content-type": "text/html;charset=utf-8"},
    b'{"error_response":{"code":"40002","msg":"Invalid Arguments",'
    b'"sub_code":"isv.invalid-signature"}}',
)


def wechat_genuine(asked: Asked, account: WechatPayAccount) -> bool:
    """Return whether a WeChat Pay query carries the merchant's valid signature."""
    scheme, _, rest = asked.headers.get("authorization", "").partition(" ")
    params = {k: v.strip('"') for k, _, v in (p.partition("=") for p in rest.split(","))}
    key = account.merchant_private_key
    if scheme != "WECHATPAY2-SHA256-RSA2048" or key is None or params.get("mchid") != account.mchid:
        return False
    message = sign_message(
        asked.method,
        asked.target,
        params.get("timestamp", ""),
        params.get("nonce_str", ""),
        asked.body,
    )
    try:
        signature = base64.b64decode(params.get("signature", ""))
        key.public_key().verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return asked.query.get("mchid") == account.mchid


def wechat_reply(
    order: PlannedOrder | None, number: str, keys: SigningKeys, *, now: float, nonce: str
) -> Reply:
    """Return WeChat Pay's signed answer about order ``number``."""
    state, amount = truth(order)
    account = keys.account
    assert isinstance(account, WechatPayAccount)
    content: dict[str, Any]
    if order is None or state == "unknown":
        status, content = 404, {"code": "ORDER_NOT_EXIST", "message": "订单不存在"}
    else:
        trade_state = {"paid": "SUCCESS", "closed": "CLOSED"}.get(state, "NOTPAY")
        status, content = (
            200,
            {
                "mchid": account.mchid,
                "appid": account.appid,
                "out_trade_no": number,
                "trade_type": "NATIVE",
                "trade_state": trade_state,
                "trade_state_desc": trade_state,
                "amount": {"total": amount, "payer_total": amount, "currency": order.currency},
            },
        )
        if state == "paid":
            content["transaction_id"] = "42000" + digits(order.payment_ref, 23)
            content["success_time"] = china_time(now).replace(" ", "T") + "+08:00"
    body = json.dumps(content, ensure_ascii=False).encode()
    timestamp = str(int(now))
    assert keys.private_key is not None and keys.serial is not None
    signature = keys.private_key.sign(
        wechat_message(timestamp, nonce, body), padding.PKCS1v15(), hashes.SHA256()
    )
    headers = {
        "content-type": JSON,
        "wechatpay-timestamp": timestamp,
        "wechatpay-nonce": nonce,
        "wechatpay-serial": keys.serial,
        "wechatpay-signature": base64.b64encode(signature).decode("ascii"),
        "wechatpay-signature-type": "WECHATPAY2-SHA256-RSA2048",
    }
    return Reply(status, headers, body)


WECHAT_REFUSAL = Reply(
    401, {"content-type": JSON}, b'{"code":"SIGN_ERROR","message":"bad signature"}'
)


def stripe_order_no(asked: Asked, account: StripeAccount) -> str | None:
    """Return the order a Stripe search with the account's key asks about, or None."""
    expected = f"Bearer {account.api_key.get_secret_value()}"
    if not account.reconciles or asked.headers.get("authorization") != expected:
        return None
    prefix = f"metadata['{account.order_id_metadata_key}']:'"
    query = asked.query.get("query", "")
    if not (query.startswith(prefix) and query.endswith("'")):
        return None
    return query[len(prefix) : -1].replace("\\'", "'").replace("\\\\", "\\")


def stripe_reply(
    order: PlannedOrder | None, number: str, account: StripeAccount, *, now: float
) -> Reply:
    """Return Stripe's search result for order ``number`` (unsigned: Stripe signs no answer)."""
    state, amount = truth(order)
    data = []
    if order is not None and state != "unknown":
        data.append(
            {
                "id": f"pi_{order.payment_ref[:24]}",
                "object": "payment_intent",
                "amount": amount,
                "amount_received": amount if state == "paid" else 0,
                "currency": order.currency.lower(),
                "status": "succeeded" if state == "paid" else "requires_payment_method",
                "metadata": {account.order_id_metadata_key: number},
                "created": int(now),
            }
        )
    body = {"object": "search_result", "data": data, "has_more": False, "next_page": None}
    return Reply(200, {"content-type": JSON}, json.dumps(body).encode())


STRIPE_REFUSAL = Reply(
    401,
    {"content-type": JSON},
    b'{"error":{"type":"invalid_request_error","message":"Invalid API Key"}}',
)
