"""Adyen notification batches for tests, signed by the ``Adyen`` library's
``generate_notification_sig``."""

from __future__ import annotations

import json
from typing import Any

from Adyen.util import generate_notification_sig

# The official test key (Adyen/adyen-python-api-library test/UtilTest.py) and a generated one.
KEY = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
OTHER_KEY = "0F1E2D3C4B5A69788796A5B4C3D2E1F00F1E2D3C4B5A69788796A5B4C3D2E1F0"


def item(
    out_trade_no: str = "order-1",
    event: str = "AUTHORISATION",
    value: int = 100,
    success: str = "true",
    psp: str = "7914073381342284",
    **extra: Any,
) -> dict[str, Any]:
    """Return one unsigned NotificationRequestItem."""
    return {
        "pspReference": psp,
        "merchantAccountCode": "TestMerchant",
        "merchantReference": out_trade_no,
        "amount": {"value": value, "currency": "EUR"},
        "eventCode": event,
        "eventDate": "2026-11-26T10:00:00+01:00",
        "success": success,
        "paymentMethod": "visa",
        "operations": ["CANCEL", "CAPTURE", "REFUND"],
        "reason": "033899:1111:03/2030",
        "additionalData": {},
        **extra,
    }


def signed(unsigned: dict[str, Any], key: str = KEY) -> dict[str, Any]:
    """Return the item with ``additionalData.hmacSignature`` set by the Adyen library."""
    signature = generate_notification_sig(unsigned, key).decode()
    additional = {**unsigned.get("additionalData", {}), "hmacSignature": signature}
    return {**unsigned, "additionalData": additional}


def batch(*items: dict[str, Any]) -> bytes:
    """Return a batch body holding the items."""
    wrapped = [{"NotificationRequestItem": i} for i in items]
    return json.dumps({"live": "false", "notificationItems": wrapped}).encode()


HEADERS = {"Content-Type": "application/json"}
