"""A small adapter: faust's exactly_once recovery reads the changelog's end from the broker.

Under ``exactly_once``, faust 0.15.3 takes a changelog partition's end ("highwater") from
``AIOKafkaConsumer.last_stable_offset``: the value cached from the last fetch of that
partition. Right after a rebalance a partition that was never fetched has none, faust reads it
as -1, finds the offset its standby already persisted "higher than the last offset in that
topic" and crashes the worker with ``ConsistencyError`` (seen here when the first of two workers
left; faust's robinhood #658, still open). :func:`install_stable_highwaters` asks the broker
instead: a ``read_committed`` consumer's ``end_offsets`` is the last stable offset, the same
value faust wanted, and it is known at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import faust
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread


class StableHighwaterThread(AIOKafkaConsumerThread):
    """The consumer thread, with highwaters that are never unknown under transactions."""

    async def _highwaters(self, partitions: list[Any]) -> Mapping[Any, int]:
        consumer = self._ensure_consumer()
        offsets: Mapping[Any, int] = await consumer.end_offsets(partitions)
        return offsets


def install_stable_highwaters(app: faust.App) -> None:
    """Make the app's consumer use :class:`StableHighwaterThread`."""
    transport = app.transport
    base: Any = transport.Consumer  # type: ignore[attr-defined]

    class StableHighwaterConsumer(base):  # type: ignore[misc, valid-type]
        def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
            return StableHighwaterThread(self, loop=self.loop, beacon=self.beacon)

    transport.Consumer = StableHighwaterConsumer  # type: ignore[attr-defined]
