"""WeChat Pay APIv3's order query by ``out_trade_no``, for reconciliation.

Request: ``GET /v3/pay/transactions/out-trade-no/{out_trade_no}?mchid={mchid}`` with
``Authorization: WECHATPAY2-SHA256-RSA2048 mchid=..,nonce_str=..,timestamp=..,serial_no=..,
signature=..``: SHA256withRSA with the merchant API private key over five lines, each ending in a
newline: method, the path and query as sent, timestamp, nonce, and the empty body.

Answer: signed as a notification is (``Wechatpay-Timestamp``/``-Nonce``/``-Signature``/``-Serial``
over ``timestamp\\nnonce\\nbody\\n``, the platform's key, the same timestamp tolerance), but in
plain JSON. ``200``: ``trade_state`` ``SUCCESS`` or ``REFUND`` (paid, then a refund began) is a
payment, ``CLOSED``/``REVOKED`` a close, ``NOTPAY``/``USERPAYING``/``PAYERROR`` unpaid; a signed
``404`` ``ORDER_NOT_EXIST`` says the order is unknown. Anything else, or an unsigned error,
proves nothing (``QueryFailedError``).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from gateway.errors import AccountMismatchError, MalformedBodyError, QueryFailedError
from gateway.providers import fields
from gateway.providers.query import (
    Proven,
    Query,
    QueryAnswer,
    QueryOutcome,
    QueryRequest,
    State,
    proven_notification,
)
from gateway.providers.wechatpay import SIGNATURE_TYPE, WechatPayAccount, check_signature
from gateway.records import Notification

DEFAULT_URL = "https://api.mch.weixin.qq.com"
PATH = "/v3/pay/transactions/out-trade-no/"
# WeChat Pay retries a notification for 24 h 4 m (reference/reconciliation.md, section 5).
HORIZON_SECONDS = 24 * 3600 + 4 * 60
STATES: Mapping[str, State] = {
    "SUCCESS": "paid",
    "REFUND": "paid",
    "CLOSED": "closed",
    "REVOKED": "closed",
    "NOTPAY": "unpaid",
    "USERPAYING": "unpaid",
    "PAYERROR": "unpaid",
}


def sign_message(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """Return what a request's signature covers: five lines, each ending in a newline."""
    return f"{method}\n{path}\n{timestamp}\n{nonce}\n".encode() + body + b"\n"


def request(
    account: WechatPayAccount, out_trade_no: str, *, now: float, nonce: str
) -> QueryRequest:
    """Return the signed order query for one order.

    Raises:
        QueryFailedError: the account has no merchant private key.
    """
    if account.merchant_private_key is None:
        raise QueryFailedError(f"account {account.name!r} has no merchant_private_key")
    base = (account.query_url or DEFAULT_URL).rstrip("/")
    url = f"{base}{PATH}{quote(out_trade_no, safe='')}?mchid={quote(account.mchid, safe='')}"
    parts = urlsplit(url)
    timestamp = str(int(now))
    message = sign_message("GET", f"{parts.path}?{parts.query}", timestamp, nonce, b"")
    signature = account.merchant_private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    authorization = (
        f'{SIGNATURE_TYPE} mchid="{account.mchid}",nonce_str="{nonce}",timestamp="{timestamp}",'
        f'serial_no="{account.merchant_serial_no}",'
        f'signature="{base64.b64encode(signature).decode("ascii")}"'
    )
    return QueryRequest(
        method="GET",
        url=url,
        headers={"authorization": authorization, "accept": "application/json"},
    )


def verify(
    answer: QueryAnswer, account: WechatPayAccount, out_trade_no: str, *, now: float
) -> QueryOutcome:
    """Verify WeChat Pay's answer to an order query and say what it proves.

    Raises:
        QueryFailedError: another status than 200 or 404, or an unsigned 404.
        SignatureError, StaleTimestampError: the answer is not proven WeChat Pay's.
        AccountMismatchError: another merchant's or app's order.
        MalformedBodyError: not JSON, another order, or a field missing or of the wrong type.
    """
    headers = fields.lower_headers(answer.headers)
    if answer.status not in (200, 404):
        raise QueryFailedError(f"wechatpay answered HTTP {answer.status}", reason="http_status")
    if answer.status == 404 and "wechatpay-signature" not in headers:
        raise QueryFailedError("wechatpay answered 404 without a signature", reason="unsigned")
    timestamp = fields.required_header(headers, "wechatpay-timestamp")
    check_signature(headers, timestamp, answer.body, account)
    fields.check_fresh(int(timestamp), now, account.timestamp_tolerance_seconds)
    data = fields.parse_object(answer.body)
    if answer.status == 404:
        if data.get("code") != "ORDER_NOT_EXIST":
            raise QueryFailedError("wechatpay answered 404 without ORDER_NOT_EXIST")
        return QueryOutcome("not_found")
    _check_order(data, account, out_trade_no)
    status = fields.text(data, "trade_state")
    state = STATES.get(status)
    if state is None:
        raise MalformedBodyError("trade_state is not one WeChat Pay answers", reason="trade_state")
    if state == "unpaid":
        return QueryOutcome("unpaid")
    kind = "payment" if state == "paid" else "close"
    return QueryOutcome(state, (_notification(data, kind, answer.body, account, now=now),))


def _check_order(data: Mapping[str, Any], account: WechatPayAccount, out_trade_no: str) -> None:
    if data.get("mchid") != account.mchid:
        raise AccountMismatchError("mchid is not this account's", reason="mchid")
    if "appid" in data and data["appid"] != account.appid:
        raise AccountMismatchError("appid is not this account's", reason="appid")
    if data.get("out_trade_no") != out_trade_no:
        raise MalformedBodyError("the answer is about another order", reason="out_trade_no")


def _notification(
    data: Mapping[str, Any], kind: str, body: bytes, account: WechatPayAccount, *, now: float
) -> Notification:
    transaction_id = fields.optional_text(data, "transaction_id")
    if kind == "payment" and transaction_id is None:
        raise MalformedBodyError("a paid order without transaction_id", reason="missing_field")
    amount = fields.child(data, "amount")
    facts = Proven(
        kind=kind,
        status=fields.text(data, "trade_state"),
        out_trade_no=fields.text(data, "out_trade_no"),
        amount_minor=fields.minor_units(amount, "total"),
        currency=fields.currency(amount.get("currency", "CNY")),
        trade_no=transaction_id or "",
        occurred_at=fields.iso_time(data.get("success_time")),
    )
    return proven_notification(facts, "wechatpay", account, body, now=now)


QUERY = Query(request=request, verify=verify, horizon_seconds=HORIZON_SECONDS)
