from __future__ import annotations

import asyncio
import signal
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition

from gateway.records import NOTIFICATIONS_TOPIC
from paynotify.broker import free_port
from tests.support import alipay as signer
from tests.support.gateway_requests import start_gateway, write_config

pytestmark = pytest.mark.integration
FORM = {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}


async def _send_then_stop(port: int, gateway: subprocess.Popen[bytes], count: int) -> list[str]:
    """Send ``count`` notifications at once, SIGTERM the gateway meanwhile; return the acked."""
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits) as client:
        bodies = {i: signer.sign(signer.payment(f"sd-{i}")) for i in range(-1, count)}

        async def send(i: int) -> str | None:
            body = bodies[i]  # signed beforehand: RSA signing here would delay every request
            try:
                response = await client.post("/notify/alipay/shop", content=body, headers=FORM)
            except httpx.HTTPError:
                return None  # refused or cut: the provider retries
            return f"sd-{i}" if response.text == "success" else None

        assert await send(-1) == "sd--1"  # the producer has its idempotence id: warm
        tasks = [asyncio.create_task(send(i)) for i in range(count)]
        # SIGTERM once the burst is under way: after its first few answers, not after a fixed
        # pause (on a busy machine this client needed over a second to send its first requests).
        answered = asyncio.Event()
        for task in tasks:
            task.add_done_callback(lambda _t: sum(t.done() for t in tasks) >= 5 and answered.set())
        await asyncio.wait_for(answered.wait(), 60)
        gateway.send_signal(signal.SIGTERM)
        answers = await asyncio.gather(*tasks)
    return [a for a in answers if a is not None]


def _keys(bootstrap: str, topic: str, expected: set[str]) -> set[str]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(8)])
    keys: set[str] = set()
    deadline = time.monotonic() + 20
    while not expected <= keys and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and not message.error() and message.key():
            keys.add((message.key() or b"").decode())
    consumer.close()
    return keys


async def test_gateway_sigterm_every_acknowledged_notification_is_in_kafka(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    port, prefix = free_port(), f"t{uuid.uuid4().hex[:10]}-"
    gateway = start_gateway(write_config(tmp_path, kafka_bootstrap, port, prefix), port)
    try:
        acked = await _send_then_stop(port, gateway, 400)
        # uvicorn re-raises SIGTERM once its graceful shutdown is complete
        assert gateway.wait(30) in (0, -signal.SIGTERM)
    finally:
        if gateway.poll() is None:
            gateway.kill()
    assert len(acked) > 1, "nothing was acknowledged during the burst"
    assert set(acked) <= _keys(kafka_bootstrap, prefix + NOTIFICATIONS_TOPIC, set(acked))
