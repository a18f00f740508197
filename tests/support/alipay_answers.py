"""Alipay's answers to ``alipay.trade.query`` for tests, signed with ``cryptography`` over the raw
response node as Alipay does, independently of ``gateway.providers.alipay_query``."""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from gateway.providers.query import QueryAnswer
from tests.support import alipay as signer


def trade(out_trade_no: str = "order-1", status: str = "TRADE_SUCCESS", **extra: Any) -> str:
    """Return the ``alipay_trade_query_response`` text as Alipay writes it (slashes escaped)."""
    node = {
        "code": "10000",
        "msg": "Success",
        "buyer_logon_id": "159****5620",
        "buyer_pay_amount": "0.00",
        "invoice_amount": "0.00",
        "out_trade_no": out_trade_no,
        "point_amount": "0.00",
        "receipt_amount": "0.00",
        "send_pay_date": "2026-11-27 14:01:02",
        "total_amount": "88.88",
        "trade_no": "2026112722001419720500000001",
        "trade_status": status,
        **extra,
    }
    return json.dumps(node, ensure_ascii=False).replace("/", "\\/")


def answer(node: str, key: int = 0, signed: str | None = None, status: int = 200) -> QueryAnswer:
    """Return Alipay's answer: the node's raw text signed with key ``key`` (as Alipay does)."""
    text = signed if signed is not None else node
    signature = signer.key(key).sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())
    sign = base64.b64encode(signature).decode()
    body = f'{{"alipay_trade_query_response":{node},"sign":"{sign}"}}'
    return QueryAnswer(status, {"content-type": "text/html;charset=utf-8"}, body.encode())
