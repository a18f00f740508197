"""Read what landed in Kafka, as a downstream consumer would (``read_committed``)."""

from __future__ import annotations

import time
import uuid
from collections import Counter

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from paynotify.simulator.verification import count_paid_events

__all__ = ["count_paid_events", "wait_group_caught_up"]


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"probe-{uuid.uuid4()}",
            "isolation.level": "read_committed",
        }
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    ends = {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        for p in partitions
    }
    consumer.close()
    return ends


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    request = ConsumerGroupTopicPartitions(
        group, [TopicPartition(topic, p) for p in range(partitions)]
    )
    result = admin.list_consumer_group_offsets([request])[group].result(timeout=10)
    return {tp.partition: tp.offset for tp in result.topic_partitions}


def wait_group_caught_up(bootstrap: str, group: str, topic: str, timeout: float = 120.0) -> None:
    """Wait until ``group`` has committed the end of every partition of ``topic`` that has data."""
    deadline = time.monotonic() + timeout
    while True:
        ends = end_offsets(bootstrap, topic)
        done = committed(bootstrap, group, topic, len(ends))
        behind = {
            p: (done.get(p, -1), end)
            for p, end in ends.items()
            if end > 0 and done.get(p, -1) < end
        }
        if not behind:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"group {group} did not catch up on {topic}: {behind}")
        time.sleep(0.5)


def paid_counts(bootstrap: str, topic: str, prefix: str) -> Counter[str]:
    return count_paid_events(bootstrap, topic, prefix)


def group_members(bootstrap: str, group: str) -> int:
    """Return how many members the consumer group ``group`` has now.

    0 also while the broker cannot describe it yet (no coordinator before its first member).
    """
    admin = AdminClient({"bootstrap.servers": bootstrap})
    description = admin.describe_consumer_groups([group], request_timeout=10)[group]
    try:
        return len(description.result(timeout=15).members)
    except KafkaException:
        return 0


def wait_group_members(bootstrap: str, group: str, at_least: int, timeout: float = 120.0) -> None:
    """Wait until the consumer group ``group`` has ``at_least`` members."""
    deadline = time.monotonic() + timeout
    while (count := group_members(bootstrap, group)) < at_least:
        assert time.monotonic() < deadline, f"group {group} has {count} members, not {at_least}"
        time.sleep(0.3)
