"""Where the integration tests get their real Kafka broker and PostgreSQL server.

``PAYNOTIFY_TEST_SERVICES`` chooses: ``local`` (a broker from Maven Central jars and PostgreSQL
from Debian's packages, started here: the path CI runs), ``containers`` (testcontainers, needs a
Docker engine), or ``auto`` (the default: containers when a Docker engine answers, else local).
``PAYNOTIFY_TEST_KAFKA`` / ``PAYNOTIFY_TEST_DATABASE_URL`` point at services already running.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from paynotify.broker import LocalBroker, free_port
from tests.support.postgres import LocalPostgres


def mode() -> str:
    """Return ``local`` or ``containers``."""
    chosen = os.environ.get("PAYNOTIFY_TEST_SERVICES", "auto")
    if chosen in ("local", "containers"):
        return chosen
    return "containers" if _docker_answers() else "local"


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    done = subprocess.run(["docker", "info"], capture_output=True, check=False, timeout=20)
    return done.returncode == 0


@contextmanager
def kafka() -> Iterator[tuple[str, LocalBroker | None]]:
    """Yield (bootstrap servers, the local broker when this process started one)."""
    given = os.environ.get("PAYNOTIFY_TEST_KAFKA")
    if given:
        yield given, None
        return
    if mode() == "containers":
        from testcontainers.community.kafka import KafkaContainer

        container = KafkaContainer("confluentinc/cp-kafka:7.9.0").with_kraft()
        # One node: transactions (exactly-once) need the state log at replication 1, min ISR 1.
        for name, value in (
            ("AUTO_CREATE_TOPICS_ENABLE", "false"),
            ("TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1"),
            ("TRANSACTION_STATE_LOG_MIN_ISR", "1"),
        ):
            container.with_env(f"KAFKA_{name}", value)
        with container:
            yield container.get_bootstrap_server(), None
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
        from testcontainers.community.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver="psycopg") as container:
            yield container.get_connection_url(), None
        return
    server = LocalPostgres()
    server.init()
    try:
        yield server.url(), server
    finally:
        server.destroy()
