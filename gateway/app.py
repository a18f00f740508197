"""The gateway's ASGI application: ``create_app(settings)`` wires settings, publisher and routes,
and maps every ``GatewayError`` to its HTTP answer in one place."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

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
from gateway.publisher import KafkaPublisher, Publisher
from gateway.routes import failure_response, router, success_response
from gateway.settings import METRICS_DIR_ENV, GatewaySettings

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


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    requests: Counter
    failures: Counter
    publish_seconds: Histogram
    in_flight: Gauge
    multiprocess_dir: str | None = None


def build_metrics(multiprocess_dir: str | None = None) -> Metrics:
    """Create the gateway's Prometheus metrics in a registry of their own.

    With ``multiprocess_dir`` (prometheus_client's multiprocess mode, where every worker process
    writes its values to files in that folder) the metrics themselves are registered nowhere, and
    the registry is one that reads all the workers' files: a scrape of any worker sums them all.
    """
    registry = CollectorRegistry()
    own: CollectorRegistry | None = registry
    if multiprocess_dir:
        MultiProcessCollector(registry, path=multiprocess_dir)
        own = None
    return Metrics(
        registry=registry,
        requests=Counter(
            "paynotify_gateway_requests",
            "Notifications by outcome",
            ["provider", "account", "outcome"],
            registry=own,
        ),
        failures=Counter(
            "paynotify_gateway_verification_failures",
            "Requests not proven genuine, by reason",
            ["provider", "account", "reason"],
            registry=own,
        ),
        in_flight=Gauge(
            "paynotify_gateway_in_flight",
            "Notification requests being read, verified or published",
            registry=own,
            multiprocess_mode="livesum",  # the sum over the workers alive; ignored in one process
        ),
        publish_seconds=Histogram(
            "paynotify_gateway_publish_seconds",
            "Time until the broker acknowledged",
            registry=own,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
        ),
        multiprocess_dir=multiprocess_dir,
    )


def shared_metrics_dir(settings: GatewaySettings) -> str | None:
    """Return the folder of prometheus_client's multiprocess mode, if this gateway uses it.

    It does with ``[gateway] workers`` above 1 and the folder in ``PROMETHEUS_MULTIPROC_DIR``
    (``paynotify gateway`` sets it before it starts the workers, which is also when
    prometheus_client, imported afresh in each worker, chooses its file-backed values). With one
    worker the metrics stay in the process, whatever the environment says.
    """
    if settings.workers == 1:
        return None
    return os.environ.get(METRICS_DIR_ENV) or None


def release_metrics(metrics: Metrics) -> None:
    """Take this process's in-flight gauge out of the sum when it stops (multiprocess mode only).

    Its counters and histogram stay in the folder: totals must not go down when a worker exits.
    """
    if metrics.multiprocess_dir:
        mark_process_dead(os.getpid(), metrics.multiprocess_dir)


def status_for(exc: GatewayError) -> int:
    """Return the HTTP status for a gateway error (400 for any other: a request never earns a
    5xx but the broker's 503)."""
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 400


def create_app(
    settings: GatewaySettings,
    *,
    publisher: Publisher | None = None,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """Build the gateway application; the publisher is started and closed by its lifespan."""
    pub = publisher or KafkaPublisher(
        settings.bootstrap_servers, delivery_timeout_ms=settings.delivery_timeout_ms
    )

    metrics = build_metrics(shared_metrics_dir(settings))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await pub.start()
        try:
            yield
        finally:
            await pub.close()
            release_metrics(metrics)

    app = FastAPI(title="paynotify gateway", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.publisher = pub
    app.state.clock = clock
    app.state.metrics = metrics
    app.include_router(router)
    app.add_exception_handler(GatewayError, _on_gateway_error)  # type: ignore[arg-type]
    _add_probes(app)
    return app


async def _on_gateway_error(request: Request, exc: GatewayError) -> Response:
    provider = request.path_params.get("provider", "")
    account = request.path_params.get("account", "")
    return error_response(request.app.state.metrics, provider, account, exc)


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


def _add_probes(app: FastAPI) -> None:
    @app.get("/healthz")
    async def healthz() -> Response:
        return PlainTextResponse("ok")

    @app.get("/readyz")
    async def readyz(request: Request) -> Response:
        if await request.app.state.publisher.ready():
            return PlainTextResponse("ready")
        return JSONResponse({"error": "kafka unreachable"}, status_code=503)

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        body = generate_latest(request.app.state.metrics.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)


def app_from_config() -> FastAPI:
    """Build the gateway from ``PAYNOTIFY_CONFIG``: the factory ``uvicorn --workers N`` imports.

    Raises:
        ConfigError: no or an invalid configuration file.
    """
    from gateway.settings import config_path, load_settings

    return create_app(load_settings(config_path(None)))
