from __future__ import annotations

import time
import uuid

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition, murmur2

from gateway.app import create_app
from gateway.records import NOTIFICATIONS_TOPIC, Notification
from paynotify.topics import ensure_topics
from tests.support import gateway_requests as reqs

pytestmark = pytest.mark.integration


def _read(bootstrap: str, topic: str, count: int) -> list[tuple[bytes, int, Notification]]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"g{uuid.uuid4().hex[:8]}",
            "isolation.level": "read_committed",
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(8)])
    seen: list[tuple[bytes, int, Notification]] = []
    deadline = time.monotonic() + 30
    while len(seen) < count and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and not message.error():
            key = message.key()
            value = message.value()
            assert key is not None and value is not None
            seen.append((key, message.partition(), Notification.from_bytes(value)))
    consumer.close()
    return seen


async def test_gateway_genuine_notification_of_every_provider_lands_on_its_key_partition(
    kafka_bootstrap: str,
) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}-"
    topic = prefix + NOTIFICATIONS_TOPIC
    ensure_topics(kafka_bootstrap, [topic], 8)
    settings = reqs.settings(bootstrap_servers=kafka_bootstrap, topic_prefix=prefix)
    app = create_app(settings, clock=lambda: float(reqs.NOW))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client,
    ):
        for provider in reqs.PROVIDERS:
            body, headers = reqs.genuine(provider, f"it-{provider}")
            response = await client.post(f"/notify/{provider}/shop", content=body, headers=headers)
            assert response.status_code in (200, 204), (provider, response.text)
        forged_body, headers = reqs.genuine("stripe", "it-forged")
        forged = await client.post(
            "/notify/stripe/shop", content=forged_body + b" ", headers=headers
        )
        assert forged.status_code == 401
    seen = _read(kafka_bootstrap, topic, len(reqs.PROVIDERS))
    assert sorted(note.provider for _k, _p, note in seen) == sorted(reqs.PROVIDERS)
    for key, partition, note in seen:
        assert key == f"it-{note.provider}".encode() == note.out_trade_no.encode()
        assert partition == murmur2(key, 8)
        assert note.raw_body() == reqs.genuine(note.provider, note.out_trade_no)[0]
