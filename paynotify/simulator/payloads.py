"""What each provider sends for one planned notification, before signing: Alipay's form
parameters, WeChat Pay's decrypted resource, Stripe's event, the Standard Webhooks payload and the
Adyen item. Shapes follow docs/providers.md; values are derived from the plan, so they are
deterministic for a seed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from paynotify.simulator.plan import Message, PlannedOrder

CHINA = timezone(timedelta(hours=8))
BUYER_ID = "2088102177846880"
SELLER_ID = "2088102177296610"


def yuan(minor: int) -> str:
    """Return integer fen as Alipay's yuan text (``100`` -> ``"1.00"``)."""
    return f"{minor // 100}.{minor % 100:02d}"


def china_time(now: float) -> str:
    """Return ``now`` as Alipay writes times: ``yyyy-MM-dd HH:mm:ss`` in China time."""
    return datetime.fromtimestamp(now, CHINA).strftime("%Y-%m-%d %H:%M:%S")


def digits(hex_id: str, count: int) -> str:
    """Return ``count`` decimal digits derived from a hex id (providers' numeric references)."""
    return f"{int(hex_id, 16) % 10**count:0{count}d}"


def alipay_params(
    order: PlannedOrder, message: Message, *, app_id: str, seller_id: str | None, now: float
) -> dict[str, str]:
    """Return the ``trade_status_sync`` parameters of a payment, refund or close."""
    local = china_time(now)
    params = {
        "notify_time": local,
        "notify_type": "trade_status_sync",
        "notify_id": message.notify_id,
        "app_id": app_id,
        "charset": "utf-8",
        "version": "1.0",
        "trade_no": "2026" + digits(order.payment_ref, 24),
        "out_trade_no": order.out_trade_no,
        "trade_status": _alipay_status(message),
        "total_amount": yuan(
            message.amount_minor if message.kind != "refund" else order.amount_minor
        ),
        "buyer_id": BUYER_ID,
        "seller_id": seller_id or SELLER_ID,
        "gmt_create": local,
        "subject": "paynotify simulate",
    }
    if message.kind in ("payment", "finished"):
        paid = yuan(message.amount_minor)
        params |= {"gmt_payment": local, "receipt_amount": paid, "refund_fee": "0.00"}
        params["fund_bill_list"] = f'[{{"amount":"{paid}","fundChannel":"ALIPAYACCOUNT"}}]'
    elif message.kind == "refund":
        params |= {"out_biz_no": str(message.refund_id), "gmt_refund": local + ".000"}
        params |= {"refund_fee": yuan(message.refund_total_minor), "gmt_payment": local}
    else:
        params["gmt_close"] = local
    return params


def _alipay_status(message: Message) -> str:
    if message.kind == "finished":
        return "TRADE_FINISHED"
    if message.kind == "close" or (message.kind == "refund" and message.full_refund):
        return "TRADE_CLOSED"  # Alipay closes a trade that is fully refunded
    return "TRADE_SUCCESS"


def wechat_resource(
    order: PlannedOrder, message: Message, *, mchid: str, appid: str, amount: int
) -> dict[str, Any]:
    """Return the decrypted resource of a ``TRANSACTION.SUCCESS`` or ``REFUND.SUCCESS``."""
    transaction_id = "42000" + digits(order.payment_ref, 23)
    if message.kind == "refund":
        return {
            "mchid": mchid,
            "out_trade_no": order.out_trade_no,
            "transaction_id": transaction_id,
            "out_refund_no": f"r-{message.refund_id}",
            "refund_id": str(message.refund_id),
            "refund_status": "SUCCESS",
            "success_time": "2026-11-26T19:00:01+08:00",
            "user_received_account": "招商银行信用卡0403",
            "amount": {
                "total": order.amount_minor,
                "refund": amount,
                "payer_total": order.amount_minor,
                "payer_refund": amount,
                "currency": order.currency,
            },
        }
    return {
        "mchid": mchid,
        "appid": appid,
        "out_trade_no": order.out_trade_no,
        "transaction_id": transaction_id,
        "trade_type": "NATIVE",
        "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功",
        "bank_type": "OTHERS",
        "success_time": "2026-11-26T18:00:01+08:00",
        "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
        "amount": {
            "total": amount,
            "payer_total": amount,
            "currency": order.currency,
            "payer_currency": order.currency,
        },
    }


def wechat_event_type(message: Message) -> str:
    """Return the envelope's ``event_type``."""
    return "REFUND.SUCCESS" if message.kind == "refund" else "TRANSACTION.SUCCESS"


def stripe_event(
    order: PlannedOrder, message: Message, *, metadata_key: str, amount: int, now: float
) -> dict[str, Any]:
    """Return a ``payment_intent.succeeded`` or ``charge.refunded`` event."""
    intent = f"pi_{order.payment_ref[:24]}"
    metadata = {metadata_key: order.out_trade_no}
    currency = order.currency.lower()
    if message.kind == "refund":
        obj: dict[str, Any] = {
            "id": f"ch_{order.payment_ref[:24]}",
            "object": "charge",
            "amount": order.amount_minor,
            "amount_refunded": message.refund_total_minor,
            "currency": currency,
            "payment_intent": intent,
            "refunded": message.full_refund,
            "metadata": metadata,
            "refunds": {
                "object": "list",
                "data": [{"id": f"re_{message.refund_id}", "amount": amount}],
            },
        }
        event_type = "charge.refunded"
    else:
        obj = {
            "id": intent,
            "object": "payment_intent",
            "amount": amount,
            "amount_received": amount,
            "currency": currency,
            "status": "succeeded",
            "metadata": metadata,
        }
        event_type = "payment_intent.succeeded"
    return {
        "id": f"evt_{message.notify_id[:24]}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(now),
        "livemode": False,
        "type": event_type,
        "data": {"object": obj},
    }


STANDARD_TYPES = {"payment": "payment.succeeded", "refund": "refund.succeeded"}


def standard_payload(
    order: PlannedOrder, message: Message, *, amount: int, now: float
) -> dict[str, Any]:
    """Return a Standard Webhooks message in paynotify's documented shape."""
    data: dict[str, Any] = {
        "id": f"pay_{order.payment_ref[:24]}",
        "out_trade_no": order.out_trade_no,
        "amount": amount,
        "currency": order.currency,
    }
    if message.kind == "refund":
        data["refund_id"] = str(message.refund_id)
    event_type = STANDARD_TYPES.get(message.kind, "payment.closed")
    stamp = datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z")
    return {"type": event_type, "timestamp": stamp, "data": data}


ADYEN_EVENTS = {"payment": "AUTHORISATION", "refund": "REFUND", "close": "CANCELLATION"}


def adyen_item(order: PlannedOrder, message: Message, *, amount: int) -> dict[str, Any]:
    """Return one unsigned ``NotificationRequestItem``."""
    payment_psp = digits(order.payment_ref, 16)
    item: dict[str, Any] = {
        "pspReference": payment_psp,
        "merchantAccountCode": "PaynotifySimulator",
        "merchantReference": order.out_trade_no,
        "amount": {"value": amount, "currency": order.currency},
        "eventCode": ADYEN_EVENTS[message.kind],
        "eventDate": "2026-11-26T10:00:00+01:00",
        "success": "true",
        "paymentMethod": "visa",
        "additionalData": {},
    }
    if message.kind != "payment":
        item["pspReference"] = digits(message.refund_id or message.notify_id, 16)
        item["originalReference"] = payment_psp
    return item


def adyen_batch(item: dict[str, Any]) -> dict[str, Any]:
    """Wrap one item in a batch."""
    return {"live": "false", "notificationItems": [{"NotificationRequestItem": item}]}
