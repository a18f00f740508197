"""Shared fixtures. Integration fixtures start real services; when ``CI`` is set a service that
cannot be started fails the run instead of skipping it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import TypeVar

import pytest

from paynotify.broker import LocalBroker
from tests.support import services
from tests.support.postgres import LocalPostgres

T = TypeVar("T")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--faults",
        choices=("short", "long"),
        default=os.environ.get("PAYNOTIFY_FAULTS", "short"),
        help="size of the fault-injection suite (-m faults): short (CI) or long; "
        "default $PAYNOTIFY_FAULTS or short",
    )


def _unavailable(what: str, exc: Exception) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required when CI is set, but could not be started: {exc}")
    pytest.skip(f"{what} not available here: {exc}")


def _run_service(what: str, factory: Callable[[], AbstractContextManager[T]]) -> Iterator[T]:
    try:
        context = factory()
        value = context.__enter__()
    except Exception as exc:
        _unavailable(what, exc)
        raise
    try:
        yield value
    finally:
        context.__exit__(None, None, None)


@pytest.fixture(scope="session")
def kafka_service() -> Iterator[tuple[str, LocalBroker | None]]:
    yield from _run_service("a Kafka broker", services.kafka)


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_service: tuple[str, LocalBroker | None]) -> str:
    return kafka_service[0]


@pytest.fixture(scope="session")
def postgres_service() -> Iterator[tuple[str, LocalPostgres | None]]:
    yield from _run_service("PostgreSQL", services.postgres)


@pytest.fixture(scope="session")
def postgres_url(postgres_service: tuple[str, LocalPostgres | None]) -> str:
    return postgres_service[0]
