"""Shared fixtures. Integration fixtures start real services; when ``CI`` is set a service that
cannot be started fails the run instead of skipping it."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from paynotify.broker import LocalBroker
from tests.support import services
from tests.support.postgres import LocalPostgres


def _unavailable(what: str, exc: Exception) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required when CI is set, but could not be started: {exc}")
    pytest.skip(f"{what} not available here: {exc}")


@pytest.fixture(scope="session")
def kafka_service() -> Iterator[tuple[str, LocalBroker | None]]:
    try:
        context = services.kafka()
        value = context.__enter__()
    except Exception as exc:
        _unavailable("a Kafka broker", exc)
        raise
    try:
        yield value
    finally:
        context.__exit__(None, None, None)


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_service: tuple[str, LocalBroker | None]) -> str:
    return kafka_service[0]


@pytest.fixture(scope="session")
def postgres_service() -> Iterator[tuple[str, LocalPostgres | None]]:
    try:
        context = services.postgres()
        value = context.__enter__()
    except Exception as exc:
        _unavailable("PostgreSQL", exc)
        raise
    try:
        yield value
    finally:
        context.__exit__(None, None, None)


@pytest.fixture(scope="session")
def postgres_url(postgres_service: tuple[str, LocalPostgres | None]) -> str:
    return postgres_service[0]
