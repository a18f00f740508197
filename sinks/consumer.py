"""The sink's Kafka loop: read committed records in batches, write each batch in one database
transaction, and commit the Kafka offsets only after the database commit.

While the database refuses writes the sink pauses its partitions (keeping its group membership
alive) and retries the same batch with backoff; nothing is committed until the batch is written.
"""

from __future__ import annotations

import logging
import threading
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Message
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from sinks.settings import SinkSettings
from sinks.writer import SINK_TOPICS, BatchResult, Record, write_batch

log = logging.getLogger("paynotify.sink")

MAX_BACKOFF_S = 30.0


class KafkaSink:
    """Consume the output topics into the database until ``stop`` is set."""

    def __init__(self, settings: SinkSettings, engine: Engine) -> None:
        self._settings = settings
        self._engine = engine
        self._names = {settings.topic(t): t for t in SINK_TOPICS}
        self.written = BatchResult()

    def _consumer(self) -> Consumer:
        return Consumer(
            {
                "bootstrap.servers": self._settings.bootstrap_servers,
                "group.id": self._settings.group_id,
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "client.id": "paynotify-sink",
            }
        )

    def run(self, stop: threading.Event) -> None:
        """Run the loop; return after ``stop`` is set and the last batch is committed."""
        consumer = self._consumer()
        consumer.subscribe(list(self._names))
        try:
            while not stop.is_set():
                messages = consumer.consume(
                    self._settings.batch_size, timeout=self._settings.flush_interval_s
                )
                records = [r for r in (self._record(m) for m in messages) if r is not None]
                if not records:
                    continue
                if self._write(consumer, records, stop):
                    _commit(consumer)
        finally:
            consumer.close()

    def _record(self, message: Message) -> Record | None:
        error = message.error()
        if error is not None:
            if error.fatal():
                raise KafkaException(error)
            if error.code() != KafkaError._PARTITION_EOF:
                log.warning("consumer error", extra={"error": error.name()})
            return None
        topic = message.topic() or ""
        source = f"{topic}/{message.partition()}/{message.offset()}"
        return Record(
            topic=self._names.get(topic, topic), value=message.value() or b"", source=source
        )

    def _write(self, consumer: Consumer, records: list[Record], stop: threading.Event) -> bool:
        """Write the batch, retrying while the database refuses; False if stopped before."""
        backoff = 0.5
        paused = False
        while True:
            if stop.is_set() and paused:
                return False
            try:
                with self._engine.begin() as conn:
                    result = write_batch(conn, records)
                break
            except (OperationalError, DBAPIError) as exc:
                if not paused:
                    consumer.pause(consumer.assignment())
                    paused = True
                log.warning(
                    "database write failed; retrying",
                    extra={"error": exc.__class__.__name__, "backoff_s": backoff},
                )
                late = _wait(consumer, backoff, stop)
                records.extend(r for r in (self._record(m) for m in late) if r is not None)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
        if paused:
            consumer.resume(consumer.assignment())
        self._count(result)
        return True

    def _count(self, result: BatchResult) -> None:
        for name in ("events_new", "events_seen", "orders", "anomalies", "undecodable"):
            setattr(self.written, name, getattr(self.written, name) + getattr(result, name))


def _wait(consumer: Consumer, seconds: float, stop: threading.Event) -> list[Message]:
    """Wait while keeping the group membership alive; return any record fetched before the pause."""
    late: list[Message] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not stop.is_set():
        message = consumer.poll(0.1)
        if message is not None:
            late.append(message)
    return late


def _commit(consumer: Consumer) -> None:
    try:
        consumer.commit(asynchronous=False)
    except KafkaException as exc:
        # A rebalance took the partitions: the new owner re-reads them; the writes are idempotent.
        log.warning("offset commit failed", extra={"error": str(exc)})
