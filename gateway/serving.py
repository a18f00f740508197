"""How uvicorn serves the gateway: every request must be read within a deadline, and its head
(request line and headers) is bounded in count and size.

uvicorn (with httptools) bounds neither: a client that connects and sends nothing, or trickles
its head one byte a second, holds its connection forever, and ``limit_concurrency`` counts such
connections, so a few hundred of them lock every provider out. ``DeadlineHttpToolsProtocol``
closes a connection whose request is not fully received ``timeout_seconds`` after the
connection opened or the previous answer was sent (``408``), and refuses a head with more than
``max_headers`` headers or ``max_header_bytes`` bytes (``431``). The ASGI app keeps its own body
deadline too (``gateway.routes.read_body``), for servers other than this one.

uvicorn writes an answer's head (``http.response.start``) and its body in two ``write`` calls,
each a system call and, on a socket, a TCP segment of its own. ``JoinedWrites``, the transport
uvicorn is given here, holds the head back until the body (or the end of the response, or the
connection) comes, and writes both at once: one system call and one segment per answer.

This is the one module that touches uvicorn's internals. It relies on these names of
``uvicorn.protocols.http.httptools_impl``: ``HttpToolsProtocol`` and its methods
``connection_made``, ``connection_lost``, ``data_received``, ``on_message_begin``,
``on_headers_complete``, ``on_body``, ``on_message_complete``, ``on_response_complete`` and
attributes ``transport``, ``loop``, ``url``, ``headers``, ``cycle``; ``RequestResponseCycle``'s
``response_started``; and that the cycle writes through the protocol's ``transport``, the head
first (``HTTP/1.1 ...``), and calls ``on_response_complete`` once the answer is written.
``tests/unit/gateway/test_serving.py`` fails when any of them changes.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.settings import MAX_HEADER_BYTES, MAX_HEADERS, GatewaySettings

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


@dataclass(frozen=True)
class ReadLimits:
    """How long a request may take to arrive, and how large its head may be."""

    timeout_seconds: float = 15.0
    max_headers: int = MAX_HEADERS
    max_header_bytes: int = MAX_HEADER_BYTES


class DeadlineHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a read deadline per request and a bounded head."""

    def __init__(self, *args: Any, limits: ReadLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = limits
        self._deadline: asyncio.TimerHandle | None = None
        self._in_head = True
        self._head_bytes = 0
        self._refused = False
        self._joined: JoinedWrites | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._joined = JoinedWrites(transport)
        super().connection_made(self._joined)  # type: ignore[arg-type]
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        was_in_head = self._in_head
        super().data_received(data)
        if was_in_head and self._in_head and not self._refused:
            self._head_bytes += len(data)
            if self._head_bytes > self._limits.max_header_bytes:
                self._refuse(431)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
        if len(self.headers) > self._limits.max_headers or size > self._limits.max_header_bytes:
            self._refuse(431)
            return
        self._in_head = False
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        if self._joined is not None:
            self._joined.write_held()
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request on this connection has its own deadline

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self._limits.timeout_seconds, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        self._refuse(408)

    def _refuse(self, status: int) -> None:
        """Answer ``status`` unless an answer has started, and close the connection."""
        self._refused = True
        self._disarm()
        if self.transport.is_closing():
            return
        if self._in_head or (self.cycle is not None and not self.cycle.response_started):
            self.transport.write(
                b"HTTP/1.1 %d %s\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                % (status, _REASONS[status])
            )
        self.transport.close()


class JoinedWrites:
    """A transport that holds an answer's head until its body is written, then writes both in one
    call; everything else goes to the real transport."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held = b""

    def write(self, data: bytes) -> None:
        """Hold a final response head (not an interim ``1xx``: ``100 Continue``, ``101``);
        write anything else, after whatever is held. (A body chunk that looks like a head is
        held too, until the next write or the end of the response: later, never lost.)"""
        if not self._held and data.startswith(b"HTTP/1.1 ") and data[9:10] != b"1":
            self._held = bytes(data)
            return
        if self._held:
            data, self._held = self._held + data, b""
        self._transport.write(data)

    def write_held(self) -> None:
        """Write what is held (the response is complete, or the connection closes)."""
        if self._held:
            held, self._held = self._held, b""
            self._transport.write(held)

    def close(self) -> None:
        self.write_held()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def protocol_for(settings: GatewaySettings) -> Any:
    """Return the ``http`` protocol factory for ``uvicorn.run`` (picklable, for its workers)."""
    limits = ReadLimits(timeout_seconds=settings.read_timeout_seconds)
    return functools.partial(DeadlineHttpToolsProtocol, limits=limits)
