from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlencode

import pytest

from gateway.errors import (
    AccountMismatchError,
    ContentTypeError,
    MalformedBodyError,
    SignatureError,
)
from gateway.providers import alipay
from gateway.providers.alipay import AlipayAccount
from gateway.records import Notification
from tests.support import alipay as signer

FORM = {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}
NOW = 1795687200.0

# The official example of the string Alipay signs (reference/providers.md, section 1.3).
OFFICIAL = (
    "app_id=2016092101248425&buyer_id=2088102114562585&buyer_pay_amount=0.80&fund_bill_list=["
    '{"amount":"0.80","fundChannel":"ALIPAYACCOUNT"},{"amount":"0.20","fundChannel":"MDISCOUNT"}]'
    "&gmt_create=2016-10-12 21:36:12&gmt_payment=2016-10-12 21:37:19&invoice_amount=0.80"
    "&notify_id=7676a2e1e4e737cff30015c4b7b55e3kh6&notify_time=2016-10-12 21:41:23"
    "&notify_type=trade_status_sync&out_trade_no=mobile_rdm862016-10-12213600"
    "&passback_params=passback_params123&point_amount=0.00&receipt_amount=0.80"
    "&seller_id=2088201909970555&subject=PC网站支付交易&total_amount=1.00"
    "&trade_no=2016101221001004580200203978&trade_status=TRADE_SUCCESS&voucher_detail_list=["
    '{"amount":"0.20","merchantContribute":"0.00","name":"5折券","otherContribute":"0.20",'
    '"type":"ALIPAY_DISCOUNT_VOUCHER","voucherId":"2016101200073002586200003BQ4"}]'
)


def account(*keys: int, seller_id: str | None = None) -> AlipayAccount:
    chosen = keys or (0,)
    return AlipayAccount(
        name="shop",
        app_id=signer.APP_ID,
        seller_id=seller_id,
        public_keys=tuple(signer.key(k).public_key() for k in chosen),
    )


def verify(body: bytes, acct: AlipayAccount | None = None) -> Notification:
    return alipay.verify(body, FORM, acct or account(), now=NOW)


def test_canonical_string_official_example_matches() -> None:
    params = dict(pair.split("=", 1) for pair in OFFICIAL.split("&"))
    shuffled = dict(reversed(list(params.items())))
    assert alipay.canonical_string({**shuffled, "sign": "x", "sign_type": "RSA2"}) == OFFICIAL


def test_verify_genuine_rsa2_normalizes_amount_to_fen() -> None:
    note = verify(signer.sign(signer.payment("order-9", amount="12.34")))
    assert (note.out_trade_no, note.amount_minor, note.currency) == ("order-9", 1234, "CNY")
    assert (note.kind, note.status, note.provider) == ("payment", "TRADE_SUCCESS", "alipay")
    assert note.notify_id == "notify-order-9"
    assert note.occurred_at == "2026-11-26T10:00:01+08:00"


def test_verify_legacy_rsa_sha1_accepted() -> None:
    assert verify(signer.sign(signer.payment(), sign_type="RSA")).amount_minor == 100


def test_verify_tampered_amount_raises_signature_error() -> None:
    body = signer.sign(signer.payment(amount="100.00")).replace(b"100.00", b"1.00")
    with pytest.raises(SignatureError):
        verify(body)


def test_verify_wrong_key_raises_signature_error() -> None:
    with pytest.raises(SignatureError):
        verify(signer.sign(signer.payment(), signer.key(1)))


def test_verify_rotated_key_either_configured_key_verifies() -> None:
    both = account(0, 1)
    assert verify(signer.sign(signer.payment(), signer.key(1)), both).amount_minor == 100
    assert verify(signer.sign(signer.payment(), signer.key(0)), both).amount_minor == 100


def test_verify_missing_sign_raises_signature_error() -> None:
    body = b"&".join(
        p for p in signer.sign(signer.payment()).split(b"&") if not p.startswith(b"sign=")
    )
    with pytest.raises(SignatureError):
        verify(body)


def test_verify_unparsable_sign_raises_signature_error() -> None:
    body = signer.sign(signer.payment()) + b"x"
    with pytest.raises(SignatureError):
        verify(body)


def test_verify_other_app_id_raises_account_mismatch() -> None:
    with pytest.raises(AccountMismatchError):
        verify(signer.sign(signer.payment(app_id="2021999999999999")))


def test_verify_other_seller_raises_account_mismatch_when_seller_configured() -> None:
    with pytest.raises(AccountMismatchError):
        verify(signer.sign(signer.payment()), account(seller_id="2088000000000001"))


def test_verify_gbk_form_decodes_chinese_subject() -> None:
    params = signer.payment(charset="gbk", subject="测试商品")
    note = verify(signer.sign(params, charset="gbk"))
    assert note.amount_minor == 100
    assert "%B2%E2" in note.raw_body().decode("ascii")


def test_verify_empty_value_is_part_of_the_signed_string() -> None:
    assert verify(signer.sign(signer.payment(passback_params=""))).amount_minor == 100


def test_verify_json_valued_field_kept_as_sent() -> None:
    bills = '[{"amount":"1.00","fundChannel":"ALIPAYACCOUNT"}]'
    assert verify(signer.sign(signer.payment(fund_bill_list=bills))).amount_minor == 100


def test_verify_wrong_content_type_raises_content_type_error() -> None:
    with pytest.raises(ContentTypeError):
        alipay.verify(
            signer.sign(signer.payment()), {"content-type": "application/json"}, account(), now=NOW
        )


def test_verify_duplicated_field_raises_malformed() -> None:
    with pytest.raises(MalformedBodyError):
        verify(signer.sign(signer.payment()) + b"&out_trade_no=other")


def test_verify_unknown_charset_raises_malformed() -> None:
    with pytest.raises(MalformedBodyError):
        verify(signer.sign(signer.payment()).replace(b"charset=utf-8", b"charset=latin9"))


def test_verify_wait_buyer_pay_is_not_a_notification_status() -> None:
    with pytest.raises(MalformedBodyError):
        verify(signer.sign(signer.payment(trade_status="WAIT_BUYER_PAY")))


def test_verify_trade_closed_is_a_close() -> None:
    assert verify(signer.sign(signer.payment(trade_status="TRADE_CLOSED"))).kind == "close"


def test_verify_cumulative_refund_is_a_refund() -> None:
    params = signer.payment(
        refund_fee="0.40", out_biz_no="refund-1", gmt_refund="2026-11-26 11:00:00.123"
    )
    note = verify(signer.sign(params))
    assert (note.kind, note.refund_id, note.refund_total_minor) == ("refund", "refund-1", 40)


@pytest.mark.parametrize(
    ("amount", "minor"), [("1.00", 100), ("0.01", 1), ("12", 1200), ("99999.9", 9999990)]
)
def test_to_minor_exact_decimal_amounts(amount: str, minor: int) -> None:
    assert alipay.to_minor(amount) == minor


@pytest.mark.parametrize("amount", ["1.001", "-1.00", "abc", "NaN", "Infinity", ""])
def test_to_minor_invalid_amount_raises_malformed(amount: str) -> None:
    with pytest.raises(MalformedBodyError):
        alipay.to_minor(amount)


def test_notification_roundtrip_through_bytes() -> None:
    note = verify(signer.sign(signer.payment()))
    assert Notification.from_bytes(note.to_bytes()) == note


def _sdk_signer() -> Any:
    from alipay import AliPay
    from cryptography.hazmat.primitives import serialization

    private = signer.key(0).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = (
        signer.key(0)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return AliPay(
        appid=signer.APP_ID,
        app_notify_url=None,
        app_private_key_string=private.decode(),
        alipay_public_key_string=public.decode(),
        sign_type="RSA2",
    )


def test_verify_python_alipay_sdk_signature_accepted() -> None:
    params = signer.payment("sdk-1", passback_params="", fund_bill_list='[{"amount":"1.00"}]')
    sdk = _sdk_signer()
    signature = sdk._sign("&".join(f"{k}={params[k]}" for k in sorted(params)))
    body = urlencode({**params, "sign_type": "RSA2", "sign": signature}).encode()
    assert verify(body).out_trade_no == "sdk-1"


def test_verify_python_alipay_sdk_agrees_on_the_test_signer() -> None:
    params = signer.payment("sdk-2", passback_params="")
    fields = dict(pair.split("=", 1) for pair in signer.sign(params).decode().split("&"))
    decoded = {k: unquote(v) for k, v in fields.items()}
    signature = decoded.pop("sign")
    assert _sdk_signer().verify(decoded, signature)
