"""A small adapter that makes faust's ``exactly_once`` commit whole events only.

faust (0.15.x) commits a transaction from its consumer's commit task while the agent keeps
processing: the commit does not flush faust's own producer buffer (where table changelog records
wait), and an event being processed at commit time can have its output inside the transaction
and its table change outside it. After a crash the input offset, the table and the outputs then
disagree: a lost state change makes the next copy of a payment emit ``order.paid`` again.

:func:`install_commit_gate` closes both gaps with one lock: the agent holds it for one event
(read state, send events, write state), and the transaction commit holds it while it flushes
faust's buffer and commits. A committed transaction therefore holds whole events, and an event
whose offset did not make it in is re-read against a state that already records it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust


def install_commit_gate(app: faust.App) -> asyncio.Lock:
    """Make the app's transaction commits wait for the gate and flush first; return the gate."""
    gate = asyncio.Lock()
    transport = app.transport
    base: Any = transport.TransactionManager  # type: ignore[attr-defined]

    class GatedTransactionManager(base):  # type: ignore[misc, valid-type]
        async def commit(self, offsets: Any, start_new_transaction: bool = True) -> bool:
            async with gate:
                await self.producer.flush()
                return bool(await super().commit(offsets, start_new_transaction))

    transport.TransactionManager = GatedTransactionManager  # type: ignore[attr-defined]
    return gate
