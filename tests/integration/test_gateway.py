from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition

from gateway.records import NOTIFICATIONS_TOPIC, Notification
from gateway.settings import METRICS_DIR_ENV
from paynotify.broker import free_port
from paynotify.topics import ensure_topics
from tests.support import gateway_requests as reqs
from tests.support.partitions import java_partition

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
    app = reqs.build(settings)  # its own KafkaPublisher, on the real broker
    async with (
        reqs.serving(app),
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
        assert partition == java_partition(key, 8)
        assert note.raw_body() == reqs.genuine(note.provider, note.out_trade_no)[0]


async def _send_alipay(client: httpx.AsyncClient, first: int, count: int) -> list[str]:
    """Send ``count`` genuine Alipay notifications at once; return the answers' texts."""
    bodies = [reqs.genuine("alipay", f"mw-{i}") for i in range(first, first + count)]
    answers = await asyncio.gather(
        *(client.post("/notify/alipay/shop", content=b, headers=h) for b, h in bodies)
    )
    return [a.text for a in answers]


async def test_gateway_two_workers_metrics_sum_both_workers(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    port, prefix = free_port(), f"t{uuid.uuid4().hex[:10]}-"
    config = reqs.write_config(tmp_path, kafka_bootstrap, port, prefix, workers=2)
    temp = tmp_path / "tmp"  # where the command makes its private metrics folder
    temp.mkdir()
    env = {k: v for k, v in os.environ.items() if k != METRICS_DIR_ENV} | {"TMPDIR": str(temp)}
    gateway = reqs.start_gateway(config, port, env)
    sent, writers = 0, []
    try:
        [folder] = temp.glob("paynotify-metrics-*")
        # A new connection per request, 20 at once: the kernel hands each connection to either
        # worker, so send until both have counted some (one file of counters per worker).
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits) as client:
            while sent < 40 or (len(writers) < 2 and sent < 400):
                assert await _send_alipay(client, sent, 20) == ["success"] * 20
                sent += 20
                writers = sorted(p.name for p in folder.glob("counter_*.db"))
            scrapes = [(await client.get("/metrics")).text for _ in range(4)]
        gateway.send_signal(signal.SIGTERM)
        assert gateway.wait(30) == 0
    finally:
        if gateway.poll() is None:
            gateway.kill()
    assert len(writers) == 2, writers
    for text in scrapes:  # whichever worker answers the scrape
        assert f"{reqs.ALIPAY_ACCEPTED} {sent}.0" in text
        assert "paynotify_gateway_in_flight 0.0" in text
    assert not folder.exists()


SLOW_CLIENTS = 300
READ_TIMEOUT = 3.0


async def _trickle(port: int, closed_after: list[float]) -> None:
    """Open a connection and send a request head one byte a second until the server closes it;
    record how long that took (or nothing, if it never closed)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    loop = asyncio.get_running_loop()
    started = loop.time()
    head = b"POST /notify/alipay/shop HTTP/1.1\r\nhost: gw\r\ncontent-length: 10\r\n"
    try:
        for byte in head:
            writer.write(bytes([byte]))
            try:
                if not await asyncio.wait_for(reader.read(4096), 1.0):
                    break  # the server closed the connection
            except TimeoutError:
                continue
            await asyncio.wait_for(reader.read(), READ_TIMEOUT)  # the answer, then its close
            break
        else:
            return
    except ConnectionError:
        pass
    closed_after.append(loop.time() - started)
    writer.close()


async def test_gateway_slow_clients_cut_off_at_the_deadline_genuine_answered_meanwhile(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    port, prefix = free_port(), f"t{uuid.uuid4().hex[:10]}-"
    config = reqs.write_config(tmp_path, kafka_bootstrap, port, prefix)
    text = config.read_text().replace(
        "[gateway]\n", f"[gateway]\nread_timeout_seconds = {READ_TIMEOUT}\n"
    )
    config.write_text(text)
    gateway = reqs.start_gateway(config, port)
    try:
        closed_after: list[float] = []
        slow = [asyncio.create_task(_trickle(port, closed_after)) for _ in range(SLOW_CLIENTS)]
        await asyncio.sleep(1.0)  # every slow connection is open and trickling
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            body, headers = reqs.genuine("alipay", f"slow-{uuid.uuid4().hex[:6]}")
            started = time.monotonic()
            response = await client.post("/notify/alipay/shop", content=body, headers=headers)
            answered_in = time.monotonic() - started
        await asyncio.wait_for(asyncio.gather(*slow), READ_TIMEOUT + 30)
    finally:
        gateway.terminate()
        gateway.wait(30)
    assert (response.status_code, response.text) == (200, "success")
    assert answered_in < 1.0
    assert len(closed_after) == SLOW_CLIENTS  # the head (68 bytes, 68 s) never completed
    assert min(closed_after) >= READ_TIMEOUT - 0.5  # the clock starts as the client sees it
    assert max(closed_after) < READ_TIMEOUT + 3.0
