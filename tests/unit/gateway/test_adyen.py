from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from gateway.errors import ConfigError, ContentTypeError, MalformedBodyError, SignatureError
from gateway.providers import adyen
from gateway.providers.adyen import AdyenAccount
from tests.support import adyen_signer as signer
from tests.support import vectors

NOW = 1795687200


def account(*keys: str) -> AdyenAccount:
    return AdyenAccount(
        name="shop-adyen", hmac_keys=tuple(SecretStr(k) for k in keys or (signer.KEY,))
    )


def verify(body: bytes, acct: AdyenAccount | None = None) -> Any:
    return adyen.verify(body, signer.HEADERS, acct or account(), now=NOW)


def test_verify_authorisation_normalizes_payment() -> None:
    [note] = verify(signer.batch(signer.signed(signer.item("ad-1"))))
    assert (note.kind, note.out_trade_no, note.amount_minor, note.currency) == (
        "payment",
        "ad-1",
        100,
        "EUR",
    )
    assert (note.notify_id, note.status) == ("7914073381342284:AUTHORISATION", "AUTHORISATION")


def test_verify_batch_every_item_verified_and_mapped() -> None:
    items = [
        signer.signed(signer.item("ad-2", psp="1111111111111111")),
        signer.signed(
            signer.item(
                "ad-2", "REFUND", 40, psp="2222222222222222", originalReference="1111111111111111"
            )
        ),
        signer.signed(signer.item("ad-3", "CANCELLATION", psp="3333333333333333")),
        signer.signed(signer.item("ad-4", "REPORT_AVAILABLE", psp="4444444444444444")),
        signer.signed(signer.item("ad-5", success="false", psp="5555555555555555")),
    ]
    notes = verify(signer.batch(*items))
    assert [(n.kind, n.out_trade_no) for n in notes] == [
        ("payment", "ad-2"),
        ("refund", "ad-2"),
        ("close", "ad-3"),
    ]
    refund = notes[1]
    assert (refund.refund_id, refund.refund_amount_minor, refund.provider_trade_no) == (
        "2222222222222222",
        40,
        "1111111111111111",
    )


def test_verify_one_bad_item_refuses_the_batch() -> None:
    good = signer.signed(signer.item("ad-6"))
    bad = signer.signed(signer.item("ad-7"), signer.OTHER_KEY)
    with pytest.raises(SignatureError):
        verify(signer.batch(good, bad))


def test_verify_tampered_amount_raises_signature_error() -> None:
    body = signer.batch(signer.signed(signer.item("ad-8", value=100)))
    with pytest.raises(SignatureError):
        verify(body.replace(b'"value": 100', b'"value": 1'))


def test_verify_rotated_key_either_configured_key_verifies() -> None:
    body = signer.batch(signer.signed(signer.item("ad-9"), signer.OTHER_KEY))
    assert len(verify(body, account(signer.KEY, signer.OTHER_KEY))) == 1
    with pytest.raises(SignatureError):
        verify(body)


def test_verify_missing_signature_raises_signature_error() -> None:
    with pytest.raises(SignatureError):
        verify(signer.batch(signer.item("ad-10")))


@pytest.mark.parametrize(
    "body", [b"", b"[]", b'{"notificationItems": []}', b'{"notificationItems": [1]}']
)
def test_verify_malformed_batch_raises_malformed(body: bytes) -> None:
    with pytest.raises(MalformedBodyError):
        verify(body)


def test_verify_wrong_content_type_raises() -> None:
    body = signer.batch(signer.signed(signer.item()))
    with pytest.raises(ContentTypeError):
        adyen.verify(body, {"content-type": "text/plain"}, account(), now=NOW)


def test_signing_string_and_signature_official_vector_match() -> None:
    v = vectors.load("adyen")
    assert adyen.signing_string(v["item"]) == v["signing_string"]
    assert adyen.item_signature(bytes.fromhex(v["key"]), v["item"]) == v["signature"]


def test_verify_official_vector_item_accepted() -> None:
    v = vectors.load("adyen")
    item = {**v["item"], "additionalData": {"hmacSignature": v["signature"]}}
    [note] = adyen.verify(signer.batch(item), signer.HEADERS, account(v["key"]), now=NOW)
    assert (note.out_trade_no, note.amount_minor) == ("TestPayment-1407325143704", 1130)


def test_verify_uses_the_keys_decoded_at_load(monkeypatch: pytest.MonkeyPatch) -> None:
    acct = account()
    monkeypatch.setattr(adyen, "hex_key", None)  # nothing decoded per request
    [note] = verify(signer.batch(signer.signed(signer.item("ad-once"))), acct)
    assert note.out_trade_no == "ad-once"
    assert acct.key_bytes == (bytes.fromhex(signer.KEY),)


def test_account_unusable_key_refused_naming_the_account() -> None:
    with pytest.raises(ConfigError, match="account 'shop-adyen': hmac_keys must be hex"):
        account("not hex")
