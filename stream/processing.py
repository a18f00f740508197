"""The engine boundary: what a stream engine does with one input record, without any engine.

An engine (``stream/engines/``) consumes ``orders``, ``payment-notifications`` and ``stream-ticks``
(co-partitioned by ``out_trade_no``), keeps one stored state per order key, and for each record:

1. :meth:`OrderProcessor.decode` turns the record into an input of the state machine, or into a
   :class:`~gateway.records.RecordError` which :meth:`OrderProcessor.undecodable` reports as an
   anomaly carrying topic, partition and offset (the record is then committed past, never retried);
2. :meth:`OrderProcessor.process` applies it to the order's stored state and returns
   :class:`Processed`: the records to produce, the new stored state and when the order is next due
   for a tick;
3. the engine produces the outputs and writes the state *atomically* with the input's offset (a
   Kafka transaction under exactly-once).

Pure: no Kafka client, no clock, no engine; stored states are plain JSON-able dicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.records import NOTIFICATIONS_TOPIC, Notification, RecordError, decode_json_object
from stream import facts
from stream.records import (
    ANOMALIES_TOPIC,
    DECISIONS_TOPIC,
    ID_CHARS,
    ORDER_CLOSED_TOPIC,
    ORDER_PAID_TOPIC,
    ORDER_REFUNDED_TOPIC,
    ORDERS_TOPIC,
    TICKS_TOPIC,
    UNDECODABLE,
    Anomaly,
    ExpectedOrder,
    NotificationDecision,
    OrderClosed,
    OrderPaid,
    OrderRefunded,
    check_notification,
    check_time,
    undecodable_id,
)
from stream.state import due_at
from stream.transitions import Input, OrderState, Output, Tick, apply, state_from_dict

INPUT_TOPICS = (ORDERS_TOPIC, NOTIFICATIONS_TOPIC, TICKS_TOPIC)
OUTPUT_TOPIC_OF: dict[type, str] = {
    OrderPaid: ORDER_PAID_TOPIC,
    OrderRefunded: ORDER_REFUNDED_TOPIC,
    OrderClosed: ORDER_CLOSED_TOPIC,
    Anomaly: ANOMALIES_TOPIC,
}


@dataclass(frozen=True, slots=True)
class OutputRecord:
    """One record to produce: the logical topic name (before any prefix), key and value."""

    topic: str
    key: bytes
    value: bytes

    @classmethod
    def of(cls, out: Output) -> OutputRecord:
        """Return the record that carries one emitted event or anomaly.

        The value is ``out.to_bytes()``, encoded by orjson straight from the dataclass (the same
        bytes without ``dataclasses.asdict``'s copy, a third of a record's time; unit-tested).
        """
        return cls(OUTPUT_TOPIC_OF[type(out)], out.out_trade_no.encode(), orjson.dumps(out))

    @classmethod
    def decision(cls, decided: NotificationDecision) -> OutputRecord:
        """Return the record that carries one notification's decision."""
        return cls(DECISIONS_TOPIC, decided.out_trade_no.encode(), orjson.dumps(decided))


def stored_form(state: OrderState) -> dict[str, Any]:
    """Return the JSON-able dict a state is stored as: ``state_to_dict``'s, lists for tuples.

    orjson walks the dataclasses in C; ``dataclasses.asdict`` (``state_to_dict``) deep-copies
    every field in Python and was the largest single cost of a record (py-spy, cProfile).
    """
    stored: dict[str, Any] = orjson.loads(orjson.dumps(state))
    return stored


@dataclass(frozen=True, slots=True)
class Processed:
    """The outcome of one input for one order.

    ``state`` is the order's new state (None: forget the order), which an engine stores as
    :meth:`stored` (a JSON-able dict) or as orjson's encoding of it (the same JSON); ``changed`` is
    False when the stored state stays as it was (an exact copy: nothing to write, no changelog
    record); ``due_at`` is when a tick could next change the order (None: only an input can).
    """

    state: OrderState | None
    changed: bool
    outputs: tuple[OutputRecord, ...]
    due_at: datetime | None
    reason: str

    def stored(self) -> dict[str, Any] | None:
        """Return the new state's stored form (None: forget the order)."""
        return None if self.state is None else stored_form(self.state)


@dataclass(frozen=True, slots=True)
class OrderProcessor:
    """Decode and apply inputs with the configured horizons (in seconds)."""

    pending_timeout_s: float
    retention_s: float

    def decode(self, topic: str, key: bytes | None, value: bytes | None) -> Input | RecordError:
        """Decode a record of the logical input ``topic``, or return why it cannot be decoded.

        Never raises: whatever the bytes, the answer is an input or a RecordError. Every field
        must have its type, amounts fit 0..2^63-1 and times be ISO-8601 strings
        (:mod:`stream.records`). An order or a notification must be keyed by its own
        ``out_trade_no``: any other key would put it on another order's partition and state.
        """
        try:
            return self._decode(topic, key, value)
        except RecordError as exc:
            return exc
        except Exception as exc:  # the boundary: no record ever stops the stream
            return RecordError(f"unreadable record: {type(exc).__name__}")

    def _decode(self, topic: str, key: bytes | None, value: bytes | None) -> Input:
        if value is None:
            raise RecordError("the record has no value")
        if topic == TICKS_TOPIC:
            now = decode_json_object(value).get("now")
            check_time("now", now, zoned=True)
            assert isinstance(now, str)
            at = datetime.fromisoformat(now.replace("Z", "+00:00")).astimezone(UTC)
            return self.tick(at.isoformat(timespec="microseconds"))
        item: Notification | ExpectedOrder
        if topic == NOTIFICATIONS_TOPIC:
            item = Notification.from_bytes(value)
            check_notification(item)
        else:
            item = ExpectedOrder.from_bytes(value)
        if key != item.out_trade_no.encode():
            raise RecordError("the record's key is not its out_trade_no")
        return item

    def tick(self, now: str) -> Tick:
        """Return the tick input for the time ``now`` (ISO-8601)."""
        return Tick(now, self.pending_timeout_s, self.retention_s)

    def process(self, stored: dict[str, Any] | None, item: Input) -> Processed:
        """Apply one input to an order's stored state; what it decided about notifications
        follows its events and anomalies (``notification-decisions``)."""
        return self.process_state(state_from_dict(stored) if stored else None, item)

    def process_state(self, before: OrderState | None, item: Input) -> Processed:
        """Apply one input to an order's state already rebuilt from its stored form (None: an
        order never seen); :meth:`process` otherwise."""
        result = apply(before, item)
        outputs = tuple(OutputRecord.of(out) for out in result.emit)
        if result.decided:
            after = result.state or before
            version = after.version if after is not None else 0
            outputs += tuple(
                OutputRecord.decision(facts.decision(note, reason, version))
                for note, reason in result.decided
            )
        if result.state is None:
            return Processed(None, before is not None, outputs, None, result.reason)
        due = due_at(result.state, self.pending_timeout_s, self.retention_s)
        changed = result.state != before
        return Processed(result.state, changed, outputs, due, result.reason)

    @staticmethod
    def undecodable(
        topic: str, partition: int, offset: int, key: bytes | None, error: RecordError
    ) -> OutputRecord:
        """Describe a record that cannot be decoded, so that it is reported, never dropped.

        ``topic`` is the topic's name as consumed (with any prefix); the anomaly carries it with
        the partition and offset, and its id is :func:`stream.records.undecodable_id`.
        """
        where = f"{topic}/{partition}/{offset}"
        number = key.decode("utf-8", "replace") if isinstance(key, bytes) else ""
        anomaly = Anomaly(
            anomaly_id=undecodable_id(where),
            out_trade_no=number.replace("\x00", "\ufffd")[:ID_CHARS],
            reason=UNDECODABLE,
            detail=f"{where}: {error}"[:500].replace("\x00", "\ufffd"),
            topic=topic,
            partition=partition,
            offset=offset,
        )
        return OutputRecord.of(anomaly)
