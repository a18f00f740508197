"""WeChat Pay's order query: the signed request, and the signed answer verified like a webhook."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives import serialization
from wechatpayv3.utils import build_authorization

from gateway.errors import (
    AccountMismatchError,
    MalformedBodyError,
    QueryFailedError,
    SignatureError,
    StaleTimestampError,
)
from gateway.providers import wechatpay_query
from gateway.providers.query import QueryAnswer, QueryOutcome
from gateway.providers.wechatpay import WechatPayAccount
from tests.support import wechatpay_signer as platform
from tests.support.alipay import key

NOW = 1795687200
MERCHANT_KEY = 6
SERIAL = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"


def account() -> WechatPayAccount:
    return WechatPayAccount(
        name="shop-wechat",
        mchid=platform.MCHID,
        appid=platform.APPID,
        apiv3_key=platform.APIV3_KEY,
        platform_public_keys={platform.PUB_KEY_ID: key(0).public_key()},
        merchant_private_key=key(MERCHANT_KEY),
        merchant_serial_no=SERIAL,
    )


def answer(
    body: dict[str, Any] | bytes, status: int = 200, n: int = 0, at: int = NOW
) -> QueryAnswer:
    raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    return QueryAnswer(status, platform.headers(raw, at, n), raw)


def verify(ans: QueryAnswer, out_trade_no: str = "order-1") -> QueryOutcome:
    return wechatpay_query.verify(ans, account(), out_trade_no, now=NOW)


def test_request_authorization_matches_wechatpayv3_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    req = wechatpay_query.request(account(), "order-1", now=NOW, nonce="593BEC0C930BF1AF")
    parts = urlsplit(req.url)
    assert req.method == "GET" and parts.netloc == "api.mch.weixin.qq.com"
    assert parts.path == "/v3/pay/transactions/out-trade-no/order-1"
    assert parts.query == f"mchid={platform.MCHID}"
    pem = key(MERCHANT_KEY).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    monkeypatch.setattr("wechatpayv3.utils.time.time", lambda: NOW)
    from wechatpayv3.utils import load_private_key

    sdk = build_authorization(
        f"{parts.path}?{parts.query}",
        "GET",
        platform.MCHID,
        SERIAL,
        load_private_key(pem.decode()),
        nonce_str="593BEC0C930BF1AF",
    )
    assert _params(req.headers["authorization"]) == _params(sdk)


def _params(header: str) -> dict[str, str]:
    scheme, _, rest = header.partition(" ")
    assert scheme == "WECHATPAY2-SHA256-RSA2048"
    return dict((k, v.strip('"')) for k, _, v in (p.partition("=") for p in rest.split(",")))


def test_verify_paid_answer_becomes_query_payment() -> None:
    outcome = verify(answer(platform.transaction(total=250)))
    (note,) = outcome.notifications
    assert outcome.state == "paid" and note.source == "query"
    assert (note.kind, note.amount_minor, note.currency) == ("payment", 250, "CNY")
    assert note.provider_trade_no == "4200000000202611260000000001"
    assert note.notify_id == "query:payment:SUCCESS:4200000000202611260000000001"


@pytest.mark.parametrize(
    ("trade_state", "state"),
    [("REFUND", "paid"), ("NOTPAY", "unpaid"), ("USERPAYING", "unpaid"), ("CLOSED", "closed")],
)
def test_verify_trade_states_say_what_they_prove(trade_state: str, state: str) -> None:
    assert verify(answer(platform.transaction(trade_state=trade_state))).state == state


def test_verify_signed_order_not_exist_is_not_found() -> None:
    body = {"code": "ORDER_NOT_EXIST", "message": "订单不存在"}
    assert verify(answer(body, status=404)).state == "not_found"


def test_verify_unsigned_404_proves_nothing() -> None:
    with pytest.raises(QueryFailedError):
        verify(QueryAnswer(404, {}, b'{"code":"ORDER_NOT_EXIST","message":"x"}'))


def test_verify_unsigned_paid_answer_refused() -> None:
    with pytest.raises(SignatureError):
        verify(QueryAnswer(200, {}, json.dumps(platform.transaction()).encode()))


def test_verify_forged_answer_refused() -> None:
    with pytest.raises(SignatureError):
        verify(answer(platform.transaction(), n=MERCHANT_KEY))


def test_verify_tampered_amount_refused() -> None:
    genuine = answer(platform.transaction(total=100))
    tampered = genuine.body.replace(b'"total": 100', b'"total": 1')
    with pytest.raises(SignatureError):
        verify(QueryAnswer(200, genuine.headers, tampered))


def test_verify_signature_probe_refused() -> None:
    genuine = answer(platform.transaction())
    probe = {**genuine.headers, "Wechatpay-Signature": "WECHATPAY/SIGNTEST/" + "A" * 300}
    with pytest.raises(SignatureError):
        verify(QueryAnswer(200, probe, genuine.body))


def test_verify_stale_answer_refused() -> None:
    with pytest.raises(StaleTimestampError):
        verify(answer(platform.transaction(), at=NOW - 3600))


def test_verify_other_merchants_order_refused() -> None:
    with pytest.raises(AccountMismatchError):
        verify(answer(platform.transaction(mchid="1900000999")))


def test_verify_answer_about_another_order_refused() -> None:
    with pytest.raises(MalformedBodyError):
        verify(answer(platform.transaction("order-2")))


def test_verify_server_error_proves_nothing() -> None:
    with pytest.raises(QueryFailedError):
        verify(answer({"code": "SYSTEM_ERROR", "message": "x"}, status=500))
