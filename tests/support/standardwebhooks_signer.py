"""Standard Webhooks messages for tests, signed by the ``standardwebhooks`` reference library."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

from standardwebhooks import Webhook

SECRET = "whsec_" + base64.b64encode(b"generated test secret, 32 bytes").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"another test secret of 32 bytes").decode()


def payload(
    event_type: str = "payment.succeeded", out_trade_no: str = "order-1", amount: int = 100
) -> dict[str, Any]:
    """Return a message in the shape documented in DESIGN.md."""
    data: dict[str, Any] = {
        "id": f"pay_{out_trade_no}",
        "out_trade_no": out_trade_no,
        "amount": amount,
        "currency": "EUR",
    }
    if event_type.startswith("refund."):
        data["refund_id"] = f"ref_{out_trade_no}"
    return {"type": event_type, "timestamp": "2026-11-26T10:00:00Z", "data": data}


def headers(
    body: bytes, timestamp: int, msg_id: str = "msg_1", secret: str = SECRET
) -> dict[str, str]:
    """Return the webhook-* headers, signed by ``standardwebhooks.Webhook.sign``."""
    when = datetime.fromtimestamp(timestamp, UTC)
    signature = Webhook(secret).sign(msg_id, when, body.decode())
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def body(message: dict[str, Any]) -> bytes:
    """Serialize a message."""
    return json.dumps(message).encode()
