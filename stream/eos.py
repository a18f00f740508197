"""A small adapter that makes faust's ``exactly_once`` commit whole events only, and quickly.

faust (0.15.x) commits a transaction from its consumer's commit task while the agent keeps
processing: the commit does not flush faust's own producer buffer (where table changelog records
wait), and an event being processed at commit time can have its output inside the transaction
and its table change outside it. After a crash the input offset, the table and the outputs then
disagree: a lost state change makes the next copy of a payment emit ``order.paid`` again.

:func:`install_commit_gate` closes both gaps with one lock: the agent holds it for one event
(read state, send events, write state), and the transaction commit holds it while it flushes
faust's buffer and commits. A committed transaction therefore holds whole events, and an event
whose offset did not make it in is re-read against a state that already records it.

The agent does not wait for each event's acknowledgement under ``exactly_once``: the gate's
``settle`` callback waits for every event sent so far, before the commit. aiokafka does not abort
a transaction when one of its records fails, so a failed event must fail the commit here, or the
transaction would commit the input's offset without its event.

faust commits the transactions of the input partitions one after another (three round trips
each, while the gate holds the agent); they are independent, so this commits them all at once.

On a rebalance faust neither commits nor aborts the open transactions of the partitions a worker
keeps, and it forgets the acknowledgements of the events processed since the last commit *before*
it waits for the agent; after the rebalance it seeks back to the committed offsets, the worker
applies those inputs a second time into the same transaction, and that transaction later commits
both emissions (seen here: 6 to 195 orders with two ``order.paid`` each when a second worker
joined or left). So at the very start of a revocation the gate commits everything processed so
far, as Kafka Streams does, and the agent skips (without applying) any event it is handed from
then until the worker has sought to the committed offsets again; those are read again after the
seek, by whichever worker then owns their partition.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NoReturn

import faust
from aiokafka.errors import KafkaError

log = logging.getLogger("paynotify.stream")
EXIT_ABANDONED = 75  # EX_TEMPFAIL: the supervisor restarts the worker


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


def install_commit_gate(app: faust.App, settle: Callable[[], Awaitable[None]]) -> CommitGate:
    """Make the app's transaction commits wait for the gate, flush, and ``settle`` first, and
    its revocations commit first; return the gate the agent must hold for each event.

    ``settle`` raises when an event sent in the transaction was not acknowledged: the commit
    fails, and the transaction is not committed.
    """
    gate = CommitGate()
    transport = app.transport
    base: Any = transport.TransactionManager  # type: ignore[attr-defined]
    consumer_base: Any = transport.Consumer  # type: ignore[attr-defined]

    class GatedConsumer(consumer_base):  # type: ignore[misc, valid-type]
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

    class GatedTransactionManager(base):  # type: ignore[misc, valid-type]
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
            group_id = self.app.conf.id
            by_transaction: dict[str, dict[Any, int]] = defaultdict(dict)
            for tp, offset in offsets.items():  # as faust's own commit groups them
                group = self.app.assignor.group_for_topic(tp.topic)
                by_transaction[f"{group_id}-{group}-{tp.partition}"][tp] = offset
            commits = (
                self.producer.commit_transactions(
                    {tid: part}, group_id, start_new_transaction=start_new_transaction
                )
                for tid, part in by_transaction.items()
            )
            try:
                await asyncio.gather(*commits)
            except KafkaError as exc:  # ProducerFenced (the partition moved), a lost broker...
                abandon(exc)
            return True

    transport.TransactionManager = GatedTransactionManager  # type: ignore[attr-defined]
    transport.Consumer = GatedConsumer  # type: ignore[attr-defined]
    return gate
