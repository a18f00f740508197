"""Stripe's PaymentIntents search by the order number in ``metadata``, for reconciliation.

paynotify does not store PaymentIntent ids, so it searches: ``GET /v1/payment_intents/search?
query=metadata['<order_id_metadata_key>']:'<out_trade_no>'`` with ``Authorization: Bearer
<api_key>``. Stripe signs no API answer: trust rests on TLS to ``api.stripe.com`` and the key,
so ``query_url`` must be HTTPS (or loopback, the simulator). Every ``succeeded`` PaymentIntent
whose metadata names the order is a payment (two are a double charge: the stream reports it); an
empty result may be the search index's lag (up to an hour in an outage), so it is ``not_found``
and the order is asked again later.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from gateway.errors import MalformedBodyError, QueryFailedError
from gateway.providers import fields
from gateway.providers.query import (
    Proven,
    Query,
    QueryAnswer,
    QueryOutcome,
    QueryRequest,
    proven_notification,
)
from gateway.providers.stripe import StripeAccount
from gateway.records import Notification

DEFAULT_URL = "https://api.stripe.com"
PATH = "/v1/payment_intents/search"
SUCCEEDED = "payment_intent.succeeded"  # the status word of the webhook that says the same
# Stripe retries a webhook for up to 3 days in live mode (reference/reconciliation.md, section 5).
HORIZON_SECONDS = 3 * 86400


def search_query(key: str, out_trade_no: str) -> str:
    """Return the search query naming one order in metadata (quotes and backslashes escaped)."""
    value = out_trade_no.replace("\\", "\\\\").replace("'", "\\'")
    return f"metadata['{key}']:'{value}'"


def request(
    account: StripeAccount, out_trade_no: str, *, now: float, nonce: str = ""
) -> QueryRequest:
    """Return the PaymentIntents search for one order (``now`` and ``nonce`` are unused).

    Raises:
        QueryFailedError: the account has no ``api_key``.
    """
    key = account.api_key.get_secret_value()
    if not key:
        raise QueryFailedError(f"account {account.name!r} has no api_key")
    query = urlencode(
        {"query": search_query(account.order_id_metadata_key, out_trade_no), "limit": "100"}
    )
    base = (account.query_url or DEFAULT_URL).rstrip("/")
    return QueryRequest(
        method="GET",
        url=f"{base}{PATH}?{query}",
        headers={"authorization": f"Bearer {key}", "accept": "application/json"},
    )


def verify(
    answer: QueryAnswer, account: StripeAccount, out_trade_no: str, *, now: float
) -> QueryOutcome:
    """Read Stripe's search result and say what it proves about the order.

    Raises:
        QueryFailedError: not a 200.
        MalformedBodyError: not a search result of PaymentIntents, or a field of the wrong type.
    """
    if answer.status != 200:
        raise QueryFailedError(f"stripe answered HTTP {answer.status}", reason="http_status")
    result = fields.parse_object(answer.body)
    intents = result.get("data")
    if result.get("object") != "search_result" or not isinstance(intents, list):
        raise MalformedBodyError("not a search result", reason="object")
    ours = [i for i in intents if _names_order(i, account.order_id_metadata_key, out_trade_no)]
    paid = [i for i in ours if i.get("status") == "succeeded"]
    if paid:
        notes = tuple(_notification(i, answer.body, account, out_trade_no, now=now) for i in paid)
        return QueryOutcome("paid", notes)
    return QueryOutcome("unpaid" if ours else "not_found")


def _names_order(intent: object, key: str, out_trade_no: str) -> bool:
    """Return whether a search hit is a PaymentIntent of this order (the search is not trusted
    to have matched exactly).

    Raises:
        MalformedBodyError: a hit that is not a PaymentIntent object.
    """
    if not isinstance(intent, dict) or intent.get("object") != "payment_intent":
        raise MalformedBodyError("a search hit is not a PaymentIntent", reason="object")
    return fields.child(intent, "metadata").get(key) == out_trade_no


def _notification(
    intent: Mapping[str, Any], body: bytes, account: StripeAccount, out_trade_no: str, *, now: float
) -> Notification:
    amount = intent.get("amount_received") or intent.get("amount")
    created = intent.get("created")
    facts = Proven(
        kind="payment",
        status=SUCCEEDED,
        out_trade_no=out_trade_no,
        amount_minor=fields.minor_units({"amount": amount}, "amount"),
        currency=fields.currency(intent.get("currency")),
        trade_no=fields.text(intent, "id"),
        occurred_at=fields.from_unix(created) if isinstance(created, int) else None,
    )
    return proven_notification(facts, "stripe", account, body, now=now)


QUERY = Query(request=request, verify=verify, horizon_seconds=HORIZON_SECONDS)
