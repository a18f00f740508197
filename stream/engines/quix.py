"""The Quix Streams engine: one ``Application`` over ``orders``, ``payment-notifications`` and the
internal ticks topic, merged with ``concat`` (co-partitioned by ``out_trade_no``) so that one
RocksDB store, keyed by the message key, holds each order's state; public API only.

Per record, one stateful step (:class:`OrderStep`) decodes, applies (``stream/processing.py``),
stores, and returns the records to produce; ``expand=True`` turns them into one row each and a
single ``to_topic`` with a topic selector sends every row to its own topic, inside the
exactly-once transaction that also carries the state's changelog and the input offsets.

Timers: Quix state cannot be iterated, so whenever an order's due time changes the step also
produces a record to the compacted ``{app_id}-order-due`` topic (same transaction);
:class:`stream.engines.clock.TickClock` reads it and produces one tick per due order, keyed by
the order, to ``stream-ticks``.

Fencing: the transactional id is stable per worker (host and data folder, see
:func:`transactional_id`), so a restarted worker fences its killed predecessor at once; a short
``transaction.timeout.ms`` bounds how long an abandoned transaction holds ``read_committed``
readers when no successor with that id starts (docs/reliability.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import signal
import socket
import threading
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic
from quixstreams import Application, State, message_context
from quixstreams.models import Topic
from quixstreams.models.serializers import SerializationContext, Serializer

from gateway.records import RecordError
from stream.engines.clock import TickClock
from stream.engines.failfast import FailFast
from stream.engines.metrics import StreamMetrics, consumer_group_stats
from stream.engines.stored import STATE_KEY, StateMemo, stored_value
from stream.processing import INPUT_TOPICS, OrderProcessor, OutputRecord
from stream.records import OUTPUT_TOPICS
from stream.settings import StreamSettings
from stream.transitions import Input, Tick

log = logging.getLogger("paynotify.stream")

# Quix fetches with ``consume(max_partition_buffer_size, timeout)``, which waits the whole
# timeout unless 10,000 records come first: at its default (1 s) every record waited about a
# second at 200/s (bench/paid_latency.py: p50 1.35 s), and no checkpoint ran meanwhile.
POLL_TIMEOUT_S = 0.02
# A fetch returns what arrived within one poll timeout (or a MiB), not each produce as it lands:
# at 1,000/s that spared the broker a sixth of its CPU (docs/benchmarks.md, "Fewer fetches").
FETCH = {"fetch.wait.max.ms": int(POLL_TIMEOUT_S * 1000), "fetch.min.bytes": 2**20}
EXIT_RESTART = 75  # EX_TEMPFAIL: the supervisor starts a new worker
DUE_SUFFIX = "-order-due"
READY_TEXT = "stream worker ready"
TRANSACTION_TIMEOUT_MS = 10_000  # an abandoned transaction holds readers at most this long
# How soon "ready" is noticed after an assignment. Quix decodes every statistics document too
# (py-spy: 3% of the worker's time at 100 ms), so not more often than twice a second.
STATS_INTERVAL_MS = 500
# Under exactly-once, records are readable only once their transaction commits, and the
# checkpoint flushes the producer (at once, whatever the linger) before it commits: lingering for
# the default commit interval sends a few large requests per checkpoint instead of one every 5 ms
# (docs/benchmarks.md, "The producer lingers"). At-least-once records are readable when written.
LINGER_MS = {True: 100, False: 5}


def due_topic(settings: StreamSettings) -> str:
    """Return the full name of the compacted topic of orders' due times."""
    return settings.app_id + DUE_SUFFIX


def due_record(topic: str, key: bytes, at: datetime | None) -> OutputRecord:
    """Return the record telling the clock when ``key`` is next due (empty value: never)."""
    value = b"" if at is None else iso(at).encode()
    return OutputRecord(topic, key, value)


def iso(at: datetime) -> str:
    """Return ``at`` as ISO-8601 UTC text with microseconds (ordered like the times)."""
    return at.astimezone(UTC).isoformat(timespec="microseconds")


class OrderStep:
    """The stateful step: one input record in, the records to produce out."""

    def __init__(self, settings: StreamSettings, metrics: StreamMetrics | None = None) -> None:
        self.processor = OrderProcessor(settings.pending_timeout_s, settings.retention_s)
        self.routes = {settings.topic(name): name for name in INPUT_TOPICS}
        self.due_topic = due_topic(settings)
        self.metrics = metrics
        self.memo = StateMemo()

    def __call__(
        self, value: bytes, key: bytes | None, timestamp: int, headers: Any, state: State[str, Any]
    ) -> list[OutputRecord]:
        """Decode, apply and store the current record; return what it emits."""
        ctx = message_context()
        outputs = self.step(ctx.topic, ctx.partition, ctx.offset, key, value, state)
        if self.metrics is not None:
            self.metrics.count(ctx.topic, [r.topic for r in outputs])
        return outputs

    def step(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes,
        state: State[str, Any],
    ) -> list[OutputRecord]:
        """Decode, apply and store one record of the full ``topic`` name; return what it emits."""
        decoded = self.processor.decode(self.routes[topic], key, value)
        if isinstance(decoded, RecordError):
            log.error("undecodable record", extra={"topic": topic, "error": str(decoded)})
            return [self.processor.undecodable(topic, partition, offset, key, decoded)]
        if key is None:  # only a tick gets here keyless: the faust engine's per-partition clock
            return []
        return self.apply(key, decoded, state)

    def apply(self, key: bytes, item: Input, state: State[str, Any]) -> list[OutputRecord]:
        """Apply one input to the order ``key``'s stored state; return what to produce.

        The value under :data:`STATE_KEY` is the JSON ``[stored state, due time or null]``, read
        and written as bytes (``get_bytes``/``set_bytes``, public): the same bytes Quix's own JSON
        serializer gives ``state.set`` (stores of either are read by both), without a second
        encoding of the state into a dict and back. Bytes this step stored itself are not
        decoded again while :attr:`memo` still holds them.
        """
        raw = state.get_bytes(STATE_KEY)
        if raw is None and isinstance(item, Tick):  # a late tick of a forgotten order
            return []
        before, stored_due = self.memo.get(key, raw) if raw is not None else (None, None)
        done = self.processor.process_state(before, item)
        outputs = list(done.outputs)
        if done.state is None:
            if raw is not None:
                state.delete(STATE_KEY)
                self.memo.forget(key)
                outputs.append(due_record(self.due_topic, key, None))
            return outputs
        if not done.changed:  # an exact copy: no write, no changelog record
            return outputs
        due = iso(done.due_at) if done.due_at is not None else None
        value = stored_value(done.state, due)
        state.set_bytes(STATE_KEY, value)
        self.memo.put(key, value, done.state, due)
        if stored_due != due:  # a new order never due: nothing to say
            outputs.append(due_record(self.due_topic, key, done.due_at))
        return outputs


class RecordSerializer(Serializer):
    """Serialize an :class:`OutputRecord` row to its value (an empty value: a tombstone)."""

    # Quix types a value serializer's result as str | bytes; None (a tombstone) goes through to
    # librdkafka unchanged, which is what a compacted topic needs to forget a key.
    def __call__(self, value: OutputRecord, ctx: SerializationContext) -> bytes | None:  # type: ignore[override]
        """Return the record's value bytes, or None for a tombstone."""
        return value.value or None


class ReadyLog:
    """Log :data:`READY_TEXT` when the consumer group settles with partitions assigned.

    Fed by librdkafka's statistics (``stats_cb``, a public consumer option): its ``cgrp`` part
    says when the group is steady and how many partitions this member holds.
    """

    def __init__(self, metrics: StreamMetrics | None = None) -> None:
        self.rebalances: int | None = None
        self.metrics = metrics

    def __call__(self, stats: str) -> None:
        """Read one statistics document; log once per settled assignment (and feed metrics)."""
        if self.metrics is not None:
            self.metrics.statistics(stats)
        group = consumer_group_stats(stats)
        settled = group.get("join_state") == "steady" and group.get("assignment_size", 0) > 0
        if settled and group.get("rebalance_cnt") != self.rebalances:
            self.rebalances = group.get("rebalance_cnt")
            log.info("%s: %d partitions assigned", READY_TEXT, group["assignment_size"])


class StopOnSignal(threading.Thread):
    """Stop the application on SIGTERM/SIGINT, asking again until ``app.run()`` has returned.

    Quix Streams' own handler calls ``app.stop()``, but a signal that comes while ``run()`` starts
    is forgotten: ``run()`` installs its handlers, then enters its loop (up to half a second later
    here) by marking itself running, which undoes that stop. The worker then ran on until it was
    killed (the storm test: SIGTERM 1.1 s after start, ``kill -9`` 30 s later). Python writes the
    number of every signal it handles to its wakeup file descriptor, whichever handler is set:
    this thread reads them, and once told to stop it calls ``app.stop()`` (meant to be called from
    another thread) every :attr:`REPEAT_S` until :meth:`finish`.
    """

    REPEAT_S = 0.1
    STOPPING = frozenset({signal.SIGTERM, signal.SIGINT})

    def __init__(self, app: Application) -> None:
        super().__init__(name="paynotify-stop-on-signal", daemon=True)
        self.app = app
        self.done = threading.Event()
        self.read_end, self.write_end = os.pipe()
        os.set_blocking(self.write_end, False)
        self.previous_fd = signal.set_wakeup_fd(self.write_end)  # main thread only

    def run(self) -> None:
        """Wait for a stopping signal, then stop the application until it has returned."""
        while not self.done.is_set():
            numbers = os.read(self.read_end, 64)
            if not numbers or self.STOPPING.intersection(numbers):
                break
        while not self.done.is_set():
            self.app.stop()
            self.done.wait(self.REPEAT_S)

    def finish(self) -> None:
        """After ``app.run()``: restore the wakeup descriptor, end the thread, close the pipe."""
        signal.set_wakeup_fd(self.previous_fd)
        self.done.set()
        os.close(self.write_end)  # wakes the read above with end-of-file
        self.join(5)
        with contextlib.suppress(OSError):
            os.close(self.read_end)


def transactional_id(settings: StreamSettings) -> str:
    """Return this worker's stable transactional id: the app id, the host, the data folder.

    Two live workers never share a data folder on one host (its RocksDB files are locked), so
    they never share an id; a worker restarted on the same folder reuses it and so fences the
    transaction its killed predecessor left open.
    """
    where = f"{socket.gethostname()}:{settings.data_dir.resolve()}"
    return f"{settings.app_id}-{hashlib.sha256(where.encode()).hexdigest()[:16]}"


def create_app(
    settings: StreamSettings,
    failures: FailFast | None = None,
    metrics: StreamMetrics | None = None,
) -> Application:
    """Build the Application and its one dataframe: merged inputs, the step, the outputs."""
    exactly_once = settings.processing_guarantee == "exactly_once"
    failures = failures or FailFast(EXIT_RESTART)
    app = Application(
        broker_address=settings.bootstrap_servers,
        consumer_group=settings.app_id,
        auto_offset_reset="earliest",
        commit_interval=settings.commit_interval_s,
        processing_guarantee="exactly-once" if exactly_once else "at-least-once",
        state_dir=settings.data_dir,
        loglevel=None,  # our logging setup (paynotify/logs.py) formats quixstreams' lines too
        producer_extra_config=producer_config(settings, exactly_once),
        consumer_extra_config=consumer_config(settings, metrics),
        consumer_poll_timeout=POLL_TIMEOUT_S,
        on_consumer_error=failures.on_consumer_error,
        on_producer_error=failures.on_producer_error,
        on_processing_error=failures.on_processing_error,
    )
    merged = None
    for name in INPUT_TOPICS:
        frame = app.dataframe(input_topic(app, settings.topic(name)))
        merged = frame if merged is None else merged.concat(frame)
    assert merged is not None
    outputs = output_topics(app, settings)
    rows = merged.apply(OrderStep(settings, metrics), stateful=True, expand=True, metadata=True)
    rows.to_topic(lambda value, _key, _ts, _headers: outputs[value.topic], key=record_key)
    return app


def record_key(record: OutputRecord) -> bytes:
    """Return the key an output record is produced with (its ``out_trade_no``)."""
    return record.key


def input_topic(app: Application, name: str) -> Topic:
    """Declare an input topic whose keys and values stay raw bytes."""
    return app.topic(name, key_deserializer="bytes", value_deserializer="bytes")


def output_topics(app: Application, settings: StreamSettings) -> dict[str, Topic]:
    """Declare every topic a step may produce to, by the logical name its records carry."""
    serializer = RecordSerializer()
    names = {name: settings.topic(name) for name in OUTPUT_TOPICS}
    names[due_topic(settings)] = due_topic(settings)
    return {
        logical: app.topic(full, key_serializer="bytes", value_serializer=serializer)
        for logical, full in names.items()
    }


def producer_config(settings: StreamSettings, exactly_once: bool) -> dict[str, Any]:
    """Return the producer options: murmur2 like every other writer, fencing under EOS."""
    config: dict[str, Any] = {"partitioner": "murmur2_random", "linger.ms": LINGER_MS[exactly_once]}
    if exactly_once:
        config["transactional.id"] = transactional_id(settings)
        config["transaction.timeout.ms"] = TRANSACTION_TIMEOUT_MS
    return config


def consumer_config(
    settings: StreamSettings, metrics: StreamMetrics | None = None
) -> dict[str, Any]:
    """Return the consumer options: the session timeout and the statistics for :class:`ReadyLog`."""
    return {
        "session.timeout.ms": int(settings.session_timeout_s * 1000),
        "statistics.interval.ms": STATS_INTERVAL_MS,
        "stats_cb": ReadyLog(metrics),
        **FETCH,
    }


def ensure_due_topic(settings: StreamSettings, timeout: float = 30.0) -> None:
    """Create the compacted due-times topic (the inputs' partition count) if it is missing.

    Raises:
        KafkaException: the broker refused to create it.
    """
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    topic = NewTopic(
        due_topic(settings),
        num_partitions=settings.partitions,
        replication_factor=1,
        config={"cleanup.policy": "compact"},
    )
    for future in admin.create_topics([topic], request_timeout=timeout).values():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise


def run(settings: StreamSettings) -> int:
    """Run the worker until SIGTERM/SIGINT; return its exit code (:data:`EXIT_RESTART`: failed).

    Quix Streams stops its application on an error it cannot handle (the broker gone during a
    checkpoint, a fenced producer): the open transaction is not committed, so nothing of it is
    visible, and the next worker resumes from the committed offsets and changelog. That is an
    expected event, told in one log line; ``paynotify stream``'s supervisor restarts the worker.

    Starting needs the broker (the due-times topic, the topics' metadata): a broker that is down
    or goes away meanwhile is told in one line and ends the worker with :data:`EXIT_RESTART`, so
    the supervisor tries again after its pause.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    metrics = StreamMetrics(settings.topic_prefix) if settings.metrics_listen else None
    failures = FailFast(EXIT_RESTART, on_error=metrics.error if metrics else None)
    try:
        ensure_due_topic(settings)
        app = create_app(settings, failures, metrics)
    except KafkaException as exc:
        log.error("stream worker cannot start: Kafka unavailable", extra={"error": str(exc)[:300]})
        return EXIT_RESTART
    if metrics is not None and settings.metrics_listen is not None:
        try:
            metrics.serve(settings.metrics_listen)
        except OSError as exc:  # payments go on without /metrics; the line says why
            log.error(
                "stream worker cannot serve metrics",
                extra={"listen": settings.metrics_listen, "error": str(exc)[:300]},
            )
    stop = threading.Event()
    clock = TickClock(settings, due_topic(settings), stop)
    clock.start()
    stopper = StopOnSignal(app)
    stopper.start()
    try:
        app.run()
    except Exception as exc:  # any failure: restart from the committed state, see above
        error = f"{type(exc).__name__}: {exc}"[:300]
        log.error(
            "stream worker failed: restarting from the committed state", extra={"error": error}
        )
        return EXIT_RESTART
    finally:
        failures.disarm()
        stopper.finish()
        stop.set()
        clock.join(10)
        if metrics is not None:
            metrics.close()
    return 0
