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
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import faust
from aiokafka.errors import ProducerFenced


def install_commit_gate(app: faust.App, settle: Callable[[], Awaitable[None]]) -> asyncio.Lock:
    """Make the app's transaction commits wait for the gate, flush, and ``settle`` first.

    ``settle`` raises when an event sent in the transaction was not acknowledged: the commit
    fails, and the transaction is not committed.
    """
    gate = asyncio.Lock()
    transport = app.transport
    base: Any = transport.TransactionManager  # type: ignore[attr-defined]

    class GatedTransactionManager(base):  # type: ignore[misc, valid-type]
        async def commit(
            self, offsets: Mapping[Any, int], start_new_transaction: bool = True
        ) -> bool:
            async with gate:
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
                except ProducerFenced as exc:  # another worker owns the partition now
                    await self.app.crash(exc)
                return True

    transport.TransactionManager = GatedTransactionManager  # type: ignore[attr-defined]
    return gate
