"""The stream's clock for an engine whose state cannot be iterated (Quix Streams).

The worker's step writes, in the same transaction as an order's state, when that order is next
due for a tick to a compacted topic (key = out_trade_no, value = ISO-8601 UTC time, a tombstone
when it never is). :class:`TickClock`, a thread of the worker, reads that topic from the start
(all partitions, ``read_committed``, no group offsets) into a min-heap and, every
``tick_interval_seconds``, produces one tick ``{"now": ...}`` keyed by each due order to
``stream-ticks``, where the step applies it like any input. A tick is idempotent in the state
machine, so one that arrives twice (two workers each run a clock) changes nothing.

A tick applied after its order's due time changes the state and so its due time; an order still
listed as due after :data:`RETRY_AFTER_TICKS` intervals (a tick lost on the way) is ticked again.
"""

from __future__ import annotations

import heapq
import json
import logging
import threading
import time
from datetime import UTC, datetime, timedelta

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from stream.records import TICKS_TOPIC
from stream.settings import StreamSettings

log = logging.getLogger("paynotify.stream.clock")

RETRY_AFTER_TICKS = 6


class DueTimes:
    """When each order is next due: the latest value per key, plus a heap to find them fast.

    Heap entries are never removed early: a popped entry counts only if it is still the key's
    latest due time.
    """

    def __init__(self) -> None:
        self.latest: dict[str, str] = {}
        self.heap: list[tuple[str, str]] = []

    def update(self, key: str, at: str | None) -> None:
        """Record the key's new due time (None: never due)."""
        if at is None:
            self.latest.pop(key, None)
            return
        if self.latest.get(key) != at:
            self.latest[key] = at
            heapq.heappush(self.heap, (at, key))

    def pop_due(self, now: str, retry_at: str) -> list[str]:
        """Return the keys due at ``now``; each is due again at ``retry_at`` unless it moves."""
        due: list[str] = []
        while self.heap and self.heap[0][0] <= now:
            at, key = heapq.heappop(self.heap)
            if self.latest.get(key) == at:
                due.append(key)
        for key in due:
            self.update(key, retry_at)
        return due


class TickClock(threading.Thread):
    """Read the due-times topic and produce the ticks of due orders until ``stop`` is set."""

    def __init__(self, settings: StreamSettings, due_topic: str, stop: threading.Event) -> None:
        super().__init__(name="paynotify-tick-clock", daemon=True)
        self.settings, self.due_topic, self.stop = settings, due_topic, stop
        self.ticks_topic = settings.topic(TICKS_TOPIC)
        self.times = DueTimes()

    def run(self) -> None:
        """Follow the due times and tick, until stopped; log and keep going on errors."""
        consumer = self.consumer()
        producer = Producer(
            {"bootstrap.servers": self.settings.bootstrap_servers, "partitioner": "murmur2_random"}
        )
        interval = self.settings.tick_interval_s
        next_tick = time.monotonic() + interval
        try:
            while not self.stop.is_set():
                try:
                    self.read(consumer, max(0.0, min(0.5, next_tick - time.monotonic())))
                    if time.monotonic() >= next_tick:
                        next_tick = time.monotonic() + interval
                        self.tick(producer, datetime.now(UTC))
                except (KafkaException, BufferError) as exc:  # the next round tries again
                    log.warning("clock round failed", extra={"error": repr(exc)})
        finally:
            consumer.close()
            producer.flush(5)

    def consumer(self) -> Consumer:
        """Return a consumer assigned to every partition of the due topic, from the start."""
        consumer = Consumer(
            {
                "bootstrap.servers": self.settings.bootstrap_servers,
                "group.id": f"{self.settings.app_id}-clock",  # never commits: no offsets kept
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        parts = range(self.settings.partitions)
        consumer.assign([TopicPartition(self.due_topic, p, 0) for p in parts])
        return consumer

    def read(self, consumer: Consumer, timeout: float) -> None:
        """Apply the due-time records that arrive within ``timeout`` seconds."""
        for message in consumer.consume(10_000, timeout):
            if message.error() is None:
                self.note(message)
            elif message.error().code() != KafkaError._PARTITION_EOF:
                log.warning("due times not read", extra={"error": str(message.error())})

    def note(self, message: Message) -> None:
        """Record one due-time record (a tombstone or empty value: never due)."""
        key, value = message.key(), message.value()
        if key is not None:
            self.times.update(key.decode(), value.decode() if value else None)

    def tick(self, producer: Producer, now: datetime) -> None:
        """Produce a tick for every order due at ``now``."""
        retry = now + timedelta(seconds=RETRY_AFTER_TICKS * self.settings.tick_interval_s)
        stamp = now.isoformat(timespec="microseconds")
        due = self.times.pop_due(stamp, retry.isoformat(timespec="microseconds"))
        value = json.dumps({"now": stamp}).encode()
        for key in due:
            producer.produce(self.ticks_topic, value, key=key.encode())
            producer.poll(0)
        if due:
            log.info("ticks sent", extra={"topic": self.ticks_topic, "reason": f"{len(due)} due"})
