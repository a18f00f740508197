"""The Quix Streams adapter's own parts, without a broker: the stateful step over a dict-backed
state, the serializer, the ready line, the transactional id and the clock's due times."""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from dataclasses import replace
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException
from hypothesis import given, settings

from gateway.records import NOTIFICATIONS_TOPIC
from stream.engines import quix
from stream.engines.clock import DueTimes
from stream.engines.quix import (
    POLL_TIMEOUT_S,
    READY_TEXT,
    OrderStep,
    ReadyLog,
    RecordSerializer,
    StopOnSignal,
    consumer_config,
    due_topic,
    producer_config,
    transactional_id,
)
from stream.engines.stored import STATE_KEY, StateMemo, stored_value
from stream.processing import OutputRecord
from stream.records import (
    ANOMALIES_TOPIC,
    DECISIONS_TOPIC,
    ORDER_PAID_TOPIC,
    ORDERS_TOPIC,
    TICKS_TOPIC,
    ExpectedOrder,
)
from stream.settings import StreamSettings
from stream.transitions import Input, Tick, state_from_dict
from tests.support.quix_state import BytesState
from tests.unit.stream.cases import ORDER, note
from tests.unit.stream.test_histories import SHUFFLED_HISTORIES

SETTINGS = StreamSettings(
    "127.0.0.1:1", 8, "t-", "t-paynotify-stream", Path("d"), "exactly_once", 0.1
)
DUE = due_topic(SETTINGS)


def feed(step: OrderStep, state: BytesState, kind: str, value: bytes) -> list[OutputRecord]:
    return step.step(SETTINGS.topic(kind), 3, 17, b"o-1", value, state)  # type: ignore[arg-type]


def test_quix_step_payment_then_order_emits_one_paid_and_due_times() -> None:
    step, state = OrderStep(SETTINGS), BytesState()
    first = feed(step, state, NOTIFICATIONS_TOPIC, note().to_bytes())
    assert [r.topic for r in first] == [DECISIONS_TOPIC, DUE]  # waits: due after the timeout
    second = feed(step, state, ORDERS_TOPIC, ORDER.to_bytes())
    assert [r.topic for r in second] == [ORDER_PAID_TOPIC, DECISIONS_TOPIC, DUE]  # never due
    assert second[2].value == b""
    assert [json.loads(r.value)["decision"] for r in (first[0], second[1])] == [
        "awaiting_order",
        "paid",
    ]
    assert state.get(STATE_KEY)[0]["status"] == "paid"
    assert all(r.key == b"o-1" for r in first + second)


def test_quix_step_order_then_payment_produce_no_due_times() -> None:
    step, state = OrderStep(SETTINGS), BytesState()
    assert feed(step, state, ORDERS_TOPIC, ORDER.to_bytes()) == []  # never due: no record
    paid = feed(step, state, NOTIFICATIONS_TOPIC, note().to_bytes())
    assert [r.topic for r in paid] == [ORDER_PAID_TOPIC, DECISIONS_TOPIC]


def test_quix_step_duplicate_emits_and_stores_nothing() -> None:
    step, state = OrderStep(SETTINGS), BytesState()
    feed(step, state, ORDERS_TOPIC, ORDER.to_bytes())
    feed(step, state, NOTIFICATIONS_TOPIC, note().to_bytes())
    stored = state.values[STATE_KEY]
    assert feed(step, state, NOTIFICATIONS_TOPIC, note().to_bytes()) == []
    assert state.values[STATE_KEY] is stored


def test_quix_step_undecodable_record_becomes_an_anomaly_with_its_place() -> None:
    step, state = OrderStep(SETTINGS), BytesState()
    [anomaly] = feed(step, state, NOTIFICATIONS_TOPIC, b"not json")
    detail = json.loads(anomaly.value)
    assert anomaly.topic == ANOMALIES_TOPIC and detail["reason"] == "undecodable_record"
    assert "t-payment-notifications/3/17" in detail["detail"] and state.values == {}


def test_quix_step_tick_reports_a_payment_whose_order_never_came() -> None:
    step, state = OrderStep(SETTINGS), BytesState()
    feed(step, state, NOTIFICATIONS_TOPIC, note().to_bytes())
    due_before = state.get(STATE_KEY)[1]
    tick = json.dumps({"now": "2026-11-27T00:00:00+00:00"}).encode()  # within retention
    outputs = feed(step, state, TICKS_TOPIC, tick)
    assert [r.topic for r in outputs] == [ANOMALIES_TOPIC, DECISIONS_TOPIC, DUE]
    assert json.loads(outputs[0].value)["reason"] == "order_missing"
    assert json.loads(outputs[1].value)["decision"] == "order_missing"
    assert state.get(STATE_KEY)[1] != due_before
    assert feed(step, state, TICKS_TOPIC, tick) == []  # reported once


def test_quix_step_tick_after_retention_forgets_the_order_with_a_tombstone() -> None:
    step, state = OrderStep(SETTINGS), BytesState()
    feed(step, state, NOTIFICATIONS_TOPIC, note().to_bytes())
    feed(step, state, TICKS_TOPIC, json.dumps({"now": "2026-11-27T00:00:00+00:00"}).encode())
    tick = json.dumps({"now": "2030-01-01T00:00:00+00:00"}).encode()
    assert feed(step, state, TICKS_TOPIC, tick) == [OutputRecord(DUE, b"o-1", b"")]
    assert state.values == {}


def test_quix_step_tick_without_state_does_nothing() -> None:
    step, state = OrderStep(SETTINGS), BytesState()
    tick = json.dumps({"now": "2030-01-01T00:00:00+00:00"}).encode()
    assert feed(step, state, TICKS_TOPIC, tick) == [] and state.values == {}


def test_quix_step_keyless_tick_of_the_faust_engine_is_ignored() -> None:
    step, state = OrderStep(SETTINGS), BytesState()
    tick = json.dumps({"now": "2030-01-01T00:00:00+00:00"}).encode()
    topic = SETTINGS.topic(TICKS_TOPIC)
    assert step.step(topic, 0, 1, None, tick, state) == [] and state.values == {}  # type: ignore[arg-type]


def test_quix_serializer_turns_an_empty_value_into_a_tombstone() -> None:
    serializer = RecordSerializer()
    assert serializer(OutputRecord(DUE, b"k", b"x"), None) == b"x"  # type: ignore[arg-type]
    assert serializer(OutputRecord(DUE, b"k", b""), None) is None  # type: ignore[arg-type]


def stats(join_state: str, assigned: int, rebalances: int) -> str:
    group = {"join_state": join_state, "assignment_size": assigned, "rebalance_cnt": rebalances}
    return json.dumps({"cgrp": group})


def test_quix_ready_log_says_ready_once_per_settled_assignment(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ready = ReadyLog()
    with caplog.at_level(logging.INFO, logger="paynotify.stream"):
        for document in (stats("wait-join", 0, 0), stats("steady", 24, 1), stats("steady", 24, 1)):
            ready(document)
        ready(stats("steady", 12, 2))
    lines = [r.getMessage() for r in caplog.records if READY_TEXT in r.getMessage()]
    assert lines == [
        f"{READY_TEXT}: 24 partitions assigned",
        f"{READY_TEXT}: 12 partitions assigned",
    ]


def test_quix_transactional_id_is_stable_per_data_folder() -> None:
    other = replace(SETTINGS, data_dir=Path("elsewhere"))
    assert transactional_id(SETTINGS) == transactional_id(replace(SETTINGS))
    assert transactional_id(SETTINGS) != transactional_id(other)
    assert transactional_id(SETTINGS).startswith("t-paynotify-stream-")


def test_quix_producer_lingers_under_exactly_once_but_within_the_transaction_timeout() -> None:
    # librdkafka refuses every produce whose linger is not below message.timeout.ms, which a
    # transactional producer keeps within transaction.timeout.ms.
    eos = producer_config(SETTINGS, exactly_once=True)
    assert eos["linger.ms"] == 100
    assert eos["linger.ms"] < eos["transaction.timeout.ms"]
    assert producer_config(SETTINGS, exactly_once=False)["linger.ms"] == 5


def test_quix_consumer_fetches_what_one_poll_timeout_brought() -> None:
    # The broker holds a fetch until a MiB or fetch.wait.max.ms: no longer than the poll that
    # asks for the records, so a record waits at most one more poll timeout.
    options = consumer_config(SETTINGS)
    assert options["fetch.min.bytes"] == 2**20
    assert options["fetch.wait.max.ms"] == POLL_TIMEOUT_S * 1000 == 20


def test_clock_due_times_pop_due_keys_once_then_retry_unless_moved() -> None:
    times = DueTimes()
    times.update("a", "2026-01-01T00:00:00.000000+00:00")
    times.update("b", "2026-01-03T00:00:00.000000+00:00")
    times.update("c", "2026-01-01T00:00:00.000000+00:00")
    times.update("c", None)  # forgotten
    now, retry = "2026-01-02T00:00:00.000000+00:00", "2026-01-02T00:01:00.000000+00:00"
    assert times.pop_due(now, retry) == ["a"]
    assert times.pop_due(now, retry) == []
    times.update("a", "2026-01-04T00:00:00.000000+00:00")  # the tick moved it
    assert times.pop_due("2026-01-02T00:05:00.000000+00:00", retry) == []
    assert times.pop_due("2026-01-05T00:00:00.000000+00:00", retry) == ["b", "a"]


class StoppableApp:
    """Stands in for the Application: counts ``stop()`` calls."""

    def __init__(self) -> None:
        self.stops = 0

    def stop(self) -> None:
        self.stops += 1


def test_quix_stop_on_signal_repeats_stop_until_run_returns() -> None:
    # Quix Streams' handler is set, but its stop is undone when run() enters its loop: only the
    # stopper's repeated app.stop() ends the worker.
    app = StoppableApp()
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        stopper = StopOnSignal(app)  # type: ignore[arg-type]
        stopper.start()
        time.sleep(0.2)
        assert app.stops == 0  # nothing before a signal
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 10
        while app.stops < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert app.stops >= 3
        stopper.finish()
        assert not stopper.is_alive()
        after = app.stops
        time.sleep(3 * StopOnSignal.REPEAT_S)
        assert app.stops == after
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert signal.set_wakeup_fd(-1) == -1  # the wakeup descriptor was given back


def test_quix_stop_on_signal_ignores_other_signals() -> None:
    app = StoppableApp()
    previous = signal.signal(signal.SIGUSR2, lambda *_: None)
    try:
        stopper = StopOnSignal(app)  # type: ignore[arg-type]
        stopper.start()
        os.kill(os.getpid(), signal.SIGUSR2)
        time.sleep(3 * StopOnSignal.REPEAT_S)
        assert app.stops == 0
        stopper.finish()
        assert not stopper.is_alive()
    finally:
        signal.signal(signal.SIGUSR2, previous)


def test_quix_run_without_a_broker_says_so_in_one_line_and_asks_for_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A broker killed while the worker starts once ended it with a traceback (fault suite).
    def broker_down(_settings: StreamSettings) -> None:
        raise KafkaException(KafkaError(KafkaError._TRANSPORT, "1/1 brokers are down"))

    monkeypatch.setattr(quix, "ensure_due_topic", broker_down)
    with caplog.at_level(logging.ERROR, logger="paynotify.stream"):
        code = quix.run(replace(SETTINGS, data_dir=tmp_path / "data"))
    assert code == quix.EXIT_RESTART
    assert [r.getMessage() for r in caplog.records] == [
        "stream worker cannot start: Kafka unavailable"
    ]
    assert "brokers are down" in caplog.records[0].error  # type: ignore[attr-defined]


def test_quix_step_stored_value_is_what_quix_state_set_stores() -> None:
    # A store written by state.set (before get_bytes/set_bytes) and one written now read alike.
    step, state = OrderStep(SETTINGS), BytesState()
    feed(step, state, ORDERS_TOPIC, ORDER.to_bytes())
    written = state.values[STATE_KEY]
    stored, due = state.get(STATE_KEY)
    state.set(STATE_KEY, [stored, due])  # Quix's own serializer, as before
    assert state.values[STATE_KEY] == written
    assert stored_value(state_from_dict(stored), due) == written


def encoded(item: Input) -> tuple[str, bytes]:
    """Return the topic and value that carry ``item`` to the step."""
    if isinstance(item, Tick):
        return TICKS_TOPIC, json.dumps({"now": item.now}).encode()
    return (
        ORDERS_TOPIC if isinstance(item, ExpectedOrder) else NOTIFICATIONS_TOPIC
    ), item.to_bytes()


@settings(max_examples=150, deadline=None)
@given(SHUFFLED_HISTORIES)
def test_quix_step_state_memo_answers_what_decoding_the_stored_bytes_gives(
    case: tuple[str, list[Input]],
) -> None:
    _name, inputs = case
    remembering, decoding = OrderStep(SETTINGS), OrderStep(SETTINGS)
    decoding.memo = StateMemo(budget=0)  # remembers nothing: decodes every read
    mine, theirs = BytesState(), BytesState()
    for item in inputs:
        topic, value = encoded(item)
        assert feed(remembering, mine, topic, value) == feed(decoding, theirs, topic, value)
        assert mine.values == theirs.values
        assert not decoding.memo.entries
        if STATE_KEY in mine.values:  # what the memo holds is what decoding the bytes gives
            raw, order, due = remembering.memo.entries[b"o-1"]
            assert raw == mine.values[STATE_KEY]
            assert [state_from_dict(mine.get(STATE_KEY)[0]), mine.get(STATE_KEY)[1]] == [order, due]


def test_quix_step_state_memo_decodes_bytes_it_did_not_store() -> None:
    step, state = OrderStep(SETTINGS), BytesState()
    feed(step, state, ORDERS_TOPIC, ORDER.to_bytes())
    other = OrderStep(SETTINGS)  # another worker, after a rebalance: same bytes, no memo
    paid = feed(other, state, NOTIFICATIONS_TOPIC, note().to_bytes())
    assert [r.topic for r in paid] == [ORDER_PAID_TOPIC, DECISIONS_TOPIC]
    # the first worker gets the order back: its memo holds older bytes, so it decodes
    assert feed(step, state, NOTIFICATIONS_TOPIC, note().to_bytes()) == []
    assert step.memo.entries[b"o-1"][0] != state.values[STATE_KEY]


def test_quix_state_memo_forgets_the_least_recently_stored_beyond_its_budget() -> None:
    memo = StateMemo(budget=10)
    state = state_from_dict({"status": "created"})
    memo.put(b"a", b"12345", state, None)
    memo.put(b"b", b"1234", state, None)
    memo.put(b"a", b"123", state, None)  # stored again: now the most recent
    memo.put(b"c", b"1234", state, None)
    assert list(memo.entries) == [b"a", b"c"] and memo.size == 7
    memo.forget(b"a")
    assert list(memo.entries) == [b"c"] and memo.size == 4
