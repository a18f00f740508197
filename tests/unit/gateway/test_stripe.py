from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from gateway.errors import (
    MalformedBodyError,
    SignatureError,
    StaleTimestampError,
    UnhandledEventError,
)
from gateway.providers import stripe
from gateway.providers.stripe import StripeAccount
from tests.support import stripe_signer as signer
from tests.support import vectors

NOW = 1795687200


def account(*secrets: str, metadata_key: str = "out_trade_no") -> StripeAccount:
    return StripeAccount(
        name="shop-stripe",
        signing_secrets=tuple(SecretStr(s) for s in secrets or (signer.SECRET,)),
        order_id_metadata_key=metadata_key,
    )


def verify(body: bytes, headers: dict[str, str], acct: StripeAccount | None = None) -> Any:
    return stripe.verify(body, headers, acct or account(), now=NOW)


def genuine(event: dict[str, Any] | None = None, **kwargs: Any) -> tuple[bytes, dict[str, str]]:
    body = signer.body(event or signer.intent("st-1"))
    return body, signer.headers(body, NOW, **kwargs)


def test_verify_payment_intent_succeeded_normalizes_payment() -> None:
    note = verify(*genuine())
    assert (note.kind, note.status, note.out_trade_no) == (
        "payment",
        "payment_intent.succeeded",
        "st-1",
    )
    assert (note.amount_minor, note.currency, note.provider_trade_no) == (100, "CNY", "pi_st-1")
    assert note.notify_id == "evt_pi_st-1"


def test_verify_checkout_session_completed_is_a_payment() -> None:
    note = verify(*genuine(signer.checkout("st-2")))
    assert (note.kind, note.amount_minor, note.currency) == ("payment", 100, "USD")


def test_verify_unpaid_checkout_session_is_unhandled() -> None:
    with pytest.raises(UnhandledEventError):
        verify(*genuine(signer.checkout("st-3", payment_status="unpaid")))


def test_verify_charge_refunded_keeps_cumulative_total() -> None:
    note = verify(*genuine(signer.refunded("st-4")))
    assert (note.kind, note.refund_total_minor, note.refund_id) == ("refund", 40, "re_1")


def test_verify_order_id_from_configured_metadata_key() -> None:
    event = signer.intent("st-5", metadata={"order": "A-77"})
    assert verify(*genuine(event), account(metadata_key="order")).out_trade_no == "A-77"


def test_verify_missing_metadata_order_id_raises_malformed() -> None:
    with pytest.raises(MalformedBodyError):
        verify(*genuine(signer.intent("st-6", metadata={})))


def test_verify_tampered_byte_raises_signature_error() -> None:
    body, headers = genuine()
    with pytest.raises(SignatureError):
        verify(body.replace(b'"amount": 100', b'"amount": 900'), headers)


def test_verify_wrong_secret_raises_signature_error() -> None:
    with pytest.raises(SignatureError):
        verify(*genuine(secret=signer.OTHER_SECRET))


def test_verify_rotated_secret_either_configured_secret_verifies() -> None:
    both = account(signer.SECRET, signer.OTHER_SECRET)
    assert verify(*genuine(secret=signer.OTHER_SECRET), both).amount_minor == 100
    assert verify(*genuine(), both).amount_minor == 100


def test_verify_several_v1_one_matching_verifies() -> None:
    body, headers = genuine()
    headers["Stripe-Signature"] += ",v1=" + "0" * 64
    headers["Stripe-Signature"] = headers["Stripe-Signature"].replace("t=", "v0=abc,t=")
    assert verify(body, headers).amount_minor == 100


def test_verify_only_v0_raises_signature_error() -> None:
    body, headers = genuine()
    headers["Stripe-Signature"] = headers["Stripe-Signature"].replace("v1=", "v0=")
    with pytest.raises(SignatureError):
        verify(body, headers)


@pytest.mark.parametrize("offset", [-301, 301])
def test_verify_stale_or_future_timestamp_raises(offset: int) -> None:
    body = signer.body(signer.intent())
    with pytest.raises(StaleTimestampError):
        verify(body, signer.headers(body, NOW + offset))


@pytest.mark.parametrize("header", ["", "garbage", "t=,v1=ab", "v1=ab", "t=1795687200", "t=x,v1=a"])
def test_verify_unparsable_header_raises_signature_error(header: str) -> None:
    body, headers = genuine()
    headers["Stripe-Signature"] = header
    with pytest.raises(SignatureError):
        verify(body, headers)


def test_verify_missing_header_raises_signature_error() -> None:
    body, headers = genuine()
    del headers["Stripe-Signature"]
    with pytest.raises(SignatureError):
        verify(body, headers)


def test_verify_unmapped_event_raises_unhandled() -> None:
    event = {**signer.intent(), "type": "customer.created"}
    with pytest.raises(UnhandledEventError):
        verify(*genuine(event))


def test_expected_signature_reference_vector_matches() -> None:
    v = vectors.load("stripe")
    signature = stripe.expected_signature(v["secret"], v["timestamp"], v["payload"].encode())
    assert v["header"] == f"t={v['timestamp']},v1={signature}"


def test_verify_reference_vector_signature_passes() -> None:
    v = vectors.load("stripe")
    headers = {"content-type": "application/json", "stripe-signature": v["header"]}
    # The vector's secret is shorter than a configuration may hold: built around those checks.
    short = StripeAccount.model_construct(name="vector", signing_secrets=(SecretStr(v["secret"]),))
    with pytest.raises(MalformedBodyError):  # signature accepted; {"id":"evt_1"} has no type
        stripe.verify(v["payload"].encode(), headers, short, now=1700000000)


def test_parse_header_docs_example_keeps_v1_and_ignores_v0() -> None:
    example = vectors.load("stripe")["docs_header"]
    assert stripe.parse_header(example["header"]) == (example["timestamp"], example["v1"])


def test_verify_uses_the_keys_decoded_at_load(monkeypatch: pytest.MonkeyPatch) -> None:
    acct = account()
    monkeypatch.setattr(stripe, "expected_signature", None)  # no secret is read per request
    assert verify(*genuine(), acct=acct).out_trade_no == "st-1"
    assert acct.key_bytes == (signer.SECRET.encode(),)
