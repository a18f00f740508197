"""The faust app: one agent over ``orders`` and ``payment-notifications`` (co-partitioned by
``out_trade_no``), one changelog-backed RocksDB table of order states, ``concurrency=1``.
The agent only decodes, applies, stores and sends."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import faust

from gateway.records import NOTIFICATIONS_TOPIC, Notification, RecordError
from stream.records import (
    ANOMALIES_TOPIC,
    EVENT_NAMESPACE,
    ORDER_PAID_TOPIC,
    ORDERS_TOPIC,
    Anomaly,
    ExpectedOrder,
    OrderPaid,
)
from stream.settings import StreamSettings
from stream.transitions import Input, Output, apply, state_from_dict, state_to_dict

log = logging.getLogger("paynotify.stream")


def create_app(settings: StreamSettings, *, store: str = "rocksdb://") -> faust.App:
    """Build the faust app, its table and its agent."""
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.bootstrap_servers}",
        store=store,
        datadir=str(settings.data_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        processing_guarantee=settings.processing_guarantee,
        broker_commit_interval=settings.commit_interval_s,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        producer_acks=-1,
    )
    notifications_name = settings.topic(NOTIFICATIONS_TOPIC)
    inputs = app.topic(
        settings.topic(ORDERS_TOPIC),
        notifications_name,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )
    outputs = {
        OrderPaid: app.topic(
            settings.topic(ORDER_PAID_TOPIC),
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.partitions,
        ),
        Anomaly: app.topic(
            settings.topic(ANOMALIES_TOPIC),
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.partitions,
        ),
    }
    table = app.Table("order-state", partitions=settings.partitions, key_type=str)

    @app.agent(inputs, concurrency=1)
    async def orders_agent(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            decoded = decode(message.topic, event.value, notifications_name)
            if isinstance(decoded, RecordError):
                await send(outputs[Anomaly], undecodable(message, decoded))
                continue
            key = decoded.out_trade_no
            stored = table.get(key)
            step = apply(state_from_dict(stored) if stored else None, decoded)
            table[key] = state_to_dict(step.state)
            for out in step.emit:
                await send(outputs[type(out)], out)

    app.paynotify_agent = orders_agent  # type: ignore[attr-defined]
    app.paynotify_table = table  # type: ignore[attr-defined]
    return app


def decode(topic: str, value: bytes, notifications_topic: str) -> Input | RecordError:
    """Decode an input record, or return why it cannot be decoded."""
    try:
        if topic == notifications_topic:
            return Notification.from_bytes(value)
        return ExpectedOrder.from_bytes(value)
    except RecordError as exc:
        log.error("undecodable record", extra={"topic": topic, "error": str(exc)})
        return exc


def undecodable(message: Any, error: RecordError) -> Anomaly:
    """Describe a record the stream cannot decode, so that it is reported, never dropped."""
    where = f"{message.topic}/{message.partition}/{message.offset}"
    key = message.key.decode("utf-8", "replace") if isinstance(message.key, bytes) else ""
    return Anomaly(
        anomaly_id=str(uuid.uuid5(EVENT_NAMESPACE, f"undecodable\x1f{where}")),
        out_trade_no=key,
        reason="undecodable",
        detail=f"{where}: {error}"[:500],
    )


async def send(topic: Any, out: Output) -> None:
    """Send one event and wait until the broker has it, so the offset commit follows it."""
    future = await topic.send(key=out.out_trade_no.encode(), value=out.to_bytes())
    await future
