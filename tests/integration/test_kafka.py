from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from gateway.errors import PublishError
from gateway.publisher import KafkaPublisher
from paynotify.broker import free_port
from paynotify.errors import TopicError
from paynotify.topics import ensure_topics
from tests.support.partitions import java_partition

pytestmark = pytest.mark.integration


def fresh(name: str) -> str:
    return f"t{uuid.uuid4().hex[:10]}-{name}"


def committed_reader(bootstrap: str, topic: str) -> Consumer:
    """Return a ``read_committed`` consumer of every partition of ``topic``, from the start."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": fresh("reader"),
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(8)])
    return consumer


def test_ensure_topics_creates_with_configured_partitions_and_is_idempotent(
    kafka_bootstrap: str,
) -> None:
    names = [fresh("a"), fresh("b")]
    assert sorted(ensure_topics(kafka_bootstrap, names, 8)) == sorted(names)
    assert ensure_topics(kafka_bootstrap, names, 8) == []
    topics = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10).topics
    assert [len(topics[n].partitions) for n in names] == [8, 8]


def test_ensure_topics_wrong_partition_count_refuses(kafka_bootstrap: str) -> None:
    name = fresh("c")
    ensure_topics(kafka_bootstrap, [name], 3)
    with pytest.raises(TopicError, match="co-partitioning"):
        ensure_topics(kafka_bootstrap, [name], 8)


def test_broker_auto_creation_is_off(kafka_bootstrap: str) -> None:
    name = fresh("never-created")
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "message.timeout.ms": 3000})
    errors: list[object] = []
    producer.produce(name, b"v", key=b"k", on_delivery=lambda err, _m: errors.append(err))
    producer.flush(10)
    assert errors and errors[0] is not None
    topics = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10).topics
    assert name not in topics


async def test_kafka_publisher_returns_after_ack_on_the_java_partition(
    kafka_bootstrap: str,
) -> None:
    topic = fresh("notes")
    ensure_topics(kafka_bootstrap, [topic], 8)
    publisher = KafkaPublisher(kafka_bootstrap, delivery_timeout_ms=5000)
    await publisher.start()
    keys = [f"order-{i}".encode() for i in range(20)]
    for key in keys:
        await publisher.publish(topic, key, b'{"v":1}')
    assert await publisher.ready()
    await publisher.close()
    consumer = committed_reader(kafka_bootstrap, topic)
    seen: dict[bytes, int] = {}
    deadline = time.monotonic() + 30
    while len(seen) < len(keys) and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and not message.error():
            seen[message.key()] = message.partition()
    consumer.close()
    assert seen == {key: java_partition(key, 8) for key in keys}


async def test_kafka_publisher_unreachable_broker_raises_publish_error() -> None:
    publisher = KafkaPublisher(f"127.0.0.1:{free_port()}", delivery_timeout_ms=1000)
    await publisher.start()
    started = time.monotonic()
    with pytest.raises(PublishError):
        await publisher.publish("payment-notifications", b"k", b"v")
    assert time.monotonic() - started < 10
    assert not await publisher.ready()
    await publisher.close()


def test_consumer_read_committed_is_supported(kafka_bootstrap: str) -> None:
    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": fresh("g"),
            "isolation.level": "read_committed",
        }
    )
    try:
        consumer.list_topics(timeout=10)
    except KafkaException as exc:  # pragma: no cover - a broker that cannot serve metadata
        pytest.fail(str(exc))
    finally:
        consumer.close()


def test_a_transactions_flush_does_not_wait_for_the_producers_linger(kafka_bootstrap: str) -> None:
    # The Quix worker lingers under exactly-once (stream/engines/quix.py, LINGER_MS) because
    # its checkpoint flushes the producer before committing and librdkafka's flush sends at once:
    # were that to change, every commit would wait out the linger.
    name = fresh("linger")
    ensure_topics(kafka_bootstrap, [name], 8)
    linger_s = 30
    producer = Producer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "transactional.id": fresh("linger-tx"),
            "linger.ms": linger_s * 1000,
            "transaction.timeout.ms": 2 * linger_s * 1000,
        }
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    for number in range(100):
        producer.produce(name, b"paid", key=f"o-{number}".encode())
    started = time.monotonic()
    assert producer.flush(2 * linger_s) == 0
    flushed = time.monotonic() - started
    producer.commit_transaction(30)
    assert flushed < linger_s / 2, f"flush took {flushed:.1f} s: it waited for linger.ms"
    consumer = committed_reader(kafka_bootstrap, name)
    read: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(read) < 100 and time.monotonic() < deadline:
        read += [m.value() for m in consumer.consume(100, 1.0) if m.error() is None]
    consumer.close()
    assert read == [b"paid"] * 100
