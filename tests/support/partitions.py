"""Where a Java-compatible partitioner puts a key: the reference the tests compare placement with.

aiokafka's ``DefaultPartitioner`` is the Java client's ``murmur2(key) & 0x7fffffff % n``.
``confluent_kafka.murmur2`` would do, but it is public only from confluent-kafka 2.13, and
quixstreams 3.28 keeps the project on 2.12.
"""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner

_JAVA = DefaultPartitioner()


def java_partition(key: bytes, partitions: int) -> int:
    """Return the partition the Java client's default partitioner picks for ``key``."""
    every = list(range(partitions))
    return int(_JAVA(key, every, every))
