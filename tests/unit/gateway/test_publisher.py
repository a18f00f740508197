"""KafkaPublisher without a broker: a stand-in for librdkafka's Producer that reports deliveries
when the test says so, only from ``poll`` (as librdkafka does). The real broker's side is in
tests/integration/test_kafka.py."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, ClassVar

import pytest
from confluent_kafka import KafkaError

from gateway import publisher as module
from gateway.errors import PublishError
from gateway.publisher import KafkaPublisher

Report = Callable[[KafkaError | None, Any], None]


class StandInProducer:
    """Queues every produced record; ``poll`` serves the reports ``settle`` released."""

    made: ClassVar[list[StandInProducer]] = []

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.in_flight: list[Report] = []
        self.released: list[tuple[Report, KafkaError | None]] = []
        self.polls = 0
        self.polled = asyncio.Event()
        self.poll_threads: set[int] = set()
        StandInProducer.made.append(self)

    def produce(self, topic: str, *, value: bytes, key: bytes, on_delivery: Report) -> None:
        self.in_flight.append(on_delivery)

    def poll(self, timeout: float) -> int:
        self.polls += 1
        self.polled.set()
        self.poll_threads.add(threading.get_ident())
        served, self.released = self.released, []
        for report, err in served:
            report(err, None)
        return len(served)

    def settle(self, err: KafkaError | None = None) -> None:
        self.released += [(report, err) for report in self.in_flight]
        self.in_flight = []

    def __len__(self) -> int:
        return len(self.in_flight) + len(self.released)


@pytest.fixture
def producer(monkeypatch: pytest.MonkeyPatch) -> type[StandInProducer]:
    StandInProducer.made = []
    monkeypatch.setattr(module, "Producer", StandInProducer)
    return StandInProducer


async def started(timeout_ms: int = 5000) -> tuple[KafkaPublisher, StandInProducer]:
    publisher = KafkaPublisher("127.0.0.1:9", delivery_timeout_ms=timeout_ms)
    await publisher.start()
    return publisher, StandInProducer.made[-1]


async def in_flight(publisher: KafkaPublisher) -> asyncio.Task[None]:
    """Publish one record in a task, and let the task hand it to the producer."""
    task = asyncio.create_task(publisher.publish("t", b"k", b"v"))
    await asyncio.sleep(0)
    return task


async def test_publisher_returns_only_after_the_delivery_report(
    producer: type[StandInProducer],
) -> None:
    publisher, fake = await started()
    sending = await in_flight(publisher)
    await asyncio.wait_for(fake.polled.wait(), 5)
    assert not sending.done()  # polled meanwhile, nothing reported yet
    fake.settle()
    await asyncio.wait_for(sending, 1)
    await publisher.close()


async def test_publisher_serves_reports_on_the_event_loop_thread_only(
    producer: type[StandInProducer],
) -> None:
    before = set(threading.enumerate())
    publisher, fake = await started()
    sending = [asyncio.create_task(publisher.publish("t", b"k%d" % i, b"v")) for i in range(5)]
    await asyncio.sleep(0)
    fake.settle()
    await asyncio.wait_for(asyncio.gather(*sending), 1)
    assert fake.poll_threads == {threading.get_ident()}
    assert set(threading.enumerate()) - before == set()  # no thread of the publisher's own
    await publisher.close()


async def test_publisher_polls_only_while_records_are_in_flight(
    producer: type[StandInProducer],
) -> None:
    publisher, fake = await started()
    await asyncio.sleep(0.02)
    assert fake.polls == 0
    sending = await in_flight(publisher)
    await asyncio.sleep(0.005)
    fake.settle()
    await asyncio.wait_for(sending, 1)
    await asyncio.sleep(0.005)
    polls = fake.polls
    await asyncio.sleep(0.02)
    assert fake.polls == polls
    await publisher.close()


async def test_publisher_broker_refusal_raises_publish_error(
    producer: type[StandInProducer],
) -> None:
    publisher, fake = await started()
    sending = await in_flight(publisher)
    fake.settle(KafkaError(KafkaError._MSG_TIMED_OUT))
    with pytest.raises(PublishError, match="broker refused"):
        await asyncio.wait_for(sending, 1)
    await publisher.close()


async def test_publisher_record_never_reported_fails_after_the_deadline(
    producer: type[StandInProducer],
) -> None:
    publisher, _fake = await started(timeout_ms=10)  # waits 10 ms + 1 s
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(PublishError, match="in time"):
        await asyncio.wait_for(publisher.publish("t", b"k", b"v"), 5)
    assert 1.0 <= loop.time() - began < 3
    await publisher.close()


async def test_publisher_close_waits_for_records_in_flight(
    producer: type[StandInProducer],
) -> None:
    publisher, fake = await started()
    sending = await in_flight(publisher)
    closing = asyncio.create_task(publisher.close())
    await asyncio.sleep(0.02)
    assert not closing.done()
    fake.settle()
    await asyncio.wait_for(closing, 1)
    await sending  # acknowledged, not failed


async def test_publisher_cancelled_publish_leaves_nothing_waiting(
    producer: type[StandInProducer],
) -> None:
    publisher, fake = await started()
    sending = await in_flight(publisher)
    sending.cancel()
    await asyncio.sleep(0.005)
    fake.settle()  # its report comes after the waiter left: ignored
    await asyncio.wait_for(publisher.close(), 1)
    assert len(fake) == 0


async def test_publisher_polls_less_often_while_the_broker_stalls(
    producer: type[StandInProducer],
) -> None:
    publisher, fake = await started()
    sending = await in_flight(publisher)
    await asyncio.sleep(0.2)
    assert 3 <= fake.polls <= 60  # every millisecond would be about 200
    fake.settle()
    await asyncio.wait_for(sending, 1)
    await publisher.close()
