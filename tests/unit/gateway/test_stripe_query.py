"""Stripe's PaymentIntents search: the request, and the answer read strictly."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from gateway.errors import MalformedBodyError, QueryFailedError
from gateway.providers import stripe_query
from gateway.providers.query import QueryAnswer, QueryOutcome
from gateway.providers.stripe import StripeAccount
from tests.support import stripe_signer

NOW = 1795687200
API_KEY = "rk_test_generated_restricted_key_0000000000"


def account() -> StripeAccount:
    return StripeAccount(
        name="shop-stripe", signing_secrets=(stripe_signer.SECRET,), api_key=API_KEY
    )


def intent(out_trade_no: str = "order-1", amount: int = 100, **extra: Any) -> dict[str, Any]:
    """Return a PaymentIntent as the search lists it (the object of the signer's event)."""
    obj: dict[str, Any] = stripe_signer.intent(out_trade_no, amount, **extra)["data"]["object"]
    return obj


def result(*intents: dict[str, Any]) -> QueryAnswer:
    body = {"object": "search_result", "data": list(intents), "has_more": False}
    return QueryAnswer(200, {"content-type": "application/json"}, json.dumps(body).encode())


def verify(ans: QueryAnswer, out_trade_no: str = "order-1") -> QueryOutcome:
    return stripe_query.verify(ans, account(), out_trade_no, now=NOW)


def test_request_searches_metadata_with_bearer_key() -> None:
    req = stripe_query.request(account(), "it's-1", now=NOW)
    parts = urlsplit(req.url)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "https",
        "api.stripe.com",
        stripe_query.PATH,
    )
    assert dict(parse_qsl(parts.query))["query"] == "metadata['out_trade_no']:'it\\'s-1'"
    assert req.headers["authorization"] == f"Bearer {API_KEY}"


def test_verify_succeeded_intent_becomes_query_payment() -> None:
    outcome = verify(result(intent(amount=1234)))
    (note,) = outcome.notifications
    assert outcome.state == "paid" and note.source == "query"
    assert (note.amount_minor, note.currency, note.status) == (
        1234,
        "CNY",
        "payment_intent.succeeded",
    )
    assert note.notify_id == f"query:payment:payment_intent.succeeded:{note.provider_trade_no}"


def test_verify_two_succeeded_intents_are_two_payments() -> None:
    first = intent(id="pi_1")
    second = intent(id="pi_2")
    trade_nos = {n.provider_trade_no for n in verify(result(first, second)).notifications}
    assert trade_nos == {"pi_1", "pi_2"}


def test_verify_hit_of_another_order_is_ignored() -> None:
    assert verify(result(intent("order-2"))).state == "not_found"


def test_verify_unpaid_intent_is_unpaid() -> None:
    pending = intent(status="requires_payment_method")
    assert verify(result(pending)).state == "unpaid"


def test_verify_empty_result_is_not_found() -> None:
    assert verify(result()).state == "not_found"


def test_verify_error_status_proves_nothing() -> None:
    with pytest.raises(QueryFailedError):
        verify(QueryAnswer(401, {}, b'{"error": {"type": "invalid_request_error"}}'))


@pytest.mark.parametrize(
    "body",
    [b"not json", b'{"object": "list", "data": []}', b'{"object": "search_result", "data": [1]}'],
)
def test_verify_not_a_search_result_refused(body: bytes) -> None:
    with pytest.raises(MalformedBodyError):
        verify(QueryAnswer(200, {}, body))
