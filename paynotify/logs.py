"""One JSON object per log line, carrying the structured fields a payment engineer filters on.

The gateway writes one INFO line for every accepted notification, so a line must be cheap: the
formatter keeps the formatted second between records, and :class:`JsonLineHandler` keeps those
lines (INFO from the ``paynotify.gateway`` logger) in a buffer that goes to stderr within
``FLUSH_SECONDS``, or at once with the next line of any other kind (a warning, a start-up or
shutdown line), which keeps the order. A kill -9 can lose at most that much of the notification
lines; nothing of the data, which is durable in Kafka before its line is written.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import threading
import time
import weakref
from typing import IO, Any

import orjson

FIELDS = (
    "provider",
    "account",
    "notify_id",
    "out_trade_no",
    "kind",
    "status",
    "reason",
    "topic",
    "error",
    "backoff_s",
    "service",
)
FLUSH_SECONDS = 0.2
BUFFER_BYTES = 64 * 1024
# Loggers whose INFO lines may wait in the buffer: one line per notification.
BUFFERED_LOGGERS = frozenset({"paynotify.gateway"})


class JsonFormatter(logging.Formatter):
    """Format a record as JSON with only whitelisted extra fields (never bodies or secrets)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._second: tuple[int, str] = (-1, "")

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": self._timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update({k: getattr(record, k) for k in FIELDS if hasattr(record, k)})
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()

    def _timestamp(self, created: float) -> str:
        """ISO 8601 in UTC with milliseconds, e.g. ``2026-11-26T14:32:28.123+00:00``."""
        second = int(created)
        cached, prefix = self._second
        if cached != second:
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, prefix)
        return f"{prefix}.{int((created - second) * 1000):03d}+00:00"


class JsonLineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Write JSON lines to stderr through a buffer. INFO lines of ``BUFFERED_LOGGERS`` wait there
    (a background thread writes them within ``FLUSH_SECONDS``, so such a line costs no system
    call); any other line is written at once, with whatever waited before it."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        super().__init__(stream or _buffered_stderr())
        self.setFormatter(JsonFormatter())
        self.pending = False
        _flush_in_background(self)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + "\n")
            if record.levelno >= logging.WARNING or record.name not in BUFFERED_LOGGERS:
                self.flush()
            else:
                self.pending = True
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        self.pending = False
        # The stream may be gone (closed by a test runner) or full: a log line is not worth a crash.
        with contextlib.suppress(OSError, ValueError):
            super().flush()


_HANDLERS: weakref.WeakSet[JsonLineHandler] = weakref.WeakSet()
_FLUSHER: list[threading.Thread] = []
_FLUSHER_LOCK = threading.Lock()


def _flush_in_background(handler: JsonLineHandler) -> None:
    with _FLUSHER_LOCK:
        _HANDLERS.add(handler)
        if not _FLUSHER:
            _FLUSHER.append(threading.Thread(target=_flush_often, name="log-flush", daemon=True))
            _FLUSHER[0].start()


def _flush_often() -> None:
    while True:
        time.sleep(FLUSH_SECONDS)
        for handler in list(_HANDLERS):
            if handler.pending:
                handler.flush()


def _buffered_stderr() -> IO[str]:
    """Return a text stream on stderr's file descriptor with a large buffer (not closing it);
    stderr itself when it has no descriptor (captured by a test runner)."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return sys.stderr
    raw = io.FileIO(fd, "w", closefd=False)
    return io.TextIOWrapper(
        io.BufferedWriter(raw, BUFFER_BYTES), encoding="utf-8", errors="backslashreplace"
    )


def setup_logging(level: str = "INFO") -> None:
    """Send every log line to stderr as JSON."""
    # The JSON line carries none of the caller's frame, thread or process: skip collecting them
    # (the "Optimization" section of the logging HOWTO).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger()
    for previous in root.handlers:
        previous.flush()
    root.handlers[:] = [JsonLineHandler()]
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)
