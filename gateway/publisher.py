"""Publishing verified notifications: the ``Publisher`` protocol and its two implementations.

``KafkaPublisher`` hands each record straight to librdkafka (idempotent, ``acks=all``, Java-
compatible ``murmur2_random`` partitioner, bounded delivery timeout) and resolves an asyncio future
when the broker acknowledged it. The delivery reports are served on the event loop's own thread,
every ``POLL_SECONDS`` while records are in flight (less often while the broker is stalled, not
at all while nothing is in flight): a report settles its future in place, with no second Python
thread taking the GIL and waking the loop for it (a poll thread did that before: a GIL hand-over
per delivery report and a loop wake-up per batch; see docs/benchmarks.md, "Gateway").
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from gateway.errors import PublishError

# How often the loop serves librdkafka's delivery reports while records are in flight: the most
# an acknowledgement waits after the broker's answer reached librdkafka (uvloop's timers count
# whole milliseconds). While the oldest record has waited longer than STALL_SECONDS and polls find
# nothing (the broker is slow: a JVM pause, a busy machine), the interval doubles up to
# POLL_MAX_SECONDS, so that a stalled broker does not cost a thousand wake-ups a second.
POLL_SECONDS = 0.001
STALL_SECONDS = 0.01
POLL_MAX_SECONDS = 0.008


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

    ``start``, ``publish`` and ``close`` run on one event loop, which also serves the delivery
    reports. librdkafka reports every record, acknowledged or failed, within the delivery
    timeout; a deadline a second later (oldest first: they expire in the order the records were
    produced) fails any record it did not report, so that no request waits forever.
    """

    def __init__(self, bootstrap_servers: str, *, delivery_timeout_ms: int) -> None:
        self._config = producer_config(bootstrap_servers, delivery_timeout_ms)
        self._wait_s = delivery_timeout_ms / 1000 + 1.0
        self._producer: Producer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._due = 0.0  # when the timer fires (loop time)
        self._interval = POLL_SECONDS
        # (deadline, future) of every record in flight, in the order they were produced.
        self._pending: collections.deque[tuple[float, asyncio.Future[None]]] = collections.deque()

    async def start(self) -> None:
        """Create the producer."""
        self._loop = asyncio.get_running_loop()
        self._producer = Producer(self._config)

    async def publish(self, topic: str, key: bytes, value: bytes) -> None:
        """Publish one record and wait for the broker's acknowledgement.

        Raises:
            PublishError: the record was not acknowledged within the delivery timeout.
        """
        if self._producer is None or self._loop is None:
            raise PublishError("publisher is not started")
        done: asyncio.Future[None] = self._loop.create_future()
        try:
            self._producer.produce(topic, value=value, key=key, on_delivery=done_by(done))
        except (BufferError, KafkaException) as exc:
            raise PublishError(f"producer refused the record: {exc.__class__.__name__}") from None
        self._pending.append((time.monotonic() + self._wait_s, done))
        self._interval = POLL_SECONDS
        if self._timer is None or self._due > self._loop.time() + POLL_SECONDS:
            self._arm()
        await done

    def _arm(self) -> None:
        assert self._loop is not None
        if self._timer is not None:
            self._timer.cancel()
        self._due = self._loop.time() + self._interval
        self._timer = self._loop.call_later(self._interval, self._serve)

    def _serve(self) -> None:
        """Serve the delivery reports that arrived, expire overdue records, and come back while
        any record is in flight."""
        self._timer = None
        if self._producer is None or self._loop is None:
            return
        served = self._producer.poll(0)
        pending, now = self._pending, time.monotonic()
        while pending and (pending[0][1].done() or pending[0][0] <= now):
            _expire(pending.popleft()[1])
        if not pending:
            return
        waited = now - (pending[0][0] - self._wait_s)
        if served or waited < STALL_SECONDS:
            self._interval = POLL_SECONDS
        else:
            self._interval = min(self._interval * 2, POLL_MAX_SECONDS)
        self._arm()

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
        """Deliver what is in flight (within the delivery timeout), then drop the producer."""
        if self._producer is None:
            return
        producer, deadline = self._producer, time.monotonic() + self._wait_s
        while (self._pending or len(producer) > 0) and time.monotonic() < deadline:
            producer.poll(0)  # what a cancelled publish left in flight is still reported here
            await asyncio.sleep(POLL_SECONDS)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for _deadline, done in self._pending:
            _expire(done)
        self._pending.clear()
        self._producer = None


def done_by(done: asyncio.Future[None]) -> Callable[[KafkaError | None, Message], None]:
    """Return the delivery callback that settles ``done`` (run by ``Producer.poll`` on the loop)."""

    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        if done.done():
            return
        if err is None:
            done.set_result(None)
        else:
            done.set_exception(PublishError(f"broker refused the record: {err.name()}"))

    return on_delivery


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
