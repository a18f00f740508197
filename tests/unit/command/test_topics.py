"""ensure_topics when the broker's metadata lags behind its controller: a topic that exists but
was not listed yet must still have the expected partition count. The real broker's side is in
tests/integration/test_kafka.py."""

from __future__ import annotations

from concurrent.futures import Future
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from paynotify import topics as module
from paynotify.errors import TopicError
from paynotify.topics import ensure_topics


class LaggingAdmin:
    """Lists no topic at first; creating one says it already exists (with ``count`` partitions),
    and only a later listing shows it."""

    count = 3

    def __init__(self, config: dict[str, Any]) -> None:
        self.listings = 0

    def list_topics(self, topic: str | None = None, timeout: float = 0) -> Any:
        self.listings += 1
        if topic is None or self.listings < 3:
            return SimpleNamespace(topics={})
        partitions = dict.fromkeys(range(self.count))
        return SimpleNamespace(topics={topic: SimpleNamespace(error=None, partitions=partitions)})

    def create_topics(self, new: list[Any], request_timeout: float = 0) -> dict[str, Future[None]]:
        futures = {}
        for topic in new:
            future: Future[None] = Future()
            future.set_exception(KafkaException(KafkaError(KafkaError.TOPIC_ALREADY_EXISTS)))
            futures[topic.topic] = future
        return futures


def test_ensure_topics_existing_but_unlisted_topic_of_another_count_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(module, "AdminClient", LaggingAdmin)
    monkeypatch.setattr(LaggingAdmin, "count", 3)
    with pytest.raises(TopicError, match="co-partitioning"):
        ensure_topics("127.0.0.1:9", ["c"], 8, timeout=5)


def test_ensure_topics_existing_but_unlisted_topic_of_the_same_count_accepted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(module, "AdminClient", LaggingAdmin)
    monkeypatch.setattr(LaggingAdmin, "count", 8)
    assert ensure_topics("127.0.0.1:9", ["c"], 8, timeout=5) == []
