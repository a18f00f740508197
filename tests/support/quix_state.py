"""Quix Streams' per-key state reduced to a dict of bytes, for the engine's step without Kafka.

Values go in and out as Quix's own state does it: ``set``/``get`` through Quix's own JSON
serializer (its RocksDB store's default), ``set_bytes``/``get_bytes`` as they are.
"""

from __future__ import annotations

from typing import Any

from quixstreams.utils.json import dumps, loads


class BytesState:
    """Stands in for ``quixstreams.State``: get/set, get_bytes/set_bytes, delete."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return loads(self.values[key]) if key in self.values else default

    def set(self, key: str, value: Any) -> None:
        self.values[key] = dumps(value)

    def get_bytes(self, key: str, default: bytes | None = None) -> bytes | None:
        return self.values.get(key, default)

    def set_bytes(self, key: str, value: bytes) -> None:
        self.values[key] = value

    def delete(self, key: str) -> None:
        self.values.pop(key, None)
