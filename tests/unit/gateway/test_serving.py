"""The served protocol's read deadline and head limits, against a real uvicorn on 127.0.0.1."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
import uvicorn
from uvicorn.protocols.http import httptools_impl

from gateway.asgi import LeanGateway
from gateway.publisher import MemoryPublisher
from gateway.serving import DeadlineHttpToolsProtocol, JoinedWrites, protocol_for
from paynotify.broker import free_port
from tests.support import gateway_requests as reqs

TIMEOUT = 0.5


def test_serving_uvicorn_internals_relied_on_still_exist() -> None:
    protocol = httptools_impl.HttpToolsProtocol
    for name in (
        "connection_made",
        "connection_lost",
        "data_received",
        "on_message_begin",
        "on_headers_complete",
        "on_body",
        "on_message_complete",
        "on_response_complete",
    ):
        assert callable(getattr(protocol, name)), name
    source = inspect.getsource(protocol.__init__)
    for attribute in ("self.transport", "self.loop", "self.headers", "self.cycle"):
        assert attribute in source, attribute
    assert "self.url" in inspect.getsource(protocol.on_message_begin)
    assert "self.response_started" in inspect.getsource(httptools_impl.RequestResponseCycle)
    assert issubclass(DeadlineHttpToolsProtocol, protocol)


@pytest.fixture
async def port() -> AsyncIterator[int]:
    publisher = MemoryPublisher()
    settings = replace(reqs.settings(), read_timeout_seconds=TIMEOUT)
    app = LeanGateway(
        settings, publisher=publisher, clock=lambda: float(reqs.NOW), server_deadline=True
    )
    number = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=number, http=protocol_for(settings), log_config=None
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):  # uvicorn offers no event for "started"
        if server.started:
            break
        await asyncio.sleep(0.01)
    assert server.started
    yield number
    server.should_exit = True
    await task


async def _exchange(port: int, parts: list[bytes], pause: float) -> tuple[bytes, float]:
    """Send ``parts`` ``pause`` seconds apart; return what came back and when the server closed."""
    loop = asyncio.get_running_loop()
    # The clock starts before the connection: the server arms its deadline when it accepts,
    # which can come before open_connection returns here (both ends share this event loop).
    started, answer, closed = loop.time(), b"", False
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for part in [*parts, b""]:
        writer.write(part)
        try:
            while not closed:  # read what comes within the pause, until the server closes
                got = await asyncio.wait_for(reader.read(65536), pause if part else 5)
                answer, closed = answer + got, not got
        except TimeoutError:
            pass
        except ConnectionError:
            closed = True
        if closed:
            break
    writer.close()
    return answer, loop.time() - started


def _request(body: bytes, headers: dict[str, str]) -> bytes:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (
        f"POST /notify/alipay/shop HTTP/1.1\r\nhost: gw\r\ncontent-length: {len(body)}\r\n"
        f"{head}\r\n"
    ).encode() + body


async def test_serving_head_trickled_byte_by_byte_closed_with_408_at_the_deadline(
    port: int,
) -> None:
    request = _request(*reqs.genuine("alipay", "slow-1"))
    answer, took = await _exchange(port, [request[i : i + 1] for i in range(60)], 0.05)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert TIMEOUT <= took < TIMEOUT + 1.0


async def test_serving_silent_connection_closed_at_the_deadline(port: int) -> None:
    answer, took = await _exchange(port, [], 0)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert TIMEOUT <= took < TIMEOUT + 1.0


async def test_serving_body_trickled_closed_with_408_at_the_deadline(port: int) -> None:
    request = _request(*reqs.genuine("alipay", "slow-2"))
    head_end = request.index(b"\r\n\r\n") + 4
    parts = [request[:head_end]] + [request[i : i + 1] for i in range(head_end, head_end + 60)]
    answer, took = await _exchange(port, parts, 0.05)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert TIMEOUT <= took < TIMEOUT + 1.0


async def test_serving_too_many_or_too_large_headers_answer_431(port: int) -> None:
    body, headers = reqs.genuine("alipay", "big-1")
    many = {**headers, **{f"x-h{i}": "1" for i in range(120)}}
    answer, _ = await _exchange(port, [_request(body, many)], 0)
    assert answer.startswith(b"HTTP/1.1 431 ")
    large = {**headers, "x-large": "a" * 20_000}
    answer, _ = await _exchange(port, [_request(body, large)], 0)
    assert answer.startswith(b"HTTP/1.1 431 ")


async def test_serving_genuine_request_then_keep_alive_answered(port: int) -> None:
    first = _request(*reqs.genuine("alipay", "fast-1"))
    second = _request(*reqs.genuine("alipay", "fast-2")).replace(
        b"host: gw\r\n", b"host: gw\r\nconnection: close\r\n"
    )
    answer, took = await _exchange(port, [first, second], 0.2)
    assert answer.count(b"HTTP/1.1 200 OK") == 2
    assert took < TIMEOUT + 1.0


async def test_serving_head_request_answered_without_a_body(port: int) -> None:
    request = b"HEAD /healthz HTTP/1.1\r\nhost: gw\r\n\r\n"
    answer, _ = await _exchange(port, [request], 0.3)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"\r\n\r\n")


async def test_serving_expect_100_continue_sent_before_the_body(port: int) -> None:
    body, headers = reqs.genuine("alipay", "continue-1")
    request = _request(body, {**headers, "expect": "100-continue"})
    head_end = request.index(b"\r\n\r\n") + 4
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request[:head_end])
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)  # not held back
    writer.write(request[head_end:])
    final = await asyncio.wait_for(reader.readuntil(b"success"), 2)
    writer.close()
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert final.startswith(b"HTTP/1.1 200 OK\r\n")


class RecordingTransport:
    """What the socket would have been asked to send, one entry per write call."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def test_joined_writes_head_and_body_in_one_write() -> None:
    raw = RecordingTransport()
    joined = JoinedWrites(raw)  # type: ignore[arg-type]
    joined.write(b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\n")
    assert raw.writes == []
    joined.write(b"success")
    joined.write_held()
    assert raw.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\nsuccess"]
    assert not joined.is_closing()  # anything else is the real transport's


def test_joined_writes_interim_100_at_once_and_held_head_on_close() -> None:
    raw = RecordingTransport()
    joined = JoinedWrites(raw)  # type: ignore[arg-type]
    joined.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    joined.write(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
    assert raw.writes == [
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
    ]
    joined.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n\r\n")
    joined.close()
    assert raw.writes[2:] == [b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n\r\n"]
    assert raw.closed
