"""The one place where paynotify touches faust's and aiokafka's private internals.

faust-streaming 0.15.3 over aiokafka 0.14.0 needs three patches before the faust engine keeps
its promises; each one replaces a class on the app's transport before the consumer exists
(``docs/reliability.md`` has the runs that showed why):

- :func:`install_safe_seek`: faust seeks to the committed offsets while its fetcher is
  delivering a batch, records the rest of the batch as a "gap", commits past records the agent
  never saw and drops their re-fetched copies. Stop the flow, wait until the fetcher has left its
  batch, then seek.
- :func:`install_stable_highwaters`: under ``exactly_once`` faust takes a changelog's end from
  aiokafka's cached last stable offset, unknown (-1) for a partition not fetched yet, and crashes
  the worker with ``ConsistencyError`` (robinhood faust #658). Ask the broker instead.
- :func:`install_commit_gate`: a transaction commit must hold whole events (a lock the agent
  holds for one event and the commit holds while it flushes faust's buffer and commits), must
  wait for every changelog write faust buffered (:class:`BufferedSends`: faust's flush gives up
  early), must fail when one of its events failed, and a revocation must commit first; the
  agent skips the events it is handed from then until the seek that ends the rebalance, and a
  skipped event must leave no acknowledged offset behind (:meth:`CommitGate.skip`), or faust
  commits past it.

:data:`PRIVATE_NAMES` lists every private name this module and ``stream/engines/faust.py`` rely
on, with the parameters of each callable; ``tests/unit/stream/test_faust_internals.py`` fails as
soon as an installed faust or aiokafka no longer has one of them, or is not a version in
:data:`CHECKED_VERSIONS`: upgrading either is a conscious act (read the code again, re-run the
rebalance and kill -9 tests, then update the table).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

import faust
from aiokafka.errors import KafkaError
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types.tuples import ack_lock
from mode.utils.futures import notify

log = logging.getLogger("paynotify.stream")
EXIT_ABANDONED = 75  # EX_TEMPFAIL: the supervisor restarts the worker
# The longest a commit waits for the tables' buffered changelog writes (then: restart). The
# broker aborts a transaction open longer than aiokafka's 60 s timeout anyway.
CHANGELOG_WAIT_S = 60.0

CHECKED_VERSIONS = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0"}


@dataclass(frozen=True)
class PrivateName:
    """One private name we rely on: where it lives, what it looks like, and why we need it.

    ``params`` is the callable's parameter list without annotations (``*`` marks keyword-only
    parameters, defaults as ``repr``); ``None`` for an attribute. ``where`` says how the test
    finds an attribute: ``class`` (on the class), ``init`` (assigned in ``__init__``).
    """

    owner: str
    name: str
    params: str | None
    why: str
    where: str = "class"


_CONSUMER = "faust.transport.consumer.Consumer"
_AIO = "faust.transport.drivers.aiokafka"
_TM = "faust.transport.consumer.TransactionManager"
_PRODUCER = "faust.transport.producer"
_ASSIGNOR = "faust.assignor.partition_assignor.PartitionAssignor"
_RECOVERY = "faust.tables.recovery.Recovery"

PRIVATE_NAMES: tuple[PrivateName, ...] = (
    PrivateName(f"{_AIO}.Transport", "Consumer", None, "replaced by our consumer subclass"),
    PrivateName(f"{_AIO}.Transport", "TransactionManager", None, "replaced: the commit gate"),
    PrivateName(_CONSUMER, "on_partitions_revoked", "(self, revoked)", "overridden: commit first"),
    PrivateName(_CONSUMER, "perform_seek", "(self)", "overridden: safe seek, end of the pause"),
    PrivateName(_CONSUMER, "getmany", "(self, timeout)", "overridden: know when a batch ends"),
    PrivateName(_CONSUMER, "stop_flow", "(self)", "called: stop delivering before the seek"),
    PrivateName(_CONSUMER, "maybe_wait_for_commit_to_finish", "(self)", "called at a revocation"),
    PrivateName(
        _CONSUMER,
        "force_commit",
        "(self, topics=None, start_new_transaction=True)",
        "called at a revocation",
    ),
    PrivateName(_CONSUMER, "unacked", None, "a skipped event is taken out of it"),
    PrivateName(_CONSUMER, "_waiting_for_ack", None, "woken after a skip", "init"),
    PrivateName(
        "faust.types.tuples.Message",
        "acked",
        None,
        "set on a skipped event: faust's stream iterator then records no offset for it",
    ),
    PrivateName("faust.types.tuples", "ack_lock", None, "held while a skipped event is marked"),
    PrivateName(f"{_PRODUCER}.Producer", "buffer", None, "its put is wrapped", "init"),
    PrivateName(f"{_PRODUCER}.ProducerBuffer", "put", "(self, fut)", "wrapped: changelog writes"),
    PrivateName("mode.utils.futures", "notify", "(fut, result=None)", "wakes wait_empty"),
    PrivateName(_CONSUMER, "loop", None, "passed to the consumer thread"),
    PrivateName(_CONSUMER, "beacon", None, "passed to the consumer thread"),
    PrivateName(f"{_AIO}.Consumer", "_new_consumer_thread", "(self)", "overridden: highwaters"),
    PrivateName(
        f"{_AIO}.AIOKafkaConsumerThread", "__init__", "(self, consumer, **kwargs)", "subclassed"
    ),
    PrivateName(
        f"{_AIO}.AIOKafkaConsumerThread", "_highwaters", "(self, partitions)", "overridden"
    ),
    PrivateName(f"{_AIO}.AIOKafkaConsumerThread", "_ensure_consumer", "(self)", "called"),
    PrivateName(
        _TM, "commit", "(self, offsets, start_new_transaction=True)", "overridden: the gate"
    ),
    PrivateName(
        _TM, "__init__", "(self, transport, *, consumer, producer, **kwargs)", "subclassed"
    ),
    PrivateName(_TM, "producer", None, "flushed and committed through", "init"),
    PrivateName(_TM, "app", None, "its id and assignor", "init"),
    PrivateName(_TM, "transactional_id_format", None, "our transactional ids must be faust's"),
    PrivateName(
        f"{_AIO}.Producer",
        "commit_transactions",
        "(self, tid_to_offset_map, group_id, start_new_transaction=True)",
        "called by the gate, one transaction each, concurrently",
    ),
    PrivateName(f"{_AIO}.Producer", "flush", "(self)", "called by the gate before a commit"),
    PrivateName(
        f"{_AIO}.Producer",
        "send",
        "(self, topic, key, value, partition, timestamp, headers, *, transactional_id=None)",
        "called by the engine's EventSender with the input partition's transactional id",
    ),
    PrivateName(_ASSIGNOR, "group_for_topic", "(self, topic)", "the group in a transactional id"),
    PrivateName(_ASSIGNOR, "assigned_actives", "(self)", "called by the clock: what to tick"),
    PrivateName(
        _RECOVERY,
        "_resume_streams",
        "(self, generation_id=0)",
        "not called; its order (resume partitions, perform_seek, empty the queues) is why "
        "the safe seek exists",
    ),
    PrivateName(_RECOVERY, "on_recovery_completed", "(self, generation_id=0)", "resumes too"),
    PrivateName(
        _CONSUMER,
        "wait_empty",
        "(self)",
        "not called; its commit at the end of a revocation is why a skip must not ack",
    ),
    PrivateName(
        "aiokafka.consumer.consumer.AIOKafkaConsumer",
        "end_offsets",
        "(self, partitions)",
        "called: a read_committed consumer's end offsets are the last stable offsets",
    ),
)


def abandon(exc: BaseException) -> NoReturn:
    """Leave at once after a failed transaction commit: nothing of the transaction is visible,
    the worker restarts (``paynotify/supervisor.py``), drops its local state (no clean stop) and
    resumes from the committed offsets and changelog. Trying to go on in this process would need
    every open transaction aborted and every local state rewound: a restart does exactly that."""
    log.error(
        "transaction commit failed: restarting from the committed state",
        extra={"error": f"{type(exc).__name__}: {exc}"},
    )
    logging.shutdown()
    os._exit(EXIT_ABANDONED)


class CommitGate:
    """The lock the agent holds for one whole event and a commit holds while it commits."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.holder: asyncio.Task[Any] | None = None  # a task committing under the lock
        self.paused = False  # from a revocation until the seek to the committed offsets

    async def __aenter__(self) -> None:
        await self.lock.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.lock.release()

    def skip(self, event: Any) -> None:
        """Drop an event the agent did not apply, so that no commit counts it as processed.

        faust's stream acknowledges an event when the agent asks for the next one, and commits
        acknowledged offsets. An event skipped after a revocation's commit was acknowledged once
        faust had already forgotten the partition's committed offset, so faust's own commit at
        the end of the revocation moved past it and it was never read again (an expected order
        lost). Marked acknowledged here, its offset is never recorded; it is read again after
        the seek, by whichever worker then owns its partition.
        """
        message = event.message
        consumer = event.app.consumer
        with ack_lock:  # faust's stream iterator tests and sets ``acked`` under it
            message.acked = True
            consumer.unacked.discard(message)
        notify(consumer._waiting_for_ack)  # faust's wait for the agents need not time out
        log.info(
            "skipped until the seek that ends the rebalance: %s[%d]@%d",
            message.topic,
            message.partition,
            message.offset,
        )


def install_safe_seek(app: faust.App) -> None:
    """Make the app's consumer stop delivering before it seeks to the committed offsets.

    faust ends a recovery with ``Recovery._resume_streams``: it resumes the stream partitions,
    *then* awaits ``consumer.perform_seek()``, *then* empties every stream queue. The fetcher
    runs the whole time, so without this the seek lands in the middle of a batch: the rest of
    the batch looks like a jump (a "gap", counted as acked: commits past unseen records), and the
    records emptied from the queues are dropped as already read when they are fetched again.
    Nothing is delivered after this seek until faust resumes the flow, after emptying the queues.
    """
    transport = app.transport
    base: Any = transport.Consumer

    class SafeSeekConsumer(base):  # type: ignore[misc]
        _idle: asyncio.Event | None = None  # set while no fetched batch is being delivered
        _drain_task: asyncio.Task[Any] | None = None

        async def getmany(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            idle = self._idle_event()
            self._drain_task = asyncio.current_task()
            try:
                async for item in super().getmany(*args, **kwargs):
                    idle.clear()  # the fetcher is inside a batch until this generator ends
                    yield item
            finally:
                idle.set()

        async def perform_seek(self) -> None:
            self.stop_flow()  # the batch being delivered stops at its next record
            if asyncio.current_task() is not self._drain_task:
                await self._idle_event().wait()
            await super().perform_seek()  # the flow stays stopped until faust resumes it

        def _idle_event(self) -> asyncio.Event:
            if self._idle is None:
                self._idle = asyncio.Event()
                self._idle.set()
            return self._idle

    transport.Consumer = SafeSeekConsumer  # type: ignore[misc]


class StableHighwaterThread(AIOKafkaConsumerThread):
    """The consumer thread, with highwaters that are never unknown under transactions."""

    async def _highwaters(self, partitions: list[Any]) -> Mapping[Any, int]:
        consumer = self._ensure_consumer()
        offsets: Mapping[Any, int] = await consumer.end_offsets(partitions)
        return offsets


def install_stable_highwaters(app: faust.App) -> None:
    """Make the app's consumer use :class:`StableHighwaterThread`."""
    transport = app.transport
    base: Any = transport.Consumer

    class StableHighwaterConsumer(base):  # type: ignore[misc]
        def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
            return StableHighwaterThread(self, loop=self.loop, beacon=self.beacon)

    transport.Consumer = StableHighwaterConsumer  # type: ignore[misc]


def install_commit_gate(app: faust.App, settle: Callable[[], Awaitable[None]]) -> CommitGate:
    """Make the app's transaction commits wait for the gate, flush, and ``settle`` first, and
    its revocations commit first; return the gate the agent must hold for each event.

    faust commits from its consumer's commit task while the agent works, without flushing its own
    producer buffer (the changelog records): an event's output and its table change could land in
    different transactions. ``settle`` raises when an event sent in the transaction was not
    acknowledged (aiokafka commits a transaction even when one of its records failed): the commit
    fails, and the transaction is not committed. On a revocation faust forgets the acks since the
    last commit, keeps the open transactions of the partitions a worker keeps and seeks back:
    the inputs would be applied twice into one transaction. So the revocation commits first, and
    the agent skips (:meth:`CommitGate.skip`) the events it is handed until the seek (they are
    read again after it).
    """
    gate = CommitGate()
    changelogs = BufferedSends()
    transport = app.transport
    base: Any = transport.TransactionManager
    consumer_base: Any = transport.Consumer

    class GatedConsumer(consumer_base):  # type: ignore[misc]
        async def on_partitions_revoked(self, revoked: Any) -> None:
            gate.paused = True
            async with gate:  # the event being applied, if any, is finished
                gate.holder = asyncio.current_task()
                try:
                    await self.maybe_wait_for_commit_to_finish()
                    await self.force_commit()
                finally:
                    gate.holder = None
            await super().on_partitions_revoked(revoked)

        async def perform_seek(self) -> None:
            await super().perform_seek()
            gate.paused = False

    class GatedTransactionManager(base):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            changelogs.track(self.producer.buffer)

        async def commit(
            self, offsets: Mapping[Any, int], start_new_transaction: bool = True
        ) -> bool:
            if gate.holder is not None and gate.holder is asyncio.current_task():
                return await self.commit_held(offsets, start_new_transaction)
            async with gate:
                return await self.commit_held(offsets, start_new_transaction)

        async def commit_held(
            self, offsets: Mapping[Any, int], start_new_transaction: bool
        ) -> bool:
            await self.producer.flush()
            await settle()
            try:
                async with asyncio.timeout(CHANGELOG_WAIT_S):
                    await changelogs.settle()
            except Exception as exc:  # a fenced or failed write, or none in time: no commit
                abandon(exc)
            return await commit_all(self.app, self.producer, offsets, start_new_transaction)

    transport.TransactionManager = GatedTransactionManager  # type: ignore[misc]
    transport.Consumer = GatedConsumer  # type: ignore[misc]
    return gate


class BufferedSends:
    """The messages faust put in its producer buffer (the tables' changelog writes) since the
    last commit. faust's ``ProducerBuffer.flush`` gives up after 0.1 s without a message sent
    and ignores the one its task holds, so a commit could count an input done while its
    changelog write went into the next transaction (lost with it: ``docs/reliability.md``, "A
    changelog write outside its transaction"). The gate waits for each before it commits."""

    def __init__(self) -> None:
        self.pending: list[Awaitable[Any]] = []
        self.tracked: Any = None

    def track(self, buffer: Any) -> None:
        """Note every message put in ``buffer`` (once per buffer), then let faust send it."""
        if buffer is self.tracked:
            return
        put = buffer.put

        def put_and_note(fut: Any) -> None:
            self.pending.append(fut)
            put(fut)

        buffer.put = put_and_note
        self.tracked = buffer

    async def settle(self) -> None:
        """Wait until every message noted so far is acknowledged.

        Raises:
            the first failed write's error.
        """
        pending, self.pending = self.pending, []
        if pending:
            await asyncio.gather(*pending)


async def commit_all(
    app: faust.App, producer: Any, offsets: Mapping[Any, int], start_new_transaction: bool
) -> bool:
    """Commit the transactions of all input partitions at once (faust: one after another).

    Raises nothing: a failed commit ends the process (:func:`abandon`).
    """
    group_id = app.conf.id
    by_transaction: dict[str, dict[Any, int]] = defaultdict(dict)
    for tp, offset in offsets.items():  # as faust's own commit groups them
        group = app.assignor.group_for_topic(tp.topic)
        by_transaction[f"{group_id}-{group}-{tp.partition}"][tp] = offset
    commits = (
        producer.commit_transactions(
            {tid: part}, group_id, start_new_transaction=start_new_transaction
        )
        for tid, part in by_transaction.items()
    )
    try:
        await asyncio.gather(*commits)
    except KafkaError as exc:  # ProducerFenced (the partition moved), a lost broker...
        abandon(exc)
    return True
