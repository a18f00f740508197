import io
import json
import logging

from paynotify.logs import JsonFormatter, JsonLineHandler


def _record(level: int, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord(
        "paynotify.gateway", level, "x", 1, "notification accepted", None, None
    )
    record.created = 1795687200.0425
    record.__dict__.update(extra)
    return record


def test_formatter_writes_whitelisted_fields_and_a_utc_millisecond_timestamp() -> None:
    line = json.loads(JsonFormatter().format(_record(logging.INFO, notify_id="n-1", body="x")))
    assert line == {
        "ts": "2026-11-26T10:00:00.042+00:00",
        "level": "info",
        "logger": "paynotify.gateway",
        "msg": "notification accepted",
        "notify_id": "n-1",
    }


def _buffered() -> tuple[io.BytesIO, JsonLineHandler]:
    raw = io.BytesIO()
    return raw, JsonLineHandler(io.TextIOWrapper(io.BufferedWriter(raw, 1 << 16), encoding="utf-8"))


def test_notification_lines_wait_in_the_buffer_and_warnings_go_out_at_once_after_them() -> None:
    raw, handler = _buffered()
    handler.handle(_record(logging.INFO))
    assert raw.getvalue() == b"" and handler.pending
    handler.handle(_record(logging.WARNING))
    lines = raw.getvalue().decode().splitlines()
    assert [json.loads(x)["level"] for x in lines] == ["info", "warning"]
    assert not handler.pending


def test_other_loggers_lines_go_out_at_once_so_that_shutdown_lines_are_never_held() -> None:
    # uvicorn ends the process by re-raising SIGTERM after its last line: no atexit flush then.
    raw, handler = _buffered()
    handler.handle(_record(logging.INFO))
    handler.handle(_record(logging.INFO, name="uvicorn.error"))
    lines = raw.getvalue().decode().splitlines()
    assert [json.loads(x)["logger"] for x in lines] == ["paynotify.gateway", "uvicorn.error"]
