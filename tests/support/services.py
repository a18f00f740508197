"""Where the integration tests get their real Kafka broker and PostgreSQL server.

``PAYNOTIFY_TEST_SERVICES`` chooses: ``local`` (a broker from Maven Central jars and PostgreSQL
from Debian's packages, started here: the path CI runs), ``containers`` (the project's own Kafka
and PostgreSQL images, built by ``./dev images``, through testcontainers on host networking at
free ports), or ``auto`` (the default: containers when a Docker engine answers and has those
images, else local: an engine alone may have no way to pull any image).
``PAYNOTIFY_TEST_KAFKA`` / ``PAYNOTIFY_TEST_DATABASE_URL`` point at services already running.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from paynotify.broker import LocalBroker, free_port
from paynotify.containers import (
    KAFKA_IMAGE,
    POSTGRES_IMAGE,
    docker_answers,
    missing_images,
    start_kafka,
    start_postgres,
    stop,
)
from tests.support.postgres import LocalPostgres


def mode() -> str:
    """Return ``local`` or ``containers``."""
    chosen = os.environ.get("PAYNOTIFY_TEST_SERVICES", "auto")
    if chosen in ("local", "containers"):
        return chosen
    usable = docker_answers() and not missing_images(KAFKA_IMAGE, POSTGRES_IMAGE)
    return "containers" if usable else "local"


@contextmanager
def kafka() -> Iterator[tuple[str, LocalBroker | None]]:
    """Yield (bootstrap servers, the local broker when this process started one)."""
    given = os.environ.get("PAYNOTIFY_TEST_KAFKA")
    if given:
        yield given, None
        return
    if mode() == "containers":
        port = free_port()
        container = start_kafka(port, free_port())
        try:
            yield f"127.0.0.1:{port}", None
        finally:
            stop(container)
        return
    folder = Path(tempfile.mkdtemp(prefix="paynotify-kafka-"))
    broker = LocalBroker(folder, port=free_port())
    seconds = broker.start()
    print(
        f"\nlocal Kafka {broker.version} ready in {seconds:.1f}s, RSS "
        f"{(broker.rss_bytes() or 0) / 2**20:.0f} MiB"
    )
    try:
        yield broker.bootstrap_servers, broker
    finally:
        broker.stop()
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def postgres() -> Iterator[tuple[str, LocalPostgres | None]]:
    """Yield (SQLAlchemy URL, the local server when this process started one)."""
    given = os.environ.get("PAYNOTIFY_TEST_DATABASE_URL")
    if given:
        yield given, None
        return
    if mode() == "containers":
        container, url = start_postgres(free_port())
        try:
            yield url, None
        finally:
            stop(container)
        return
    server = LocalPostgres()
    server.init()
    try:
        yield server.url(), server
    finally:
        server.destroy()
