"""A downstream service's integration test with paynotify in containers (docs/testing.md).

The ``paynotify_stack`` fixture comes with paynotify (``pip install 'paynotify[testing]'``):
Kafka and paynotify's services start once per session, on free ports of 127.0.0.1.
"""

import uuid

from paynotify.testing import PaynotifyStack


def test_paid_order_gives_one_order_paid_event(paynotify_stack: PaynotifyStack) -> None:
    order = f"A-{uuid.uuid4().hex[:8]}"
    paynotify_stack.add_order(order, amount_minor=1000, currency="CNY")

    answer = paynotify_stack.pay(order, provider="alipay")  # genuinely signed, as Alipay would
    event = paynotify_stack.wait_paid(order, timeout=60)  # read from the order-paid topic

    assert answer.text == "success"
    assert (event["type"], event["amount_minor"], event["status"]) == ("order.paid", 1000, "paid")
