"""When each order is next due for a tick, per partition, in memory: a min-heap per partition.

The ``order-due`` table is the durable record (it survives restarts and moves with its
partition); this is only how a tick finds the due orders without reading that whole table: one
read per partition when it is first ticked after an assignment, then each tick pops what is due.
Entries are never removed early: when an order's due time moves or goes, its old entry stays in
the heap and the caller checks every popped key against the table before it acts.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable


class DueSchedule:
    """Per-partition heaps of (due time as ISO-8601 UTC text, key)."""

    def __init__(self) -> None:
        self._heaps: dict[int, list[tuple[str, str]]] = {}

    def loaded(self, partition: int) -> bool:
        """Return whether the partition's heap has been built since the last :meth:`forget`."""
        return partition in self._heaps

    def load(self, partition: int, entries: Iterable[tuple[str, str]]) -> None:
        """Build the partition's heap from (at, key) pairs."""
        heap = list(entries)
        heapq.heapify(heap)
        self._heaps[partition] = heap

    def add(self, partition: int, key: str, at: str) -> None:
        """Remember that ``key`` is due at ``at`` (ignored until the partition is loaded)."""
        heap = self._heaps.get(partition)
        if heap is not None:
            heapq.heappush(heap, (at, key))

    def pop_due(self, partition: int, now: str) -> list[str]:
        """Remove and return the keys whose entries are due at ``now`` (each key once)."""
        heap = self._heaps.get(partition, [])
        keys: dict[str, None] = {}
        while heap and heap[0][0] <= now:
            keys[heapq.heappop(heap)[1]] = None
        return list(keys)

    def forget(self) -> None:
        """Drop every heap: partitions may have moved (a rebalance)."""
        self._heaps.clear()
