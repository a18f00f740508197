"""The sink as a real process against the real broker and PostgreSQL: a database outage, a
database that refuses writes, records it cannot decode or apply, and ``kill -9`` at random moments
of two sinks sharing the partitions all leave exactly the rows of an uninterrupted run."""

from __future__ import annotations

import random
import time
from pathlib import Path

import httpx
import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from sqlalchemy import Engine, create_engine, text

from sinks.schema import create_db_engine, upgrade
from sinks.writer import Record
from stream.records import ORDER_PAID_TOPIC, ORDERS_TOPIC
from tests.support import sink_runs, writer_cases
from tests.support.postgres import LocalPostgres
from tests.support.stack import Service

pytestmark = pytest.mark.integration


def _metric(port: int, name: str) -> float:
    body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


def _wait_metric(port: int, name: str, at_least: float, sink: Service) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert sink.process is not None and sink.process.poll() is None, sink.output()[-3000:]
        try:
            if _metric(port, name) >= at_least:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{name} stayed below {at_least}"
        time.sleep(0.2)


def _stopped_cleanly(*sinks: Service) -> None:
    for sink in sinks:
        assert sink.stop() == 0, sink.output()[-3000:]
        assert "Traceback" not in sink.output(), sink.output()[-3000:]


def _retrying_sink(
    folder: Path, bootstrap: str, database_url: str
) -> tuple[Engine, int, Path, str]:
    """Migrate the database; return it, the metrics port, and a sink configuration that serves
    its metrics there and retries a refused batch at least every second."""
    engine = create_db_engine(database_url)
    upgrade(engine)
    port = sink_runs.metrics_port()
    config, prefix = sink_runs.sink_config(
        folder,
        bootstrap,
        database_url,
        metrics_listen=f"127.0.0.1:{port}",
        max_backoff_seconds=1.0,
    )
    return engine, port, config, prefix


def _set_read_only(postgres_url: str, database: str, on: bool) -> None:
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{database}" SET default_transaction_read_only = {on}'))
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :db AND pid <> pg_backend_pid()"
            ),
            {"db": database},
        )
    admin.dispose()


def test_sink_database_down_or_read_only_pauses_retries_resumes_same_rows(
    tmp_path: Path,
    kafka_bootstrap: str,
    postgres_service: tuple[str, LocalPostgres | None],
) -> None:
    postgres_url, server = postgres_service
    if server is None:
        pytest.skip("needs the PostgreSQL server these tests started (to stop and start it)")
    with sink_runs.fresh_database(postgres_url) as database_url:
        _outages(tmp_path, kafka_bootstrap, postgres_url, server, database_url)


def _outages(
    tmp_path: Path,
    kafka_bootstrap: str,
    postgres_url: str,
    server: LocalPostgres,
    database_url: str,
) -> None:
    engine, port, config, prefix = _retrying_sink(tmp_path, kafka_bootstrap, database_url)
    load = sink_runs.workload(600, seed=1)
    junk = [
        Record(ORDER_PAID_TOPIC, b"\x00not json", "", b"junk"),
        writer_cases.keyed(
            ORDERS_TOPIC, writer_cases.expected(9999).to_bytes().replace(b"CNY", b"CNYX")
        ),
    ]
    thirds = [load[:600], load[600:1200], load[1200:]]
    sink = Service("sink", config)
    sink.start()
    try:
        where = sink_runs.produce(kafka_bootstrap, prefix, thirds[0] + junk)
        sink_runs.wait_caught_up(kafka_bootstrap, prefix)

        server.stop()  # the database is down
        try:
            sink_runs.produce(kafka_bootstrap, prefix, thirds[1])
            _wait_metric(port, "paynotify_sink_retries_total", 2, sink)
            assert _metric(port, "paynotify_sink_paused") == 1
        finally:
            server.start()
        sink_runs.wait_caught_up(kafka_bootstrap, prefix)
        assert _metric(port, "paynotify_sink_paused") == 0

        database = engine.url.database
        assert database is not None
        _set_read_only(postgres_url, database, True)  # the database refuses writes
        retries = _metric(port, "paynotify_sink_retries_total")
        sink_runs.produce(kafka_bootstrap, prefix, thirds[2])
        _wait_metric(port, "paynotify_sink_retries_total", retries + 2, sink)
        _set_read_only(postgres_url, database, False)
        sink_runs.wait_caught_up(kafka_bootstrap, prefix)
        assert _metric(port, "paynotify_sink_records_total") >= len(load) + len(junk)
    finally:
        _stopped_cleanly(sink)
    got = writer_cases.snapshot(engine)
    failed = sink_runs.failed_sources(engine)
    engine.dispose()
    assert len(sink.logs) == 1  # one process the whole time: no crash, no restart
    assert sink_runs.without_failed(got) == sink_runs.reference(tmp_path, load)
    assert failed == {where[-2]: "undecodable_record", where[-1]: "undecodable_record"}


def test_sink_stopped_while_the_database_is_down_commits_only_what_it_wrote(
    tmp_path: Path,
    kafka_bootstrap: str,
    postgres_service: tuple[str, LocalPostgres | None],
) -> None:
    """A sink told to stop while its batch waits for the database commits nothing of it: the
    batch is read again, and written, after the restart."""
    postgres_url, server = postgres_service
    if server is None:
        pytest.skip("needs the PostgreSQL server these tests started (to stop and start it)")
    with sink_runs.fresh_database(postgres_url) as database_url:
        engine, port, config, prefix = _retrying_sink(tmp_path, kafka_bootstrap, database_url)
        load = sink_runs.workload(300, seed=4)
        half = len(load) // 2
        sink = Service("sink", config)
        sink.start()
        try:
            sink_runs.produce(kafka_bootstrap, prefix, load[:half])
            sink_runs.wait_caught_up(kafka_bootstrap, prefix)
            written = sink_runs.committed_offsets(kafka_bootstrap, prefix)
            server.stop()
            try:
                sink_runs.produce(kafka_bootstrap, prefix, load[half:])
                _wait_metric(port, "paynotify_sink_retries_total", 1, sink)
                _stopped_cleanly(sink)  # SIGTERM while the batch waits for the database
            finally:
                server.start()
            assert sink_runs.committed_offsets(kafka_bootstrap, prefix) == written
            sink.start()
            sink_runs.wait_caught_up(kafka_bootstrap, prefix)
        finally:
            _stopped_cleanly(sink)
        got = writer_cases.snapshot(engine)
        engine.dispose()
    assert got == sink_runs.reference(tmp_path, load)


def test_sink_two_processes_killed_at_random_moments_same_rows_as_uninterrupted_run(
    tmp_path: Path, kafka_bootstrap: str, database_url: str
) -> None:
    engine = create_db_engine(database_url)
    upgrade(engine)
    config, prefix = sink_runs.sink_config(
        tmp_path, kafka_bootstrap, database_url, batch_size=10, session_timeout_ms=6000
    )
    load = sink_runs.workload(4000, seed=2)
    events = len({r.value for r in load if r.topic != ORDERS_TOPIC})
    sink_runs.produce(kafka_bootstrap, prefix, load)
    sinks = [Service("sink", config), Service("sink", config)]
    rng = random.Random(3)
    kills, at_kill = 0, []
    try:
        for sink in sinks:
            sink.start()
        _wait_two_members(kafka_bootstrap, f"{prefix}paynotify-sink")
        for share in (0.1, 0.3, 0.5, 0.7):
            sink_runs.wait_rows(engine, int(events * share))
            time.sleep(rng.uniform(0.0, 0.3))
            victim = rng.choice(sinks)
            victim.kill()  # SIGKILL: no shutdown, no commit
            at_kill.append(sink_runs.event_rows(engine))
            kills += 1
            victim.start()
        sink_runs.wait_caught_up(kafka_bootstrap, prefix, timeout=150)
    finally:
        _stopped_cleanly(*sinks)
    got = writer_cases.snapshot(engine)
    engine.dispose()
    assert kills == 4
    assert min(at_kill) < events, f"every kill came after the end: {at_kill} of {events}"
    assert sink_runs.event_rows_in(got) == events
    assert got == sink_runs.reference(tmp_path, load)


def _wait_two_members(bootstrap: str, group: str) -> None:
    """Wait until two sinks share the group, each with some of the partitions."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + 60
    while True:
        try:
            description = admin.describe_consumer_groups([group])[group].result(timeout=10)
            owned = [len(m.assignment.topic_partitions) for m in description.members]
        except KafkaException:  # the coordinator may still be loading
            owned = []
        if len(owned) == 2 and all(owned):
            return
        assert time.monotonic() < deadline, f"group {group}: partitions per member {owned}"
        time.sleep(0.5)
