"""The sink's Kafka loop: read committed records in batches, write each batch in one database
transaction, and commit the Kafka offsets only after the database commit.

- ``read_committed``, auto-commit off; a batch is the first record to arrive (waiting up to
  ``[sink] flush_interval_seconds``) plus whatever is already fetched, at most ``[sink]
  batch_size`` records: no record waits for a batch to fill.
- While the database is down or refuses writes, the sink pauses its partitions (keeping its group
  membership alive), retries the same batch with backoff up to ``[sink] max_backoff_seconds``, and
  resumes when the batch is written; nothing is committed until then, so a crash at any moment
  re-reads the batch and the idempotent writer makes that harmless.
- A record the database refuses by itself (a constraint, a value too long) does not block its
  partition: :func:`sinks.writer.write_records` keeps it as an anomaly.
"""

from __future__ import annotations

import logging
import threading
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from sqlalchemy import Engine

from sinks.batch import SINK_TOPICS, BatchResult, Record
from sinks.errors import DatabaseUnavailableError
from sinks.metrics import SinkMetrics
from sinks.schema import check_migrated
from sinks.settings import SinkSettings
from sinks.writer import write_records

log = logging.getLogger("paynotify.sink")

FIRST_BACKOFF_S = 0.5
LAG_EVERY_S = 2.0


class KafkaSink:
    """Consume the output topics into the database until ``stop`` is set."""

    def __init__(
        self, settings: SinkSettings, engine: Engine, metrics: SinkMetrics | None = None
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._names = {settings.topic(t): t for t in SINK_TOPICS}
        self.metrics = metrics or SinkMetrics()
        self.written = BatchResult()
        self._lag_at = 0.0

    def _consumer(self) -> Consumer:
        return Consumer(
            {
                "bootstrap.servers": self._settings.bootstrap_servers,
                "group.id": self._settings.group_id,
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "client.id": "paynotify-sink",
                "session.timeout.ms": self._settings.session_timeout_ms,
            }
        )

    def run(self, stop: threading.Event) -> None:
        """Run the loop; return after ``stop`` is set and the last batch is committed.

        Raises:
            sinks.schema.SchemaError: the database is not migrated.
        """
        if not self._wait_for_schema(stop):
            return
        if self._settings.metrics_listen:
            self.metrics.serve(self._settings.metrics_listen)
        consumer = self._consumer()
        consumer.subscribe(list(self._names))
        try:
            while not stop.is_set():
                messages = self._next_batch(consumer)
                records = [r for r in (self._record(m) for m in messages) if r is not None]
                if records:
                    self._write(consumer, records, stop)
                self._update_lag(consumer)
        finally:
            consumer.close()
            self.metrics.close()

    def _next_batch(self, consumer: Consumer) -> list[Message]:
        """Wait up to the flush interval for one record, then take what is already fetched.

        A batch never waits to fill up: at a low rate a record is written as soon as it comes,
        and under load the fetched backlog makes the batches large by itself.
        """
        first: list[Message] = consumer.consume(1, timeout=self._settings.flush_interval_s)
        if not first or self._settings.batch_size == 1:
            return first
        rest: list[Message] = consumer.consume(self._settings.batch_size - 1, timeout=0)
        return first + rest

    def _wait_for_schema(self, stop: threading.Event) -> bool:
        """Wait for the database (down at start is not a crash); refuse an unmigrated one."""
        backoff = FIRST_BACKOFF_S
        while not stop.is_set():
            try:
                check_migrated(self._engine)
                return True
            except DatabaseUnavailableError as exc:
                log.warning(
                    "database unavailable at start; retrying",
                    extra={"error": exc.error, "backoff_s": backoff},
                )
                stop.wait(backoff)
                backoff = min(backoff * 2, self._settings.max_backoff_s)
        return False

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
            topic=self._names.get(topic, topic),
            value=message.value(),
            source=source,
            key=message.key(),
        )

    def _write(self, consumer: Consumer, records: list[Record], stop: threading.Event) -> None:
        """Write the batch, retrying while the database refuses, then commit the offsets."""
        started = time.monotonic()
        backoff = FIRST_BACKOFF_S
        paused: list[TopicPartition] = []
        while True:
            try:
                result = write_records(self._engine, records)
                break
            except DatabaseUnavailableError as exc:
                self.metrics.retries.inc()
                if not paused:
                    paused = consumer.assignment()
                    consumer.pause(paused)
                    self.metrics.paused.set(1)
                log.warning(
                    "database write failed; partitions paused, retrying",
                    extra={"error": exc.error, "backoff_s": backoff},
                )
                late = self._wait(consumer, backoff, stop)
                records.extend(r for r in (self._record(m) for m in late) if r is not None)
                if stop.is_set():
                    return  # nothing committed: the batch is read again after a restart
                backoff = min(backoff * 2, self._settings.max_backoff_s)
        _commit(consumer)
        if paused:
            consumer.resume(consumer.assignment())
            self.metrics.paused.set(0)
            log.info("database writes succeeded again; partitions resumed")
        self.written.add(result)
        self.metrics.count(result, time.monotonic() - started)

    def _wait(self, consumer: Consumer, seconds: float, stop: threading.Event) -> list[Message]:
        """Wait, serving the group (and the lag gauge); return records fetched meanwhile."""
        late: list[Message] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not stop.is_set():
            message = consumer.poll(0.1)
            if message is not None:
                late.append(message)
            self._update_lag(consumer)
        return late

    def _update_lag(self, consumer: Consumer) -> None:
        """Measure lag from the client's own fetch state (no broker round trip)."""
        now = time.monotonic()
        if now - self._lag_at < LAG_EVERY_S:
            return
        self._lag_at = now
        lags: dict[tuple[str, int], int] = {}
        try:
            for tp in consumer.position(consumer.assignment()):
                _low, high = consumer.get_watermark_offsets(tp, cached=True)
                if tp.offset >= 0 and high >= 0:
                    lags[(self._names.get(tp.topic, tp.topic), tp.partition)] = max(
                        high - tp.offset, 0
                    )
        except KafkaException as exc:
            log.debug("lag not measured", extra={"error": str(exc)})
            return
        self.metrics.set_lag(lags)


def _commit(consumer: Consumer) -> None:
    try:
        consumer.commit(asynchronous=False)
    except KafkaException as exc:
        # A rebalance took the partitions: the new owner re-reads them; the writes are idempotent.
        log.warning("offset commit failed", extra={"error": str(exc)})
