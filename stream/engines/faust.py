"""The faust app: one agent over ``orders``, ``payment-notifications`` and the internal ticks topic
(co-partitioned by ``out_trade_no``, all with the table's partition count), one changelog-backed
RocksDB table of order states plus a small index of when each order is next due for a tick,
``concurrency=1``. The agent only decodes, applies, stores and sends; a timer sends the ticks.

Every event is sent before the state that records it is stored, and under ``exactly_once`` it is
sent through the transactional producer of the *input* partition (:class:`EventSender`), so that
the event, the table change and the input offset are committed together. See
``docs/reliability.md`` for why faust's own ``topic.send`` is not used there.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from collections.abc import Awaitable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faust

from gateway.records import NOTIFICATIONS_TOPIC, RecordError
from stream.engines.faust_internals import (
    CommitGate,
    install_commit_gate,
    install_safe_seek,
    install_stable_highwaters,
)
from stream.processing import INPUT_TOPICS, OrderProcessor, OutputRecord
from stream.records import ORDERS_TOPIC, TICKS_TOPIC
from stream.schedule import DueSchedule
from stream.settings import StreamSettings
from stream.transitions import Input, Tick

log = logging.getLogger("paynotify.stream")

# Under exactly_once nothing waits for a single record, so the producers batch for a few ms
# instead of writing one small request per record (py-spy: a fifth of the time in socket writes).
EOS_LINGER_S = 0.005
# faust's default (16 KiB) fills a partition's batch with a dozen state records; the next record
# then waits a whole round trip for that batch to drain (one batch in flight per partition).
BATCH_BYTES = 512 * 1024
TABLES = ("order-state", "order-due")  # the order states; when each order is next due for a tick


def create_app(
    settings: StreamSettings,
    *,
    store: str = "rocksdb://",
    loop: asyncio.AbstractEventLoop | None = None,
) -> faust.App:
    """Build the faust app, its tables, its agent and its clock."""
    app = faust.App(
        settings.app_id,
        loop=loop,
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
        producer_max_batch_size=BATCH_BYTES,
        producer_linger=EOS_LINGER_S if settings.processing_guarantee == "exactly_once" else 0.0,
        table_standby_replicas=settings.standby_replicas,
        broker_session_timeout=settings.session_timeout_s,
    )
    install_safe_seek(app)  # before the consumer exists: see stream/engines/faust_internals.py
    install_stable_highwaters(app)
    worker = StreamWorker(app, settings)
    sender = worker.sender
    gate = install_commit_gate(app, sender.settle) if sender.exactly_once else CommitGate()

    @app.agent(worker.inputs, concurrency=1)
    async def orders_agent(stream: Any) -> None:
        async for event in stream.events():
            async with gate:
                if gate.paused:  # a rebalance: the event is read again after the seek
                    gate.skip(event)
                else:
                    await worker.handle(event.message, event.value)

    @app.on_partitions_revoked.connect
    async def forget_schedule(app: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        worker.schedule.forget()

    async def clock() -> None:
        await worker.send_ticks(datetime.now(UTC))

    app.timer(settings.tick_interval_s)(clock)

    app.paynotify_agent = orders_agent  # type: ignore[attr-defined]
    app.paynotify_table = worker.table  # type: ignore[attr-defined]
    app.paynotify_worker = worker  # type: ignore[attr-defined]
    return app


class StreamWorker:
    """What the agent does with one record; holds the topics and tables."""

    def __init__(self, app: faust.App, settings: StreamSettings) -> None:
        self.app, self.settings = app, settings
        self.notifications = settings.topic(NOTIFICATIONS_TOPIC)
        self.ticks_name = settings.topic(TICKS_TOPIC)
        self.inputs = app.topic(
            settings.topic(ORDERS_TOPIC),
            self.notifications,
            self.ticks_name,
            partitions=settings.partitions,
            key_serializer="raw",
            value_serializer="raw",
        )
        self.table = app.Table(TABLES[0], partitions=settings.partitions, key_type=str)
        self.due = app.Table(TABLES[1], partitions=settings.partitions, key_type=str)
        self.sender = EventSender(app, settings)
        self.schedule = DueSchedule()  # rebuilt from ``due`` after every rebalance
        self.routes = {settings.topic(name): name for name in INPUT_TOPICS}
        self.processor = OrderProcessor(settings.pending_timeout_s, settings.retention_s)

    async def handle(self, message: Any, value: bytes) -> None:
        """Decode one input record, apply it, send what it emits, store the new state."""
        kind = self.routes.get(message.topic, ORDERS_TOPIC)
        decoded = self.processor.decode(kind, message.key, value)
        if isinstance(decoded, RecordError):
            log.error("undecodable record", extra={"topic": message.topic, "error": str(decoded)})
            where = (message.topic, message.partition, message.offset, message.key)
            await self.sender.send(message, self.processor.undecodable(*where, decoded))
        elif isinstance(decoded, Tick):
            await self.on_tick(message, decoded)
        else:
            await self.step(message, decoded.out_trade_no, decoded)

    async def step(self, message: Any, key: str, item: Input) -> None:
        """Apply one input to the order ``key``: send first, then store."""
        done = self.processor.process(self.table.get(key), item)
        for out in done.outputs:
            await self.sender.send(message, out)
        if done.state is None:
            self.table.pop(key, None)
            self.due.pop(key, None)
            return
        if not done.changed:  # an exact copy: no table write, no changelog record
            return
        self.table[key] = done.stored()
        self.index(message.partition, key, done.due_at)

    def index(self, partition: int, key: str, at: datetime | None) -> None:
        """Remember when the order ``key`` is next due for a tick (nothing: forget it)."""
        if at is None:
            self.due.pop(key, None)
            return
        when = at.astimezone(UTC).isoformat(timespec="microseconds")
        entry = {"p": partition, "at": when}
        if self.due.get(key) != entry:
            self.due[key] = entry
            self.schedule.add(partition, key, when)

    async def on_tick(self, message: Any, tick: Tick) -> None:
        """Apply a tick to every order of this partition that is due."""
        now = tick.now
        partition = message.partition
        if not self.schedule.loaded(partition):  # first tick since this worker got it
            entries = [(e["at"], k) for k, e in list(self.due.items()) if e["p"] == partition]
            self.schedule.load(partition, entries)
        for key in self.schedule.pop_due(partition, now):
            entry = self.due.get(key)  # the heap may hold entries that have moved or gone
            if entry is not None and entry["p"] == partition and entry["at"] <= now:
                await self.step(message, key, tick)
                if self.due.get(key) == entry:  # still due as before: try again next tick
                    self.schedule.add(partition, key, entry["at"])

    async def send_ticks(self, now: datetime) -> None:
        """Send one tick to every partition of the ticks topic this worker owns."""
        value = json.dumps({"now": now.isoformat(timespec="microseconds")}).encode()
        actives = self.app.assignor.assigned_actives()
        for partition in sorted({tp.partition for tp in actives if tp.topic == self.ticks_name}):
            try:  # outside any transaction: a tick must not keep an idle transaction open
                await self.app.producer.send(self.ticks_name, None, value, partition, None, None)
            except Exception as exc:  # a rebalance between the check and the send
                log.warning("tick not sent", extra={"partition": partition, "error": repr(exc)})


class EventSender:
    """Send emitted events so that they commit with the input that caused them.

    With ``exactly_once``, faust's ``topic.send`` picks the transactional producer from the
    *destination* topic; for an output topic the app does not consume, that is no producer at
    all, and the send escapes the transaction (faust #177; seen here: duplicates after kill -9).
    This sends through the producer faust opened for the input record's own partition instead.

    Under ``exactly_once`` the event is not awaited here: the transaction makes the event, the
    state and the offset visible together or not at all, and the commit gate calls
    :meth:`settle` before it commits. Under ``at_least_once`` nothing ties the state to the
    event, so each event is acknowledged by the broker before the state that records it is stored.
    """

    def __init__(self, app: faust.App, settings: StreamSettings) -> None:
        self.app, self.settings = app, settings
        self.exactly_once = settings.processing_guarantee == "exactly_once"
        self.pending: list[Awaitable[Any]] = []

    def transactional_id(self, message: Any) -> str:
        """Return the id of the transaction the input ``message`` belongs to."""
        group = self.app.assignor.group_for_topic(message.topic)
        return f"{self.app.conf.id}-{group}-{message.partition}"

    async def send(self, message: Any, out: OutputRecord) -> None:
        """Send one record inside the input's transaction (at_least_once: wait for its ack)."""
        topic = self.settings.topic(out.topic)
        tid = self.transactional_id(message) if self.exactly_once else None
        future = await self.app.producer.send(
            topic, out.key, out.value, None, None, None, transactional_id=tid
        )
        if self.exactly_once:
            self.pending.append(future)
        else:
            await future

    async def settle(self) -> None:
        """Wait until every event sent so far is acknowledged; raise if one of them failed."""
        pending, self.pending = self.pending, []
        for future in pending:
            await future  # raises the send's error: the commit must not go through


CLEAN_STOP_MARKER = "clean-stop"


def ensure_changelogs(settings: StreamSettings, timeout: float = 30.0) -> None:
    """Create the tables' compacted changelog topics before the worker starts.

    faust creates them itself, but a worker whose first table write comes before its metadata
    shows the new topic crashes its agent with PartitionsMismatch until the metadata refreshes
    (up to five minutes); creating them first, with the table's partition count, avoids that.
    """
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    wanted = [
        NewTopic(
            f"{settings.app_id}-{table}-changelog",
            num_partitions=settings.partitions,
            replication_factor=1,
            config={"cleanup.policy": "compact"},
        )
        for table in TABLES
    ]
    for future in admin.create_topics(wanted, request_timeout=timeout).values():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise


def prepare_data_dir(settings: StreamSettings) -> bool:
    """Get the local state folder ready; return False when it was wiped after a crash.

    faust writes a table change to RocksDB at once, but under ``exactly_once`` the changelog
    record of that change commits only with the transaction. After a crash the local store may
    hold changes whose transaction was aborted (an order recorded as paid whose ``order.paid``
    never committed), so it is dropped and the state is restored from the committed changelog.
    After a clean stop the local store is exact and recovery only reads the changelog's tail.
    """
    folder = Path(settings.data_dir)
    marker = folder / CLEAN_STOP_MARKER
    clean = marker.is_file() or not folder.exists() or not any(folder.iterdir())
    if not clean and settings.processing_guarantee == "exactly_once":
        log.warning("no clean stop recorded: local state dropped, restoring from the changelog")
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    return clean


def mark_clean_stop(settings: StreamSettings) -> None:
    """Record that the worker stopped cleanly, so its local state can be trusted next time."""
    (Path(settings.data_dir) / CLEAN_STOP_MARKER).touch()


def run(settings: StreamSettings) -> int:
    """Run a faust worker until it is told to stop; a clean stop is remembered for the next
    start (``prepare_data_dir``)."""
    prepare_data_dir(settings)
    ensure_changelogs(settings)
    worker = faust.Worker(create_app(settings), loglevel="INFO", quiet=True)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        if exc.code in (0, None):
            mark_clean_stop(settings)
        raise
    mark_clean_stop(settings)
    return 0
