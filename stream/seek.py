"""A small adapter that makes faust's "seek to committed offsets" safe while the fetcher runs.

faust (0.15.3) ends a recovery with ``Recovery._resume_streams``: it resumes the stream
partitions, *then* awaits ``consumer.perform_seek()``, *then* calls ``app.flow_control.resume()``,
which empties every stream queue. The fetcher keeps running the whole time (it was started to read
the changelogs), so during the seek it fetches the stream partitions from their committed offsets
and hands the records to the agent's queue. Seen after kill -9 (docs/reliability.md):

- records put in the queue before the queues are emptied never reach the agent and are never
  acked; they are not fetched again either, because the fetcher went on delivering the rest of
  its batch after the seek, so its read offset is past them and the re-fetched copies are dropped;
- the seek resets the read offset to the committed offset in the middle of that batch, so the next
  record of the batch looks like a jump, and faust records the offsets in between as a "gap",
  which it treats as acked: the commit moves past records the agent never saw (lost orders);
  where no gap was recorded, the missing acks block the partition's commits for good (a stall).

:func:`install_safe_seek` stops the flow and waits until the fetcher has left the batch it is
delivering before it seeks. Nothing is delivered again until faust resumes the flow, which it does
only after emptying the queues, so every record that was dropped from a queue is fetched again from
the committed offset, and no read offset moves after the seek.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import faust


def install_safe_seek(app: faust.App) -> None:
    """Make the app's consumer stop delivering before it seeks to the committed offsets."""
    transport = app.transport
    base: Any = transport.Consumer  # type: ignore[attr-defined]

    class SafeSeekConsumer(base):  # type: ignore[misc, valid-type]
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

    transport.Consumer = SafeSeekConsumer  # type: ignore[attr-defined]
