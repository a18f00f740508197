"""HTTP routes: read the body within its limit, verify, publish, answer as the provider expects."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from gateway.accounts import AccountConfig
from gateway.errors import BodyTooLargeError, NotFoundError, SourceAddressError
from gateway.providers import adyen, alipay, standardwebhooks, stripe, wechatpay
from gateway.records import Notification

Verifier = Callable[..., Sequence[Notification]]


def _one(verify: Callable[..., Notification]) -> Verifier:
    def verify_one(*args: Any, **kwargs: Any) -> Sequence[Notification]:
        return (verify(*args, **kwargs),)

    return verify_one


# Every verifier is pure: (body, headers, account, *, now) -> the notifications to publish.
VERIFIERS: Mapping[str, Verifier] = {
    "alipay": _one(alipay.verify),
    "wechatpay": _one(wechatpay.verify),
    "stripe": _one(stripe.verify),
    "standardwebhooks": _one(standardwebhooks.verify),
    "adyen": adyen.verify,
}

log = logging.getLogger("paynotify.gateway")
router = APIRouter()


@router.post("/notify/{provider}/{account}")
async def notify(provider: str, account: str, request: Request) -> Response:
    """Verify one provider notification, publish it, and acknowledge it once it is durable."""
    client = request.client.host if request.client else ""
    return await accept(
        request.app.state, provider, account, request.headers, client, request.stream()
    )


async def accept(
    state: Any,
    provider: str,
    account: str,
    headers: Mapping[str, str],
    client: str,
    chunks: AsyncIterator[bytes],
) -> Response:
    """Check, read, verify and publish one request; return the provider's success answer.

    Raises:
        GatewayError: any reason to refuse it (``app.py`` turns it into the failure answer).
    """
    config = _account(state.settings.accounts, provider, account)
    check_source(state.settings.source_networks.get((provider, account)), client)
    with state.metrics.in_flight.track_inprogress():
        body = await read_body(chunks, headers, state.settings.max_body_bytes)
        notes = VERIFIERS[provider](body, headers, config, now=state.clock())
        await publish(state, notes)
    state.metrics.requests.labels(provider, account, "accepted").inc()
    for note in notes:
        log.info(
            "notification accepted",
            extra={
                "provider": provider,
                "account": account,
                "notify_id": note.notify_id,
                "out_trade_no": note.out_trade_no,
                "kind": note.kind,
                "status": note.status,
            },
        )
    return success_response(provider)


async def publish(state: Any, notes: Sequence[Notification]) -> None:
    """Publish every notification and return once the broker acknowledged all of them.

    Raises:
        PublishError: any record was not acknowledged.
    """
    topic = state.settings.notifications_topic
    started = time.perf_counter()
    if len(notes) == 1:
        await state.publisher.publish(topic, notes[0].key(), notes[0].to_bytes())
    elif notes:
        sends = (state.publisher.publish(topic, n.key(), n.to_bytes()) for n in notes)
        await asyncio.gather(*sends)
    state.metrics.publish_seconds.observe(time.perf_counter() - started)


def check_source(networks: Sequence[Any] | None, client: str) -> None:
    """Refuse a client whose address is outside the account's allowlist, when it has one.

    Raises:
        SourceAddressError: the address is not in any allowed network, or unknown.
    """
    if networks is None:
        return
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        raise SourceAddressError("client address unknown") from None
    if not any(address in net for net in networks):
        raise SourceAddressError("client address is not allowed for this account")


def _account(accounts: Mapping[tuple[str, str], AccountConfig], provider: str, name: str) -> Any:
    if provider not in VERIFIERS or (provider, name) not in accounts:
        raise NotFoundError("unknown provider or account")
    return accounts[(provider, name)]


async def read_body(chunks: AsyncIterator[bytes], headers: Mapping[str, str], limit: int) -> bytes:
    """Read the request body, refusing it as soon as it grows past ``limit`` bytes.

    Raises:
        BodyTooLargeError: the declared or actual length exceeds the limit.
    """
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLargeError("request body is too large")
    received: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError("request body is too large")
        received.append(chunk)
    return b"".join(received)


@functools.cache
def success_response(provider: str) -> Response:
    """Return the acknowledgement the provider's documentation requires (one shared instance per
    provider: a response is only read when it is sent)."""
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
