"""A Quix worker that fails exits within the grace time even when closing hangs (FailFast)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from stream.engines.failfast import FailFast

HANGING_WORKER = """
import time
from stream.engines.failfast import FailFast
failures = FailFast(75, grace_s=0.3)
assert failures.on_consumer_error(SystemError("consume returned NULL"), None, None) is False
time.sleep(30)  # app.run() stuck in Consumer.close()
"""

STOPPING_WORKER = """
import time
from stream.engines.failfast import FailFast
failures = FailFast(75, grace_s=0.3)
failures.on_producer_error(RuntimeError("fenced"), None, None)
failures.disarm()  # app.run() returned in time
time.sleep(1)
"""


def _run(code: str) -> tuple[int, str, float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=20, check=False
    )
    return done.returncode, done.stderr, time.monotonic() - started


def test_a_worker_stuck_after_an_error_exits_with_the_restart_code() -> None:
    code, _stderr, seconds = _run(HANGING_WORKER)
    assert code == 75 and seconds < 10


def test_a_worker_that_stops_in_time_is_not_killed() -> None:
    code, _stderr, _seconds = _run(STOPPING_WORKER)
    assert code == 0


def test_every_callback_asks_quix_to_stop() -> None:
    failures = FailFast(75, grace_s=60)
    try:
        assert failures.on_consumer_error(ValueError("x"), None, None) is False
        assert failures.on_producer_error(ValueError("x"), None, None) is False
        assert failures.on_processing_error(ValueError("x"), None, None) is False
    finally:
        failures.disarm()


def test_a_lost_assignment_error_is_logged_with_where_to_look(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """confluent-kafka turns an exception raised in a rebalance callback into this SystemError
    when another callback of the same poll runs Python code first; the log says so."""
    failures = FailFast(75, grace_s=60)
    lost = SystemError(
        "<method 'consume' of 'cimpl.Consumer' objects> returned NULL without setting an exception"
    )
    try:
        with caplog.at_level("ERROR", logger="paynotify.stream"):
            failures.on_consumer_error(lost, None, None)
            failures.on_consumer_error(SystemError("other"), None, None)
    finally:
        failures.disarm()
    errors = [record.error for record in caplog.records]
    assert "partition assignment" in errors[0] and "reliability.md" in errors[0]
    assert errors[1] == "SystemError: other"
