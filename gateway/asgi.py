"""The gateway: a plain ASGI application, the one ``paynotify gateway`` serves.

It dispatches ``POST /notify/{provider}/{account}`` to ``routes.accept`` (answered as
``answers.error_response`` says when refused) and the probes ``/healthz``, ``/readyz`` and
``/metrics``; anything else, a wrong method on a known path included, is ``404``. There is no web
framework's routing or middleware in between: the benchmark (docs/benchmarks.md, "Gateway")
showed FastAPI's to cost about half of a request's CPU time.
"""

from __future__ import annotations

import gc
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from types import SimpleNamespace
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.datastructures import Headers
from starlette.responses import JSONResponse, PlainTextResponse, Response

from gateway.answers import error_response
from gateway.config import config_path
from gateway.errors import ClientDisconnectedError, GatewayError, NotFoundError
from gateway.metrics import build_metrics, release_metrics, shared_metrics_dir
from gateway.publisher import KafkaPublisher, Publisher
from gateway.routes import accept
from gateway.settings import GatewaySettings, load_settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class LeanGateway:
    """An ASGI callable serving ``/notify/{provider}/{account}`` and the three probes."""

    def __init__(
        self,
        settings: GatewaySettings,
        *,
        publisher: Publisher | None = None,
        clock: Callable[[], float] = time.time,
        server_deadline: bool = False,
    ) -> None:
        pub = publisher or KafkaPublisher(
            settings.bootstrap_servers, delivery_timeout_ms=settings.delivery_timeout_ms
        )
        metrics = build_metrics(shared_metrics_dir(settings))
        # With ``server_deadline`` the server closes a connection whose request has not fully
        # arrived within the read timeout (``gateway.serving``, what ``paynotify gateway``
        # serves with), so the app does not keep a second timer per request.
        deadline = None if server_deadline else settings.read_timeout_seconds
        self.state = SimpleNamespace(
            settings=settings, publisher=pub, clock=clock, metrics=metrics, body_deadline=deadline
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            response = await self._answer(scope, receive)
            await response(scope, receive, send)

    async def _answer(self, scope: Scope, receive: Receive) -> Response:
        path, method = scope["path"], scope["method"]
        if path.startswith("/notify/") and method == "POST":
            return await self._notify(scope, receive, path.split("/"))
        if method in ("GET", "HEAD"):
            return await self._probe(path)
        return PlainTextResponse("not found", status_code=404)

    async def _notify(self, scope: Scope, receive: Receive, parts: list[str]) -> Response:
        provider, account = (parts[2], parts[3]) if len(parts) == 4 else ("", "")
        client = scope["client"][0] if scope.get("client") else ""
        try:
            if not account:
                raise NotFoundError("unknown provider or account")
            chunks = _body_chunks(receive)
            return await accept(self.state, provider, account, Headers(scope=scope), client, chunks)
        except GatewayError as exc:
            return error_response(self.state.metrics, provider, account, exc)

    async def _probe(self, path: str) -> Response:
        if path == "/healthz":
            return PlainTextResponse("ok")
        if path == "/readyz":
            if await self.state.publisher.ready():
                return PlainTextResponse("ready")
            return JSONResponse({"error": "kafka unreachable"}, status_code=503)
        if path == "/metrics":
            body = generate_latest(self.state.metrics.registry)
            return Response(body, media_type=CONTENT_TYPE_LATEST)
        return PlainTextResponse("not found", status_code=404)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.state.publisher.start()
                # What is loaded by now lives as long as the process: keep it out of the
                # collector's full passes, which otherwise stall every request for tens of ms.
                gc.collect()
                gc.freeze()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.state.publisher.close()
                release_metrics(self.state.metrics)
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _body_chunks(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnectedError("client left before the body was complete")
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


def lean_app_from_config() -> LeanGateway:
    """Build the gateway from ``PAYNOTIFY_CONFIG``: the factory uvicorn's worker processes import
    (served with ``gateway.serving``'s protocol, which enforces the read deadline).

    Raises:
        ConfigError: no or an invalid configuration file.
    """
    return LeanGateway(load_settings(config_path(None)), server_deadline=True)
