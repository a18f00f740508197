"""The notification route's core, free of any web framework: read the body within its limits,
verify it, publish it, and answer as the provider expects (``gateway.asgi`` dispatches to it)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from starlette.responses import Response

from gateway.accounts import PROVIDERS, AccountConfig
from gateway.answers import success_response
from gateway.errors import (
    BodyTooLargeError,
    GatewayError,
    MalformedBodyError,
    NotFoundError,
    PublishError,
    RequestTimeoutError,
    SourceAddressError,
)
from gateway.records import Notification, RecordError

log = logging.getLogger("paynotify.gateway")


async def accept(
    state: Any,
    provider: str,
    account: str,
    headers: Mapping[str, str],
    client: str,
    chunks: AsyncIterator[bytes],
) -> Response:
    """Check, read, verify and publish one request; return the provider's success answer.

    Any exception on the way that is not a ``GatewayError`` is a defect: it is logged with its
    type and place (never its message, which may quote the body) and the request is refused as
    malformed, so that no input earns a 5xx (publishing failures are already ``PublishError``).

    Raises:
        GatewayError: any reason to refuse it (``answers.error_response`` turns it into the
        failure answer).
    """
    try:
        notes = await _accept(state, provider, account, headers, client, chunks)
    except GatewayError:
        raise
    except Exception as exc:
        log.error(
            "request raised an unexpected exception",
            extra={"provider": provider, "error": type(exc).__name__, "where": _where(exc)},
        )
        raise MalformedBodyError("request cannot be processed", reason="unexpected") from None
    state.metrics.count_accepted(provider, account)
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


async def _accept(
    state: Any,
    provider: str,
    account: str,
    headers: Mapping[str, str],
    client: str,
    chunks: AsyncIterator[bytes],
) -> Sequence[Notification]:
    config = _account(state.settings.accounts, provider, account)
    check_source(state.settings.source_networks.get((provider, account)), client)
    in_flight = state.metrics.in_flight
    in_flight.inc()
    try:
        settings = state.settings
        body = await read_body(chunks, headers, settings.max_body_bytes, state.body_deadline)
        notes = verified(provider, body, headers, config, now=state.clock())
        await publish(state, notes)
    finally:
        in_flight.dec()
    return notes


def verified(
    provider: str, body: bytes, headers: Mapping[str, str], config: Any, *, now: float
) -> Sequence[Notification]:
    """Verify a request and return its notifications, each checked as the stream will check it.

    Raises:
        GatewayError: the verifier's refusal; MalformedBodyError for a record the stream
        would refuse (``Notification.check``).
    """
    notes = PROVIDERS[provider].verify(body, headers, config, now=now)
    try:
        for note in notes:
            note.check()
    except RecordError as exc:
        raise MalformedBodyError(f"not publishable: {exc}", reason="unpublishable") from None
    return notes


def _where(exc: BaseException) -> str:
    """Return ``file:line`` of the innermost frame of an exception's traceback."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb is not None else ""


async def publish(state: Any, notes: Sequence[Notification]) -> None:
    """Publish every notification and return once the broker acknowledged all of them.

    Raises:
        PublishError: any record was not acknowledged.
    """
    topic = state.settings.notifications_topic
    started = time.perf_counter()
    try:
        if len(notes) == 1:
            await state.publisher.publish(topic, notes[0].key(), notes[0].to_bytes())
        elif notes:
            sends = (state.publisher.publish(topic, n.key(), n.to_bytes()) for n in notes)
            await asyncio.gather(*sends)
    except GatewayError:
        raise
    except Exception as exc:  # e.g. librdkafka's BufferError: the provider must retry
        log.error("publisher raised an unexpected exception", extra={"error": type(exc).__name__})
        raise PublishError("the record was not acknowledged") from None
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
    if provider not in PROVIDERS or (provider, name) not in accounts:
        raise NotFoundError("unknown provider or account")
    return accounts[(provider, name)]


async def read_body(
    chunks: AsyncIterator[bytes], headers: Mapping[str, str], limit: int, seconds: float | None
) -> bytes:
    """Read the request body, refusing it as soon as it grows past ``limit`` bytes or takes
    longer than ``seconds`` to arrive (None: the server enforces the deadline itself, as
    ``gateway.serving`` does for ``paynotify gateway``).

    Raises:
        BodyTooLargeError: the declared or actual length exceeds the limit.
        RequestTimeoutError: the body was not complete in time.
    """
    declared = headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise BodyTooLargeError("request body is too large")
    if seconds is None:
        return await _joined(chunks, limit)
    try:
        async with asyncio.timeout(seconds):
            return await _joined(chunks, limit)
    except TimeoutError:
        raise RequestTimeoutError("the body did not arrive within the read timeout") from None


async def _joined(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    received: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError("request body is too large")
        received.append(chunk)
    return received[0] if len(received) == 1 else b"".join(received)
