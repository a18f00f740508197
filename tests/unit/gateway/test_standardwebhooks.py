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
from gateway.providers import standardwebhooks
from gateway.providers.standardwebhooks import StandardWebhooksAccount
from tests.support import standardwebhooks_signer as signer
from tests.support import vectors

NOW = 1795687200
VECTORS = vectors.load("standardwebhooks")


def account(*secrets: str) -> StandardWebhooksAccount:
    return StandardWebhooksAccount(
        name="partner", signing_secrets=tuple(SecretStr(s) for s in secrets or (signer.SECRET,))
    )


def verify(
    body: bytes, headers: dict[str, str], acct: StandardWebhooksAccount | None = None
) -> Any:
    return standardwebhooks.verify(body, headers, acct or account(), now=NOW)


def genuine(message: dict[str, Any] | None = None, **kwargs: Any) -> tuple[bytes, dict[str, str]]:
    body = signer.body(message or signer.payload(out_trade_no="sw-1"))
    return body, signer.headers(body, NOW, **kwargs)


def test_verify_payment_succeeded_normalizes_payment() -> None:
    note = verify(*genuine())
    assert (note.kind, note.out_trade_no, note.amount_minor, note.currency) == (
        "payment",
        "sw-1",
        100,
        "EUR",
    )
    assert (note.notify_id, note.provider_trade_no) == ("msg_1", "pay_sw-1")


@pytest.mark.parametrize(
    ("event", "kind"), [("payment.closed", "close"), ("refund.succeeded", "refund")]
)
def test_verify_close_and_refund_events_mapped(event: str, kind: str) -> None:
    note = verify(*genuine(signer.payload(event, "sw-2", 30)))
    assert note.kind == kind
    if kind == "refund":
        assert (note.refund_id, note.refund_amount_minor) == ("ref_sw-2", 30)


def test_verify_unmapped_type_raises_unhandled() -> None:
    with pytest.raises(UnhandledEventError):
        verify(*genuine(signer.payload("invoice.paid")))


def test_verify_tampered_byte_raises_signature_error() -> None:
    body, headers = genuine()
    with pytest.raises(SignatureError):
        verify(body.replace(b"100", b"900"), headers)


def test_verify_wrong_secret_raises_signature_error() -> None:
    with pytest.raises(SignatureError):
        verify(*genuine(secret=signer.OTHER_SECRET))


def test_verify_rotated_secret_either_configured_secret_verifies() -> None:
    both = account(signer.SECRET, signer.OTHER_SECRET)
    assert verify(*genuine(secret=signer.OTHER_SECRET), both).amount_minor == 100


def test_verify_several_signatures_and_other_versions_ignored() -> None:
    body, headers = genuine()
    headers["webhook-signature"] = f"v1a,AAAA nocomma v1,AAAA {headers['webhook-signature']}"
    assert verify(body, headers).amount_minor == 100


@pytest.mark.parametrize("offset", [-301, 301])
def test_verify_stale_or_future_timestamp_raises(offset: int) -> None:
    body = signer.body(signer.payload())
    with pytest.raises(StaleTimestampError):
        verify(body, signer.headers(body, NOW + offset))


@pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_verify_missing_header_raises_signature_error(header: str) -> None:
    body, headers = genuine()
    del headers[header]
    with pytest.raises(SignatureError):
        verify(body, headers)


def test_verify_unparsable_timestamp_raises_signature_error() -> None:
    body, headers = genuine()
    headers["webhook-timestamp"] = "1e9"
    with pytest.raises(SignatureError):
        verify(body, headers)


def test_verify_float_amount_raises_malformed() -> None:
    message = signer.payload()
    message["data"]["amount"] = 1.0
    with pytest.raises(MalformedBodyError):
        verify(*genuine(message))


@pytest.mark.parametrize("vector", VECTORS["valid"])
def test_sign_official_vector_matches(vector: dict[str, str]) -> None:
    key = standardwebhooks.secret_key(vector["secret"])
    signature = standardwebhooks.sign(
        key, vector["msg_id"], vector["timestamp"], vector["payload"].encode()
    )
    assert f"v1,{signature}" == vector["signature"]


@pytest.mark.parametrize("vector", VECTORS["valid"])
def test_verify_official_vector_passes_the_signature_check(vector: dict[str, str]) -> None:
    headers = _vector_headers(vector, vector["signature"])
    with pytest.raises(MalformedBodyError):  # signature accepted; the payload is not ours
        standardwebhooks.verify(
            vector["payload"].encode(),
            headers,
            account(vector["secret"]),
            now=float(vector["timestamp"]),
        )


@pytest.mark.parametrize(
    ("index", "signature"),
    [(0, s) for s in VECTORS["invalid_for_first"]]
    + [(1, s) for s in VECTORS["invalid_for_second"]],
)
def test_verify_official_invalid_signatures_raise(index: int, signature: str) -> None:
    vector = VECTORS["valid"][index]
    with pytest.raises(SignatureError):
        standardwebhooks.verify(
            vector["payload"].encode(),
            _vector_headers(vector, signature),
            account(vector["secret"]),
            now=float(vector["timestamp"]),
        )


@pytest.mark.parametrize("secret", VECTORS["unpadded_secrets"])
def test_verify_unpadded_secret_signed_by_the_library_accepted(secret: str) -> None:
    body = signer.body(signer.payload())
    headers = signer.headers(body, NOW, secret=secret)
    assert verify(body, headers, account(secret)).amount_minor == 100


def _vector_headers(vector: dict[str, str], signature: str) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": vector["msg_id"],
        "webhook-timestamp": vector["timestamp"],
        "webhook-signature": signature,
    }


def test_verify_uses_the_keys_decoded_at_load(monkeypatch: pytest.MonkeyPatch) -> None:
    acct = account()
    monkeypatch.setattr(standardwebhooks, "secret_key", None)  # nothing decoded per request
    assert verify(*genuine(), acct).kind == "payment"
