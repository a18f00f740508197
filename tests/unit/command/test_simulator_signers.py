"""The simulator's signers, checked by the gateway's own verifiers and by the independent
signers of tests/support (which use the providers' SDKs)."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.errors import SignatureError
from gateway.providers import adyen, alipay, standardwebhooks, stripe, wechatpay
from gateway.records import Notification
from paynotify.simulator.keys import signing_keys_for
from paynotify.simulator.plan import (
    PROVIDERS,
    Account,
    Delivery,
    Expected,
    Message,
    Options,
    PlannedOrder,
    plan,
)
from paynotify.simulator.signers import (
    SigningKeys,
    adyen_signature,
    encode_form,
    prepare,
    sign_alipay,
    standard_signature,
    stripe_header,
    tampered_amount,
    wechat_signature,
)
from tests.support import adyen_signer, stripe_signer, wechatpay_signer
from tests.support import alipay as alipay_signer
from tests.support import gateway_requests as reqs
from tests.support import standardwebhooks_signer as sw_signer

NOW = 1_795_687_200.0
VERIFY = {
    "alipay": alipay.verify,
    "wechatpay": wechatpay.verify,
    "stripe": stripe.verify,
    "standardwebhooks": standardwebhooks.verify,
    "adyen": adyen.verify,
}


def keys(provider: str) -> SigningKeys:
    """Return the signing keys of the test gateway's ``shop`` account of ``provider``."""
    account = reqs.accounts()[(provider, "shop")]
    private = alipay_signer.key(0) if provider in ("alipay", "wechatpay") else None
    return signing_keys_for(account, private)


def verify(provider: str, body: bytes, headers: Mapping[str, str]) -> list[Notification]:
    result = VERIFY[provider](body, headers, reqs.accounts()[(provider, "shop")], now=NOW)
    return list(result) if isinstance(result, tuple) else [result]


def every_message(provider: str) -> list[tuple[PlannedOrder, Message]]:
    """Return one plan's orders and messages for ``provider``, covering every scenario."""
    currency = "CNY" if provider in ("alipay", "wechatpay") else "EUR"
    options = Options(orders=60, refunds=0.5, out_of_order=0.3, closes=0.1, tampered=0.2, seed=3)
    the_plan = plan(options, [Account(provider, "shop", currency)])
    return [(o, m) for o in the_plan.orders for m in o.messages]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_prepare_genuine_messages_pass_the_gateway_verifier_with_planned_facts(
    provider: str,
) -> None:
    seen_kinds = set()
    for order, message in every_message(provider):
        prepared = prepare(order, message, keys(provider), now=NOW)
        if not message.genuine:
            continue
        [note] = verify(provider, prepared.body, prepared.headers(NOW))
        kind = "payment" if message.kind == "finished" else message.kind
        assert (note.out_trade_no, note.kind) == (order.out_trade_no, kind)
        assert note.currency == order.currency
        if kind == "payment":
            assert note.amount_minor == message.amount_minor
        if kind == "refund":
            assert note.refund_id
            if note.refund_amount_minor is not None:
                assert note.refund_amount_minor == message.amount_minor
            else:
                assert note.refund_total_minor == message.refund_total_minor
        seen_kinds.add(message.kind)
    assert {"payment", "refund"} <= seen_kinds


@pytest.mark.parametrize("provider", PROVIDERS)
def test_prepare_forged_and_tampered_messages_are_refused(provider: str) -> None:
    judged = {"forged": 0, "tampered": 0}
    for order, message in every_message(provider):
        if message.genuine:
            continue
        prepared = prepare(order, message, keys(provider), now=NOW)
        with pytest.raises(SignatureError):
            verify(provider, prepared.body, prepared.headers(NOW))
        judged[message.authenticity] += 1
    assert judged["forged"] and judged["tampered"]


@pytest.mark.parametrize("provider", ["wechatpay", "stripe", "standardwebhooks"])
def test_prepare_headers_are_signed_again_for_each_attempt(provider: str) -> None:
    order, message = next(
        (o, m) for o, m in every_message(provider) if m.kind == "payment" and m.genuine
    )
    prepared = prepare(order, message, keys(provider), now=NOW)
    later = NOW + 3600
    headers = prepared.headers(later)
    assert headers != prepared.headers(NOW)
    account = reqs.accounts()[(provider, "shop")]
    VERIFY[provider](prepared.body, headers, account, now=later)  # fresh: accepted an hour on


def test_alipay_signature_matches_the_independent_signer() -> None:
    params = alipay_signer.payment("o-1", amount="12.34")
    expected = Expected("paid", paid_events=1)
    order = PlannedOrder("o-1", "alipay", "shop", 1234, "CNY", (), (), expected, "ab" * 16)
    message = Message("payment", "n-1", 1234, (Delivery(0.0),))
    body = prepare(order, message, keys("alipay"), now=NOW).body
    ours = encode_form(sign_alipay(params, alipay_signer.key(0)))
    assert ours == alipay_signer.sign(params)
    assert alipay.parse_form(body)["out_trade_no"] == "o-1"


def test_wechat_signature_matches_the_sdk() -> None:
    body = wechatpay_signer.envelope(wechatpay_signer.transaction("o-1"))
    sdk = wechatpay_signer.headers(body, 1_700_000_000, nonce="abc")
    ours = wechat_signature(alipay_signer.key(0), "1700000000", "abc", body)
    # PKCS#1 v1.5 signatures are deterministic: the same key and message give the same bytes.
    assert ours == sdk["Wechatpay-Signature"]


def test_stripe_header_matches_the_sdk_and_the_documented_vector() -> None:
    body = stripe_signer.body(stripe_signer.intent("o-1"))
    sdk = stripe_signer.headers(body, 1_700_000_000)["Stripe-Signature"]
    assert stripe_header(stripe_signer.SECRET, 1_700_000_000, body) == sdk
    vector = stripe_header("whsec_test_secret", 1_700_000_000, b'{"id":"evt_1"}')
    assert vector.endswith("v1=248a374f50f943a28b0f6ab50faf9a7e7e29b710fa26df9fb1618b9bf8ea9c9a")


def test_standard_signature_matches_the_reference_library_and_official_vector() -> None:
    body = sw_signer.body(sw_signer.payload())
    library = sw_signer.headers(body, 1_700_000_000, msg_id="msg_1")["webhook-signature"]
    assert standard_signature(sw_signer.SECRET, "msg_1", 1_700_000_000, body) == library
    official = standard_signature(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
    )
    assert official == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_adyen_signature_matches_the_library_and_official_vector() -> None:
    item = adyen_signer.item("o-1", value=1130)
    library = adyen_signer.signed(item)["additionalData"]["hmacSignature"]
    assert adyen_signature(adyen_signer.KEY, item) == library
    official = {
        "pspReference": "7914073381342284",
        "merchantAccountCode": "TestMerchant",
        "merchantReference": "TestPayment-1407325143704",
        "amount": {"value": 1130, "currency": "EUR"},
        "eventCode": "AUTHORISATION",
        "success": "true",
    }
    assert (
        adyen_signature(adyen_signer.KEY, official)
        == "coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0="
    )


@pytest.mark.parametrize("provider", PROVIDERS)
def test_forged_keys_differ_from_the_accounts_keys(provider: str) -> None:
    genuine, forged = keys(provider), keys(provider).forged()
    if provider in ("alipay", "wechatpay"):
        assert (
            forged.rsa().public_key().public_numbers()
            != genuine.rsa().public_key().public_numbers()
        )
    if provider != "alipay":
        assert forged.account != genuine.account


def test_tampered_amount_is_a_hundredth_and_never_zero() -> None:
    assert (tampered_amount(12345), tampered_amount(50)) == (123, 1)


def test_wechat_body_decrypts_with_the_accounts_apiv3_key() -> None:
    order, message = next(
        (o, m) for o, m in every_message("wechatpay") if m.kind == "refund" and m.genuine
    )
    body = prepare(order, message, keys("wechatpay"), now=NOW).body
    resource = json.loads(body)["resource"]
    plain = wechatpay.decrypt(resource, AESGCM(wechatpay_signer.APIV3_KEY.encode()))
    assert plain["refund_status"] == "SUCCESS"
    assert plain["amount"]["refund"] == message.amount_minor
