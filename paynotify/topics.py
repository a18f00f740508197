"""Create every topic paynotify uses, explicitly, with ``[kafka] partitions`` partitions.

Broker-side auto-creation is off: a producer must never create a one-partition topic, because
the stream's table shards follow the input partitions (co-partitioning by ``out_trade_no``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from paynotify.errors import TopicError


def ensure_topics(
    bootstrap_servers: str, names: Iterable[str], partitions: int, *, timeout: float = 30.0
) -> list[str]:
    """Create the missing topics and check the existing ones; return the names created.

    Raises:
        TopicError: an existing topic has another partition count, or creation failed.
    """
    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 4})
    existing = admin.list_topics(timeout=timeout).topics
    wanted = list(dict.fromkeys(names))
    for name in wanted:
        if name in existing:
            _check_count(name, len(existing[name].partitions), partitions)
    missing = [NewTopic(n, num_partitions=partitions) for n in wanted if n not in existing]
    if not missing:
        return []
    created: list[str] = []
    for name, future in admin.create_topics(missing, request_timeout=timeout).items():
        try:
            future.result(timeout=timeout)
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise TopicError(f"cannot create topic {name}: {exc.args[0].str()}") from None
            # It exists although the metadata read above lacked it (created meanwhile, or just
            # created and not yet in the broker's metadata): its count must still match.
            _check_count(name, _partition_count(admin, name, timeout), partitions)
    return created


def _check_count(name: str, count: int, partitions: int) -> None:
    if count != partitions:
        raise TopicError(
            f"topic {name} has {count} partitions, expected "
            f"{partitions} ([kafka] partitions): co-partitioning would break"
        )


def _partition_count(admin: AdminClient, name: str, timeout: float) -> int:
    """Return an existing topic's partition count, waiting for the broker's metadata to list it.

    Raises:
        TopicError: the metadata does not list it within ``timeout``.
    """
    deadline = time.monotonic() + timeout
    while True:
        topic = admin.list_topics(topic=name, timeout=timeout).topics.get(name)
        if topic is not None and topic.error is None and topic.partitions:
            return len(topic.partitions)
        if time.monotonic() >= deadline:
            raise TopicError(f"topic {name} exists but its metadata does not list it")
        time.sleep(0.1)
