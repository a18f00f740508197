"""HTTP routes: read the body within its limit, verify, publish, answer as the provider expects."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from gateway.accounts import AccountConfig
from gateway.errors import BodyTooLargeError, NotFoundError
from gateway.providers import alipay
from gateway.records import Notification

Verifier = Callable[..., Notification]
VERIFIERS: Mapping[str, Verifier] = {"alipay": alipay.verify}

log = logging.getLogger("paynotify.gateway")
router = APIRouter()


@router.post("/notify/{provider}/{account}")
async def notify(provider: str, account: str, request: Request) -> Response:
    """Verify one provider notification, publish it, and acknowledge it once it is durable."""
    state = request.app.state
    config = _account(state.settings.accounts, provider, account)
    body = await read_body(request, state.settings.max_body_bytes)
    note = VERIFIERS[provider](body, request.headers, config, now=state.clock())
    started = time.perf_counter()
    await state.publisher.publish(state.settings.notifications_topic, note.key(), note.to_bytes())
    state.metrics.publish_seconds.observe(time.perf_counter() - started)
    state.metrics.requests.labels(provider, account, "accepted").inc()
    log.info(
        "notification accepted",
        extra={
            "provider": provider,
            "account": account,
            "notify_id": note.notify_id,
            "out_trade_no": note.out_trade_no,
            "kind": note.kind,
        },
    )
    return success_response(provider)


def _account(accounts: Mapping[tuple[str, str], AccountConfig], provider: str, name: str) -> Any:
    if provider not in VERIFIERS or (provider, name) not in accounts:
        raise NotFoundError("unknown provider or account")
    return accounts[(provider, name)]


async def read_body(request: Request, limit: int) -> bytes:
    """Read the request body, refusing it as soon as it grows past ``limit`` bytes.

    Raises:
        BodyTooLargeError: the declared or actual length exceeds the limit.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLargeError("request body is too large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError("request body is too large")
        chunks.append(chunk)
    return b"".join(chunks)


def success_response(provider: str) -> Response:
    """Return the acknowledgement the provider's documentation requires."""
    if provider == "alipay":
        return PlainTextResponse("success")
    if provider == "wechatpay":
        return Response(status_code=204)
    if provider == "adyen":
        return PlainTextResponse("[accepted]")
    return JSONResponse({"received": True})


def failure_response(provider: str, status: int, message: str) -> Response:
    """Return a failure in the provider's own form, so that it retries where it should."""
    if provider == "alipay":
        return PlainTextResponse("fail", status_code=status)
    if provider == "wechatpay":
        return JSONResponse({"code": "FAIL", "message": message}, status_code=status)
    return JSONResponse({"error": message}, status_code=status)
