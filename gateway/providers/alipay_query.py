"""Alipay's order query, ``alipay.trade.query`` (OpenAPI v2, ``gateway.do``), for reconciliation.

Request: the common parameters (``app_id``, ``method``, ``format``, ``charset``, ``sign_type``,
``timestamp`` in Beijing time, ``version``) and ``biz_content`` (``{"out_trade_no": ...}``) are
signed together: every parameter but ``sign`` (``sign_type`` included, unlike a notification),
empty ones left out, sorted, ``k=v`` joined with ``&``, SHA256withRSA with the app's private key.
As Alipay's own SDKs send it: a POST whose URL holds the common parameters and ``sign``, and whose
form body holds ``biz_content``.

Answer: ``{"alipay_trade_query_response": {...}, "sign": "..."}``; the signature covers the raw
text of the ``..._response`` value, byte for byte, and is checked with Alipay's public key. The
node must appear once (a second copy could carry other data), and the data read is the signed
text itself, parsed. ``code`` ``10000`` is an answer; ``40004``/``ACQ.TRADE_NOT_EXIST`` means no
trade yet (not terminal: a trade exists only once the buyer opened the cashier). An unsigned or
other error answer proves nothing (``QueryFailedError``). ``TRADE_SUCCESS``/``TRADE_FINISHED``
are a payment, ``TRADE_CLOSED`` a close (as the notification's), ``WAIT_BUYER_PAY`` unpaid.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from gateway.errors import MalformedBodyError, QueryFailedError, SignatureError
from gateway.providers import fields
from gateway.providers.alipay import CHINA, KINDS, AlipayAccount, china_time, to_minor
from gateway.providers.query import (
    Proven,
    Query,
    QueryAnswer,
    QueryOutcome,
    QueryRequest,
    proven_notification,
)
from gateway.records import Notification

DEFAULT_URL = "https://openapi.alipay.com/gateway.do"
METHOD = "alipay.trade.query"
NODE = "alipay_trade_query_response"
FORM = "application/x-www-form-urlencoded;charset=utf-8"
# Alipay retries a notification for 24 h 22 m to 25 h (reference/reconciliation.md, section 5).
HORIZON_SECONDS = 25 * 3600
_NODE_START = re.compile(r'"' + NODE + r'"\s*:\s*')
_DECODER = json.JSONDecoder()


def sign_string(params: dict[str, str]) -> str:
    """Return the string a request's signature covers: all but ``sign``, non-empty, sorted."""
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "sign" and params[k])


def request(
    account: AlipayAccount, out_trade_no: str, *, now: float, nonce: str = ""
) -> QueryRequest:
    """Return the signed ``alipay.trade.query`` request for one order (``nonce`` is unused).

    Raises:
        QueryFailedError: the account has no ``app_private_key``.
    """
    if account.app_private_key is None:
        raise QueryFailedError(f"account {account.name!r} has no app_private_key")
    params = {
        "app_id": account.app_id,
        "method": METHOD,
        "format": "JSON",
        "charset": "utf-8",
        "sign_type": "RSA2",
        "timestamp": datetime.fromtimestamp(now, CHINA).strftime("%Y-%m-%d %H:%M:%S"),
        "version": "1.0",
        "biz_content": json.dumps({"out_trade_no": out_trade_no}, separators=(",", ":")),
    }
    message = sign_string(params).encode("utf-8")
    signature = account.app_private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    biz_content = params.pop("biz_content")
    params["sign"] = base64.b64encode(signature).decode("ascii")
    return QueryRequest(
        method="POST",
        url=f"{account.query_url or DEFAULT_URL}?{urlencode(params)}",
        headers={"content-type": FORM, "accept": "application/json"},
        body=urlencode({"biz_content": biz_content}).encode("ascii"),
    )


def verify(
    answer: QueryAnswer, account: AlipayAccount, out_trade_no: str, *, now: float
) -> QueryOutcome:
    """Verify Alipay's answer to ``alipay.trade.query`` and say what it proves.

    Raises:
        QueryFailedError: not a 200, unsigned, or an error code other than "no such trade".
        SignatureError: the signature does not match Alipay's keys, or the node is repeated.
        MalformedBodyError: not JSON, about another order, or a field outside its format.
    """
    if answer.status != 200:
        raise QueryFailedError(f"alipay answered HTTP {answer.status}", reason="http_status")
    data = signed_data(answer.body, account)
    code = data.get("code")
    if code == "40004" and data.get("sub_code") == "ACQ.TRADE_NOT_EXIST":
        return QueryOutcome("not_found")
    if code != "10000":
        sub_code = str(data.get("sub_code", ""))[:64]
        raise QueryFailedError(f"alipay answered code {str(code)[:16]} {sub_code}".strip())
    if data.get("out_trade_no") != out_trade_no:
        raise MalformedBodyError("the answer is about another order", reason="out_trade_no")
    status = data.get("trade_status")
    if status == "WAIT_BUYER_PAY":
        return QueryOutcome("unpaid")
    kind = KINDS.get(status) if isinstance(status, str) else None
    if kind is None:
        raise MalformedBodyError("trade_status is not one Alipay answers", reason="trade_status")
    note = _notification(data, kind, answer.body, account, now=now)
    return QueryOutcome("paid" if kind == "payment" else "closed", (note,))


def signed_data(body: bytes, account: AlipayAccount) -> dict[str, Any]:
    """Return the ``alipay_trade_query_response`` object once its signature matched.

    Raises:
        QueryFailedError: no node, or no ``sign`` (Alipay does not sign some error answers).
        SignatureError: the node appears twice, or no configured key verifies the signature.
        MalformedBodyError: the body is not a JSON object.
    """
    document = fields.parse_object(body)  # refuses duplicated keys, at the top level too
    text = body.decode("utf-8")
    found = list(_NODE_START.finditer(text))
    if NODE not in document or not found:
        raise QueryFailedError("alipay answered without a trade.query response", reason="no_node")
    if len(found) > 1 or text.count(f'"{NODE}"') > 1:
        raise SignatureError("the response node appears twice", reason="duplicate_node")
    sign = document.get("sign")
    if not isinstance(sign, str) or not sign:
        raise QueryFailedError("alipay answered without a signature", reason="unsigned")
    try:
        _, end = _DECODER.raw_decode(text, found[0].end())
    except ValueError:
        raise MalformedBodyError("the response node is not JSON") from None
    span = text[found[0].end() : end]
    _check_signature(span, sign, account)
    return fields.parse_object(span.encode("utf-8"))


def _check_signature(span: str, sign: str, account: AlipayAccount) -> None:
    try:
        signature = base64.b64decode(sign, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("sign is not base64", reason="signature_missing") from None
    # Alipay's Java SDK also tries the text with JSON's optional "\/" escapes undone.
    candidates = [span, span.replace("\\/", "/")] if "\\/" in span else [span]
    for candidate in candidates:
        for key in account.public_keys:
            try:
                key.verify(
                    signature, candidate.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256()
                )
            except InvalidSignature:
                continue
            return
    raise SignatureError("signature does not match any configured key")


def _notification(
    data: dict[str, Any], kind: str, body: bytes, account: AlipayAccount, *, now: float
) -> Notification:
    trade_no = data.get("trade_no")
    if not isinstance(trade_no, str) or not re.fullmatch(r"[A-Za-z0-9_]{1,64}", trade_no):
        raise MalformedBodyError("trade_no is missing or not in its format", reason="trade_no")
    facts = Proven(
        kind=kind,
        status=str(data["trade_status"]),
        out_trade_no=str(data["out_trade_no"]),
        amount_minor=_amount(data.get("total_amount")),
        currency=account.currency,
        trade_no=trade_no,
        occurred_at=_time(data.get("send_pay_date")),
    )
    return proven_notification(facts, "alipay", account, body, now=now)


def _amount(value: object) -> int:
    """Return a yuan amount (a string, or a JSON number in some of Alipay's examples) in fen.

    Raises:
        MalformedBodyError: neither, or not up to nine digits with two decimals.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise MalformedBodyError("total_amount is missing", reason="amount")
    return to_minor(value if isinstance(value, str) else repr(value))


def _time(value: object) -> str | None:
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", value):
        return None
    return china_time(value)


QUERY = Query(request=request, verify=verify, horizon_seconds=HORIZON_SECONDS)
