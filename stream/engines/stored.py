"""The Quix step's stored form of an order: the bytes under :data:`STATE_KEY`, and a memo of the
states it stored, so that reading its own bytes back needs no decoding.

No engine here: the bytes are what Quix Streams' ``State.set`` would store for the JSON list
``[stored state, due time or null]`` (a unit test compares them), read and written as bytes.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import orjson

from stream.transitions import OrderState, state_from_dict

STATE_KEY = "order"  # per message key: [stored order state, due time or None]


def stored_value(order: OrderState, due: str | None) -> bytes:
    """Return the bytes stored under :data:`STATE_KEY`: ``[stored state, due]`` as JSON."""
    return orjson.dumps([orjson.Fragment(orjson.dumps(order)), due])


class StateMemo:
    """The order states this worker stored last, by key, with their bytes and due times.

    Reading an order's state back is decoding its JSON and rebuilding the dataclasses, for every
    record; the step's next record of an order mostly reads the bytes it stored itself (the
    payment after its order, a provider's retry after the payment). The memo answers those with
    the state it stored, and decodes any other bytes (another worker's, a restored changelog's,
    an older version's): the bytes are compared in full, so it answers exactly what decoding
    them gives (a unit test holds the two together). It keeps at most :attr:`budget` bytes of
    stored values, forgetting the least recently stored first. (An ``OrderedDict``: a plain dict
    emptied from its front keeps the emptied slots until it grows again, so that finding its
    first key scans them: a cost per record that grows with the memo.)
    """

    BUDGET = 8 * 2**20

    def __init__(self, budget: int = BUDGET) -> None:
        self.budget = budget
        self.size = 0
        self.entries: OrderedDict[bytes, tuple[bytes, OrderState, str | None]] = OrderedDict()

    def get(self, key: bytes, raw: bytes) -> tuple[OrderState | None, str | None]:
        """Return the state and due time that ``raw``, stored under ``key``, holds."""
        entry = self.entries.get(key)
        if entry is not None and entry[0] == raw:
            return entry[1], entry[2]
        stored: list[Any] | None = orjson.loads(raw)
        if not stored:
            return None, None
        return (state_from_dict(stored[0]) if stored[0] else None), stored[1]

    def put(self, key: bytes, raw: bytes, order: OrderState, due: str | None) -> None:
        """Remember that ``raw``, now stored under ``key``, holds ``order`` due at ``due``."""
        self.forget(key)
        self.entries[key] = (raw, order, due)
        self.size += len(raw)
        while self.size > self.budget:
            self.size -= len(self.entries.popitem(last=False)[1][0])

    def forget(self, key: bytes) -> None:
        """Forget the state stored under ``key``."""
        entry = self.entries.pop(key, None)
        if entry is not None:
            self.size -= len(entry[0])
