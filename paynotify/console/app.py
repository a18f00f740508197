"""The operators' console: a FastAPI application over the sink's tables.

``GET /`` is the page for people (``static/``: plain HTML, CSS and JavaScript, nothing
external); ``/api/*`` is the JSON API the page uses, each route behind the bearer token of
``[console] token``; ``/docs`` and ``/openapi.json`` describe the API and hold no data;
``/healthz`` says the process is up. The token is compared in constant time, and a request
without the right one gets 401 and nothing else.
"""

from __future__ import annotations

import argparse
import hmac
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.resources import files
from typing import Annotated, Any

from fastapi import (
    APIRouter,
    Depends,
    FastAPI,
    HTTPException,
    Path,
    Query,
    Request,
    Response,
    Security,
)
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi_offline import FastAPIOffline
from pydantic import BeforeValidator

from paynotify.console.models import (
    AnomalyRow,
    LastHour,
    OrderStory,
    Problem,
    StatsAnswer,
    story_answer,
)
from paynotify.console.settings import ConsoleSettings
from paynotify.story import since as parse_since
from sinks.errors import DatabaseUnavailableError
from sinks.reader import DatabaseReader

MAX_LIMIT = 500
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/console.js": ("console.js", "text/javascript; charset=utf-8"),
    "/console.css": ("console.css", "text/css; charset=utf-8"),
}
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem, "description": "no record"}}
SINCE = "an ISO-8601 time (UTC when it has no offset), or an age: 30m, 2h, 7d"
UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "no bearer token, or not the console's"},
    503: {"model": Problem, "description": "the database does not answer"},
}
log = logging.getLogger("paynotify.console")


def create_app(
    settings: ConsoleSettings,
    reader: DatabaseReader,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> FastAPI:
    """Return the console's application, reading through ``reader``."""
    # /docs and /redoc with Swagger UI's and ReDoc's files from the package, not from a CDN.
    app = FastAPIOffline(
        title="paynotify console",
        summary="An order's story, recent anomalies and the last hour's counts.",
        version="1",
        static_url="/docs-static",
    )
    app.include_router(_api(settings, reader, now))
    for path, (name, media_type) in STATIC.items():
        app.add_api_route(path, _static(name, media_type), include_in_schema=False)

    @app.exception_handler(DatabaseUnavailableError)
    def unavailable(_request: Request, exc: DatabaseUnavailableError) -> JSONResponse:
        log.warning("database unavailable", extra={"error": exc.error})
        return JSONResponse({"detail": "the database does not answer; try again"}, 503)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def _api(
    settings: ConsoleSettings, reader: DatabaseReader, now: Callable[[], datetime]
) -> APIRouter:
    expected = settings.token.get_secret_value().encode()
    bearer = HTTPBearer(auto_error=False, description="the `[console] token`")

    def authorized(
        response: Response,
        # A default, not Annotated: the annotations are strings (see the __future__ import),
        # and FastAPI resolves them in the module, where ``bearer`` does not exist.
        credentials: HTTPAuthorizationCredentials | None = Security(bearer),  # noqa: B008
    ) -> None:
        given = credentials.credentials.encode() if credentials is not None else b""
        if not hmac.compare_digest(given, expected):
            raise HTTPException(
                401, "a valid bearer token is required", {"WWW-Authenticate": "Bearer"}
            )
        response.headers["Cache-Control"] = "no-store"

    router = APIRouter(
        prefix="/api", tags=["console"], dependencies=[Depends(authorized)], responses=UNAUTHORIZED
    )

    @router.get("/orders/{out_trade_no}", summary="An order's story", responses=NOT_FOUND)
    def order(out_trade_no: Annotated[str, Path(max_length=128)]) -> OrderStory:
        """An order's row and its notifications, events and anomalies in time order."""
        story = reader.story(out_trade_no)
        if not story.known:
            raise HTTPException(404, "nothing on record for this order number")
        return story_answer(story.as_json())

    @router.get("/anomalies", summary="Recent anomalies")
    def anomalies(
        since: Annotated[datetime | None, BeforeValidator(_since), Query(description=SINCE)] = None,
        reason: Annotated[str | None, Query(max_length=64)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    ) -> list[AnomalyRow]:
        """The latest anomalies first, optionally since a time and of one reason."""
        rows = reader.anomalies(since, reason, limit)
        return [AnomalyRow.model_validate(row) for row in rows]

    @router.get("/stats", summary="Counts by status and the last hour")
    def stats() -> StatsAnswer:
        """Orders by status, and what the sink recorded in the last hour."""
        at = now()
        counts = reader.stats(at)
        return StatsAnswer(
            at=at,
            orders_by_status=counts.by_status,
            orders_total=sum(counts.by_status.values()),
            last_hour=LastHour(
                since=counts.since,
                window_seconds=counts.window_seconds,
                notifications_received=counts.notifications_received,
                orders_paid=counts.orders_paid,
                anomalies=counts.anomalies,
            ),
        )

    return router


def _since(value: object) -> object:
    """Turn an age (``2h``) or an ISO-8601 time without offset into an aware time."""
    if not isinstance(value, str) or not value:
        return None if value == "" else value
    try:
        return parse_since(value)
    except argparse.ArgumentTypeError as exc:
        raise ValueError(str(exc)) from None


def _static(name: str, media_type: str) -> Callable[[], Response]:
    content = (files("paynotify.console") / "static" / name).read_bytes()

    def serve() -> Response:
        return Response(content, media_type=media_type, headers=PAGE_HEADERS)

    return serve
