"""The faust agent in ``agent.test_context()`` (memory store, no broker): it decodes, applies,
stores and sends. ``put(..., wait=False)`` for inputs that emit nothing (faust's put waits for a
yield that never comes otherwise)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gateway.records import NOTIFICATIONS_TOPIC
from stream.engines.faust import create_app
from stream.processing import OUTPUT_TOPIC_OF, OutputRecord
from stream.records import (
    DECISIONS_TOPIC,
    ORDERS_TOPIC,
    TICKS_TOPIC,
    Anomaly,
    NotificationDecision,
    OrderPaid,
)
from stream.settings import StreamSettings
from stream.transitions import Output
from tests.unit.stream.cases import ORDER, note


@dataclass
class RecordingSender:
    """Stands in for the Kafka sender: keeps what the agent sends."""

    sent: list[Output] = field(default_factory=list)
    decisions: list[NotificationDecision] = field(default_factory=list)
    exactly_once: bool = False

    async def send(self, message: Any, out: OutputRecord) -> None:
        if out.topic == DECISIONS_TOPIC:
            self.decisions.append(NotificationDecision.from_bytes(out.value))
            return
        record = {v: k for k, v in OUTPUT_TOPIC_OF.items()}[out.topic]
        self.sent.append(record.from_bytes(out.value))


@dataclass
class Harness:
    agent: Any
    worker: Any
    sender: RecordingSender
    topic: str

    async def put(self, kind: str, value: bytes) -> None:
        """Put one record and wait until the agent has handled it (emitting or not)."""
        self.worker.routes[self.topic] = kind
        handled = self.worker.handle
        done = asyncio.Event()

        async def handle_once(message: Any, value: bytes) -> None:
            await handled(message, value)
            done.set()

        self.worker.handle = handle_once
        await self.agent.put(value, key=b"o-1", wait=False)
        await asyncio.wait_for(done.wait(), timeout=5)
        self.worker.handle = handled

    def state(self) -> dict[str, Any]:
        return dict(self.worker.table["o-1"])


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    settings = StreamSettings("127.0.0.1:1", 8, "t-", "agent-test", tmp_path, "at_least_once", 1.0)
    app = create_app(settings, store="memory://", loop=asyncio.get_running_loop())
    worker = app.paynotify_worker  # type: ignore[attr-defined]
    sender = RecordingSender()
    worker.sender = sender
    async with app.paynotify_agent.test_context() as agent:  # type: ignore[attr-defined]
        topic = agent.to_message(b"", b"").topic
        yield Harness(agent, worker, sender, topic)
    # test_context never starts the consumer thread, whose own event loop would leak.
    app.consumer._thread.thread_loop.close()


async def test_agent_payment_then_order_emits_one_paid(harness: Harness) -> None:
    await harness.put(NOTIFICATIONS_TOPIC, note().to_bytes())
    assert harness.sender.sent == [] and harness.state()["status"] == "awaiting_order"
    await harness.put(ORDERS_TOPIC, ORDER.to_bytes())
    [paid] = harness.sender.sent
    assert isinstance(paid, OrderPaid) and harness.state()["status"] == "paid"
    decisions = [(d.notify_id, d.decision, d.version) for d in harness.sender.decisions]
    assert decisions == [(paid.notify_id, "awaiting_order", 0), (paid.notify_id, "paid", 1)]


async def test_agent_duplicates_emit_nothing(harness: Harness) -> None:
    await harness.put(ORDERS_TOPIC, ORDER.to_bytes())
    for _ in range(3):
        await harness.put(NOTIFICATIONS_TOPIC, note().to_bytes())
    assert [type(o) for o in harness.sender.sent] == [OrderPaid]
    assert [d.decision for d in harness.sender.decisions] == ["paid"]  # copies: nothing new


async def test_agent_undecodable_record_becomes_an_anomaly(harness: Harness) -> None:
    await harness.put(NOTIFICATIONS_TOPIC, b"not json")
    [anomaly] = harness.sender.sent
    assert isinstance(anomaly, Anomaly) and anomaly.reason == "undecodable_record"


async def test_agent_tick_reports_a_payment_whose_order_never_came(harness: Harness) -> None:
    await harness.put(NOTIFICATIONS_TOPIC, note().to_bytes())
    assert harness.worker.due["o-1"]["p"] == 0
    later = json.dumps({"now": "2030-01-01T00:00:00+00:00"}).encode()
    await harness.put(TICKS_TOPIC, later)
    assert [getattr(o, "reason", "") for o in harness.sender.sent] == ["order_missing"]


async def test_agent_tick_finds_orders_that_became_due_after_its_first_tick(
    harness: Harness,
) -> None:
    early = json.dumps({"now": "2000-01-01T00:00:00+00:00"}).encode()
    await harness.put(TICKS_TOPIC, early)  # builds partition 0's schedule: nothing due yet
    assert harness.worker.schedule.loaded(0)
    await harness.put(NOTIFICATIONS_TOPIC, note().to_bytes())
    later = json.dumps({"now": "2030-01-01T00:00:00+00:00"}).encode()
    await harness.put(TICKS_TOPIC, later)
    await harness.put(TICKS_TOPIC, later)  # reported once, not at every tick
    assert [getattr(o, "reason", "") for o in harness.sender.sent] == ["order_missing"]
