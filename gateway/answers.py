"""What the gateway answers: the one place where a ``GatewayError`` becomes an HTTP status (counted
in the metrics and logged on the way), sent in the provider's own success or failure form (its
``Provider.success`` and ``Provider.failure``)."""

from __future__ import annotations

import functools
import logging

from starlette.responses import Response

from gateway.accounts import PROVIDERS
from gateway.errors import (
    AccountMismatchError,
    BodyTooLargeError,
    ContentTypeError,
    GatewayError,
    MalformedBodyError,
    NotFoundError,
    PublishError,
    RequestTimeoutError,
    SourceAddressError,
    UnhandledEventError,
    VerificationError,
)
from gateway.metrics import Metrics
from gateway.providers.provider import RECEIVED, Answer, json_failure

log = logging.getLogger("paynotify.gateway")

# Most specific first: the first class an error is an instance of decides its status.
STATUS = (
    (NotFoundError, 404),
    (AccountMismatchError, 403),
    (SourceAddressError, 403),
    (VerificationError, 401),
    (BodyTooLargeError, 413),
    (ContentTypeError, 415),
    (RequestTimeoutError, 408),
    (MalformedBodyError, 400),
    (PublishError, 503),
)


def status_for(exc: GatewayError) -> int:
    """Return the HTTP status for a gateway error (400 for any other: a request never earns a
    5xx but the broker's 503)."""
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 400


def error_response(metrics: Metrics, provider: str, account: str, exc: GatewayError) -> Response:
    """Count and log a refused request; return its answer in the provider's own form."""
    if isinstance(exc, UnhandledEventError):
        metrics.requests.labels(provider, account, "ignored").inc()
        log.info("event acknowledged, not mapped", extra={"provider": provider, "account": account})
        return success_response(provider)
    status = status_for(exc)
    # Unknown path values never become labels: their number would be unbounded.
    labels = ("", "") if isinstance(exc, NotFoundError) else (provider, account)
    metrics.requests.labels(*labels, exc.reason).inc()
    if isinstance(exc, VerificationError):
        metrics.failures.labels(*labels, exc.reason).inc()
    log.warning(
        "notification rejected",
        extra={"provider": provider, "account": account, "status": status, "reason": exc.reason},
    )
    response = failure_response(provider, status, exc)
    if isinstance(exc, RequestTimeoutError):
        response.headers["connection"] = "close"  # the rest of the body is not worth waiting for
    return response


@functools.cache
def success_response(provider: str) -> Response:
    """Return the acknowledgement the provider's documentation requires (one shared instance per
    provider: a response is only read when it is sent)."""
    known = PROVIDERS.get(provider)
    return _response(known.success if known is not None else RECEIVED)


def failure_response(provider: str, status: int, exc: GatewayError) -> Response:
    """Return a failure in the provider's own form, so that it retries where it should (an
    unknown provider's in the plain JSON form)."""
    known = PROVIDERS.get(provider)
    failure = known.failure if known is not None else json_failure
    return _response(failure(status, exc))


def _response(answer: Answer) -> Response:
    return Response(answer.body, status_code=answer.status, media_type=answer.media_type)
