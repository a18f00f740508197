"""Publishing verified notifications: the ``Publisher`` protocol and its two implementations.

``KafkaPublisher`` hands each record straight to librdkafka (idempotent, ``acks=all``, Java-
compatible ``murmur2_random`` partitioner, bounded delivery timeout) and a poll thread resolves an
asyncio future when the broker acknowledged it. Nothing waits in a Python-side buffer; the poll
thread wakes the event loop once per batch of delivery reports, not once per record.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from gateway.errors import PublishError


class Publisher(Protocol):
    async def start(self) -> None: ...

    async def publish(self, topic: str, key: bytes, value: bytes) -> None: ...

    async def ready(self) -> bool: ...

    async def close(self) -> None: ...


def producer_config(bootstrap_servers: str, delivery_timeout_ms: int) -> dict[str, Any]:
    """Return the durable producer settings every paynotify producer uses."""
    return {
        "bootstrap.servers": bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
        "partitioner": "murmur2_random",
        "message.timeout.ms": delivery_timeout_ms,
        "request.timeout.ms": min(delivery_timeout_ms, 30000),
        "linger.ms": 1,
        "client.id": "paynotify-gateway",
    }


class KafkaPublisher:
    """Publish to Kafka and return only once the broker acknowledged the record.

    ``start`` and ``publish`` run on one event loop: delivery reports are handed back to it.
    """

    def __init__(self, bootstrap_servers: str, *, delivery_timeout_ms: int) -> None:
        self._config = producer_config(bootstrap_servers, delivery_timeout_ms)
        self._wait_s = delivery_timeout_ms / 1000 + 1.0
        self._producer: Producer | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._reports: list[tuple[asyncio.Future[None], KafkaError | None]] = []

    async def start(self) -> None:
        """Create the producer and its poll thread."""
        self._loop = asyncio.get_running_loop()
        self._producer = Producer(self._config)
        self._thread = threading.Thread(target=self._poll, name="kafka-poll", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        assert self._producer is not None
        while not self._stopping.is_set():
            self._producer.poll(0.05)
            self._wake()

    def _report(self, done: asyncio.Future[None], err: KafkaError | None) -> None:
        with self._lock:
            self._reports.append((done, err))

    def _wake(self) -> None:
        with self._lock:
            reports, self._reports = self._reports, []
        if reports and self._loop is not None:
            self._loop.call_soon_threadsafe(_settle_all, reports)

    async def publish(self, topic: str, key: bytes, value: bytes) -> None:
        """Publish one record and wait for the broker's acknowledgement.

        Raises:
            PublishError: the record was not acknowledged within the delivery timeout.
        """
        if self._producer is None:
            raise PublishError("publisher is not started")
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            self._report(done, err)

        try:
            self._producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
        except (BufferError, KafkaException) as exc:
            raise PublishError(f"producer refused the record: {exc.__class__.__name__}") from None
        timer = loop.call_later(self._wait_s, _expire, done)
        try:
            await done
        finally:
            timer.cancel()

    async def ready(self) -> bool:
        """Return whether the broker answers a metadata request."""
        if self._producer is None:
            return False
        producer = self._producer
        try:
            await asyncio.to_thread(producer.list_topics, timeout=2.0)
        except KafkaException:
            return False
        return True

    async def close(self) -> None:
        """Deliver what is in flight, then stop the poll thread."""
        if self._producer is None:
            return
        await asyncio.to_thread(self._producer.flush, self._wait_s)
        self._wake()
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        self._producer = None


def _settle_all(reports: list[tuple[asyncio.Future[None], KafkaError | None]]) -> None:
    for done, err in reports:
        if done.done():
            continue
        if err is None:
            done.set_result(None)
        else:
            done.set_exception(PublishError(f"broker refused the record: {err.name()}"))


def _expire(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_exception(PublishError("broker did not acknowledge in time"))


class MemoryPublisher:
    """Keep records in a list; for tests of the HTTP layer. ``fail`` simulates a broker outage."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes, bytes]] = []
        self.fail = False

    async def start(self) -> None:
        return None

    async def publish(self, topic: str, key: bytes, value: bytes) -> None:
        if self.fail:
            raise PublishError("broker unavailable")
        self.records.append((topic, key, value))

    async def ready(self) -> bool:
        return not self.fail

    async def close(self) -> None:
        return None
