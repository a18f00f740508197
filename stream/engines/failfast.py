"""A Quix Streams worker that fails stops within a bounded time, even if closing does not.

Quix Streams stops its application when the consumer, the producer or a step raises (its error
callbacks, public options of ``Application``, say whether to go on). Stopping then closes the
Kafka consumer, and that can block for good: on 2026-11-30 the broker was killed with ``kill -9``
just as a worker's first assignment completed, ``consume`` raised a ``SystemError`` ("returned
NULL without setting an exception"), and ``Consumer.close()`` never returned, not even once the
broker was back: the worker hung, its supervisor saw a live child, and no order was paid again.

:class:`FailFast` provides the three callbacks. Each logs the error in one line, lets the
application stop (going on after an error in the middle of an assignment could process records
without their state), and arms a timer: if the worker has not left ``app.run()`` within
:attr:`FailFast.grace_s`, the process exits at once with the restart code. A hard exit is what
``kill -9`` of a worker is, which the stream survives: the open transaction is fenced by the
next worker with the same transactional id, and nothing of it was visible.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("paynotify.stream")

GRACE_S = 10.0  # a stop after an error skips the checkpoint: it only closes the clients


class FailFast:
    """Quix Streams' ``on_consumer_error``, ``on_producer_error`` and ``on_processing_error``."""

    def __init__(
        self,
        exit_code: int,
        grace_s: float = GRACE_S,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.exit_code = exit_code
        self.grace_s = grace_s
        self.on_error = on_error  # told where each error came from (the worker's metrics)
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def on_consumer_error(self, exc: Exception, _message: Any, _logger: Any) -> bool:
        """The consumer failed: stop (return False) within the grace time."""
        return self._stop("consumer", exc)

    def on_producer_error(self, exc: Exception, _row: Any, _logger: Any) -> bool:
        """The producer failed: stop within the grace time."""
        return self._stop("producer", exc)

    def on_processing_error(self, exc: Exception, _row: Any, _logger: Any) -> bool:
        """The step raised (a defect: poison never does): stop within the grace time."""
        return self._stop("step", exc)

    def disarm(self) -> None:
        """The worker left ``app.run()``: no hard exit any more."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()

    def _stop(self, where: str, exc: Exception) -> bool:
        log.error("stream worker %s error: stopping", where, extra={"error": _describe(exc)})
        if self.on_error is not None:
            self.on_error(where)
        with self._lock:
            if self._timer is None:
                self._timer = threading.Timer(self.grace_s, self._exit)
                self._timer.daemon = True
                self._timer.start()
        return False

    def _exit(self) -> None:
        log.error(
            "stream worker did not stop within %.0f s after an error: exiting for a restart",
            self.grace_s,
        )
        for handler in logging.getLogger().handlers:
            handler.flush()
        sys.stderr.flush()
        os._exit(self.exit_code)


LOST_EXCEPTION = "returned NULL without setting an exception"
LOST_HINT = (
    " (an exception raised in Quix's partition assignment, lost by confluent-kafka; after a "
    "broker restart, often a transaction the broker never completed: docs/reliability.md)"
)


def _describe(exc: Exception) -> str:
    """Return the error's one-line description, with a hint when confluent-kafka hid the cause."""
    text = f"{type(exc).__name__}: {exc}"[:300]
    if isinstance(exc, SystemError) and LOST_EXCEPTION in str(exc):
        text += LOST_HINT
    return text
