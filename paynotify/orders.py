"""Publish the merchant's expected orders to the ``orders`` topic (``paynotify orders add``)."""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import Producer

from gateway.publisher import producer_config
from paynotify.errors import OrderPublishError
from stream.records import ExpectedOrder


def publish_orders(bootstrap_servers: str, topic: str, orders: Iterable[ExpectedOrder]) -> int:
    """Publish orders keyed by ``out_trade_no`` and wait for the broker; return how many.

    Raises:
        OrderPublishError: an order was not acknowledged.
    """
    producer = Producer(
        {**producer_config(bootstrap_servers, 10000), "client.id": "paynotify-orders"}
    )
    failures: list[str] = []

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    count = 0
    for order in orders:
        producer.produce(
            topic, value=order.to_bytes(), key=order.out_trade_no.encode(), on_delivery=on_delivery
        )
        producer.poll(0)
        count += 1
    remaining = producer.flush(15)
    if failures or remaining:
        raise OrderPublishError(f"{len(failures) + remaining} orders were not acknowledged")
    return count
