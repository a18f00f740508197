"""What the gateway answers: each provider's success and failure forms, and the one place where
a ``GatewayError`` becomes an HTTP status (counted in the metrics and logged on the way)."""

from __future__ import annotations

import functools
import logging

from starlette.responses import JSONResponse, PlainTextResponse, Response

from gateway.errors import (
    AccountMismatchError,
    BodyTooLargeError,
    ContentTypeError,
    GatewayError,
    MalformedBodyError,
    NotFoundError,
    PublishError,
    RequestTimeoutError,
    SignatureError,
    SourceAddressError,
    UnhandledEventError,
    VerificationError,
)
from gateway.metrics import Metrics

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
    if isinstance(exc, SignatureError) and provider == "alipay":
        status = 400
    response = failure_response(provider, status, str(exc))
    if isinstance(exc, RequestTimeoutError):
        response.headers["connection"] = "close"  # the rest of the body is not worth waiting for
    return response


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
