"""``alipay.trade.query``: the signed request, and the answer verified as strictly as a webhook."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from alipay import AliPay
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from gateway.errors import MalformedBodyError, QueryFailedError, SignatureError
from gateway.providers import alipay_query
from gateway.providers.alipay import AlipayAccount
from gateway.providers.query import QueryAnswer
from tests.support import alipay as signer
from tests.support.alipay_answers import answer, trade

NOW = 1795687200.0  # 2026-11-26 10:00:00 UTC, 18:00:00 Beijing time
APP_KEY = 5  # the merchant app's key; key 0 plays Alipay


def account(**extra: Any) -> AlipayAccount:
    return AlipayAccount(
        name="shop",
        app_id=signer.APP_ID,
        public_keys=(signer.key(0).public_key(),),
        app_private_key=signer.key(APP_KEY),
        **extra,
    )


def _public_pem(n: int) -> str:
    return (
        signer.key(n)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def verify(ans: QueryAnswer, out_trade_no: str = "order-1") -> Any:
    return alipay_query.verify(ans, account(), out_trade_no, now=NOW)


def test_request_signature_matches_python_alipay_sdk() -> None:
    req = alipay_query.request(account(), "order-1", now=NOW)
    params = dict(parse_qsl(urlsplit(req.url).query))
    params.update(parse_qsl(req.body.decode()))
    sign = params.pop("sign")
    pem = signer.key(APP_KEY).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    sdk = AliPay(signer.APP_ID, None, pem.decode(), _public_pem(0), sign_type="RSA2")
    signed = dict(parse_qsl(sdk.sign_data(dict(params)), keep_blank_values=True))
    assert signed["sign"] == sign  # PKCS#1 v1.5 is deterministic: the same string, the same bytes


def test_request_signs_sign_type_and_beijing_time_and_posts_biz_content() -> None:
    req = alipay_query.request(account(), "order-1", now=NOW)
    query = dict(parse_qsl(urlsplit(req.url).query))
    assert req.method == "POST" and req.url.startswith(alipay_query.DEFAULT_URL + "?")
    assert query["timestamp"] == "2026-11-26 18:00:00" and query["method"] == "alipay.trade.query"
    assert dict(parse_qsl(req.body.decode())) == {"biz_content": '{"out_trade_no":"order-1"}'}
    unsigned = {**query, "biz_content": '{"out_trade_no":"order-1"}'}
    message = "&".join(f"{k}={unsigned[k]}" for k in sorted(unsigned) if k != "sign")
    assert "sign_type=RSA2" in message
    signer.key(APP_KEY).public_key().verify(
        base64.b64decode(query["sign"]), message.encode(), padding.PKCS1v15(), hashes.SHA256()
    )


def test_verify_paid_answer_becomes_query_payment() -> None:
    outcome = verify(answer(trade()))
    (note,) = outcome.notifications
    assert outcome.state == "paid"
    assert (note.kind, note.amount_minor, note.source) == ("payment", 8888, "query")
    assert note.provider_trade_no == "2026112722001419720500000001"
    assert note.notify_id == "query:payment:TRADE_SUCCESS:2026112722001419720500000001"
    assert note.occurred_at == "2026-11-27T14:01:02+08:00"


def test_verify_same_answer_twice_same_notification_facts() -> None:
    first, second = verify(answer(trade())), verify(answer(trade()))
    assert first.notifications[0].notify_id == second.notifications[0].notify_id


def test_verify_python_alipay_sdk_accepts_the_same_answers() -> None:
    private = signer.key(APP_KEY).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    sdk = AliPay(signer.APP_ID, None, private.decode(), _public_pem(0), sign_type="RSA2")
    ans = answer(trade())
    result = sdk._verify_and_return_sync_response(ans.body.decode(), alipay_query.NODE)
    assert result["trade_status"] == verify(ans).notifications[0].status


@pytest.mark.parametrize(
    ("status", "state"), [("WAIT_BUYER_PAY", "unpaid"), ("TRADE_CLOSED", "closed")]
)
def test_verify_other_statuses_say_what_they_prove(status: str, state: str) -> None:
    assert verify(answer(trade(status=status))).state == state


def test_verify_trade_not_exist_is_not_found() -> None:
    node = json.dumps(
        {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_NOT_EXIST"}
    )
    assert verify(answer(node)).state == "not_found"


def test_verify_unsigned_error_proves_nothing() -> None:
    body = b'{"alipay_trade_query_response":{"code":"40002","sub_code":"isv.invalid-app-id"}}'
    with pytest.raises(QueryFailedError):
        verify(QueryAnswer(200, {}, body))


def test_verify_other_signed_error_proves_nothing() -> None:
    with pytest.raises(QueryFailedError):
        verify(answer(json.dumps({"code": "20000", "sub_code": "isp.unknow-error"})))


def test_verify_forged_answer_refused() -> None:
    with pytest.raises(SignatureError):
        verify(answer(trade(), key=APP_KEY))


def test_verify_tampered_amount_refused() -> None:
    with pytest.raises(SignatureError):
        verify(answer(trade(total_amount="0.01"), signed=trade()))


def test_verify_repeated_node_refused() -> None:
    genuine = answer(trade(status="WAIT_BUYER_PAY")).body.decode()
    forged = genuine[:-1] + ',"alipay_trade_query_response":' + trade() + "}"
    with pytest.raises((SignatureError, MalformedBodyError)):
        verify(QueryAnswer(200, {}, forged.encode()))


def test_verify_answer_about_another_order_refused() -> None:
    with pytest.raises(MalformedBodyError):
        verify(answer(trade("order-2")))


def test_verify_http_error_proves_nothing() -> None:
    with pytest.raises(QueryFailedError):
        verify(answer(trade(), status=502))


def test_verify_paid_without_trade_no_refused() -> None:
    node = json.loads(trade())
    del node["trade_no"]
    with pytest.raises(MalformedBodyError):
        verify(answer(json.dumps(node)))


def test_verify_amount_as_json_number_read_without_float_error() -> None:
    node = trade().replace('"total_amount": "88.88"', '"total_amount": 0.29')
    assert verify(answer(node)).notifications[0].amount_minor == 29


def test_verify_signature_over_unescaped_slashes_accepted_as_alipays_sdk_does() -> None:
    node = trade(qr_code="https://qr.alipay.com/bax0")  # written with escaped slashes
    assert "\\/" in node
    signed = answer(node, signed=node.replace("\\/", "/"))
    assert verify(signed).state == "paid"


def test_verify_unsigned_success_answer_proves_nothing() -> None:
    body = f'{{"alipay_trade_query_response":{trade()}}}'.encode()
    with pytest.raises(QueryFailedError):
        verify(QueryAnswer(200, {}, body))
