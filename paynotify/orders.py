"""Publish records the command line produces: the merchant's expected orders (``paynotify orders
add``) and reconciliation's notifications and anomalies (``paynotify reconcile``)."""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import Producer

from gateway.publisher import producer_config
from paynotify.errors import OrderPublishError
from stream.records import ExpectedOrder

Record = tuple[str, bytes, bytes]  # topic, key, value


def publish_orders(bootstrap_servers: str, topic: str, orders: Iterable[ExpectedOrder]) -> int:
    """Publish orders keyed by ``out_trade_no`` and wait for the broker; return how many.

    Raises:
        OrderPublishError: an order was not acknowledged.
    """
    producer = Producer(
        {**producer_config(bootstrap_servers, 10000), "client.id": "paynotify-orders"}
    )
    records = ((topic, order.out_trade_no.encode(), order.to_bytes()) for order in orders)
    count, unacknowledged = deliver(producer, records)
    if unacknowledged:
        raise OrderPublishError(f"{unacknowledged} orders were not acknowledged")
    return count


def deliver(
    producer: Producer, records: Iterable[Record], timeout_s: float = 15.0
) -> tuple[int, int]:
    """Produce records and wait for the broker; return (how many, how many unacknowledged)."""
    failures: list[str] = []

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    count = 0
    for topic, key, value in records:
        producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
        producer.poll(0)
        count += 1
    remaining = producer.flush(timeout_s)
    return count, len(failures) + remaining
