"""Stripe events for tests, signed by the ``stripe`` SDK's own test helper."""

from __future__ import annotations

import json
from typing import Any

from stripe import WebhookSignature

SECRET = "whsec_test_generated_secret_0"
OTHER_SECRET = "whsec_test_generated_secret_1"


def intent(out_trade_no: str = "order-1", amount: int = 100, **extra: Any) -> dict[str, Any]:
    """Return a ``payment_intent.succeeded`` event."""
    obj = {
        "id": f"pi_{out_trade_no}",
        "object": "payment_intent",
        "amount": amount,
        "amount_received": amount,
        "currency": "cny",
        "status": "succeeded",
        "metadata": {"out_trade_no": out_trade_no},
    }
    return _event("payment_intent.succeeded", {**obj, **extra})


def checkout(out_trade_no: str = "order-1", payment_status: str = "paid") -> dict[str, Any]:
    """Return a ``checkout.session.completed`` event."""
    obj = {
        "id": f"cs_{out_trade_no}",
        "object": "checkout.session",
        "amount_total": 100,
        "currency": "usd",
        "payment_intent": f"pi_{out_trade_no}",
        "payment_status": payment_status,
        "metadata": {"out_trade_no": out_trade_no},
    }
    return _event("checkout.session.completed", obj)


def refunded(out_trade_no: str = "order-1") -> dict[str, Any]:
    """Return a ``charge.refunded`` event: 40 of 100 refunded so far."""
    obj = {
        "id": f"ch_{out_trade_no}",
        "object": "charge",
        "amount": 100,
        "amount_refunded": 40,
        "currency": "cny",
        "payment_intent": f"pi_{out_trade_no}",
        "refunded": False,
        "metadata": {"out_trade_no": out_trade_no},
        "refunds": {"object": "list", "data": [{"id": "re_1", "amount": 40}]},
    }
    return _event("charge.refunded", obj)


def _event(event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"evt_{obj['id']}",
        "object": "event",
        "type": event_type,
        "created": 1795687200,
        "livemode": False,
        "data": {"object": obj},
    }


def body(event: dict[str, Any]) -> bytes:
    """Serialize an event as Stripe sends it (pretty-printed JSON)."""
    return json.dumps(event, indent=2).encode()


def headers(payload: bytes, timestamp: int, secret: str = SECRET) -> dict[str, str]:
    """Return the Stripe-Signature headers, made by the SDK's ``generate_signature_header``."""
    header = WebhookSignature.generate_signature_header(payload.decode(), secret, timestamp)
    return {"Content-Type": "application/json; charset=utf-8", "Stripe-Signature": header}
