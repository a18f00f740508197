"""A rebalance storm on the real broker: while orders and duplicated payments keep flowing, extra
``paynotify stream`` processes join the group and leave it, alternately stopped with SIGTERM and
killed with SIGKILL. Afterwards every order is paid, a ``read_committed`` reader sees exactly one
``order.paid`` per order, and the database sink holds exactly one paid event per order."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from sinks.schema import create_db_engine, upgrade
from tests.support.kafka_checks import wait_group_members
from tests.support.stack import Service
from tests.support.stream_load import fill, wait_paid, write_stream_config

pytestmark = pytest.mark.integration

ORDERS_PER_BATCH = 100
CYCLES = 7  # extra workers that join and leave: SIGKILL on odd cycles, SIGTERM on even ones


@pytest.fixture
def services() -> Iterator[list[Service]]:
    started: list[Service] = []
    yield started
    for service in started:
        service.kill()


class Feeder(threading.Thread):
    """Publish batches of orders with two copies of each payment until told to stop."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.prefix = bootstrap, prefix
        self.numbers: list[str] = []
        self.done = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        batch = 0
        try:
            while not self.done.is_set():
                numbers = [f"s{batch}-{i}" for i in range(ORDERS_PER_BATCH)]
                fill(self.bootstrap, self.prefix, numbers)
                self.numbers += numbers
                batch += 1
                self.done.wait(1.0)
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc


def start(name: str, config: Path, started: list[Service]) -> Service:
    service = Service(name, config)
    service.start()
    started.append(service)
    return service


def wait_output(service: Service, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not service.output().strip():
        assert time.monotonic() < deadline, f"{service.name} printed nothing in {timeout}s"
        time.sleep(0.2)


def assert_alive(*services: Service) -> None:
    for service in services:
        assert service.process is not None and service.process.poll() is None, (
            f"{service.name} died:\n{service.output()[-3000:]}"
        )


def paid_rows(database: str) -> dict[str, int]:
    engine = create_db_engine(database)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT out_trade_no, count(*) FROM order_events "
                "WHERE type = 'order.paid' GROUP BY out_trade_no"
            )
        )
        counts = {str(no): int(n) for no, n in rows}
    engine.dispose()
    return counts


def wait_rows(database: str, expected: int, timeout: float = 180.0) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while len(counts := paid_rows(database)) < expected and time.monotonic() < deadline:
        time.sleep(1.0)
    return counts


@pytest.mark.parametrize("engine", ["quix", "faust"])
def test_stream_rebalance_storm_gives_one_paid_per_order(
    tmp_path: Path, kafka_bootstrap: str, database_url: str, services: list[Service], engine: str
) -> None:
    rng = random.Random(11)
    config, prefix = write_stream_config(
        tmp_path / "first",
        kafka_bootstrap,
        guarantee="exactly_once",
        engine=engine,
        database=database_url,
        commit=0.1,
    )
    migrations = create_db_engine(database_url)
    upgrade(migrations)
    migrations.dispose()
    first, sink = start("stream", config, services), start("sink", config, services)
    group = f"{prefix}paynotify-stream"
    wait_group_members(kafka_bootstrap, group, 1)
    feeder = Feeder(kafka_bootstrap, prefix)
    feeder.start()
    for cycle in range(CYCLES):
        extra_config, _ = write_stream_config(
            tmp_path / f"extra-{cycle}",
            kafka_bootstrap,
            prefix=prefix,
            guarantee="exactly_once",
            engine=engine,
            database=database_url,
            commit=0.1,
        )
        extra = start("stream", extra_config, services)
        wait_output(extra)  # the supervisor passes signals on from here
        wait_group_members(kafka_bootstrap, group, 2)
        time.sleep(rng.uniform(0.0, 6.0))  # leaves mid-rebalance, or after it took partitions
        assert_alive(first, sink, extra)
        if cycle % 2:
            extra.kill()
        else:
            code = extra.stop()
            assert code == 0, f"exit {code} after SIGTERM:\n{extra.output()[-3000:]}"
    feeder.done.set()
    feeder.join()
    assert feeder.error is None, repr(feeder.error)
    numbers = feeder.numbers
    counts = wait_paid(kafka_bootstrap, prefix, len(numbers), timeout=240)
    lost = sorted(set(numbers) - set(counts))
    assert not lost, f"{len(lost)} of {len(numbers)} orders never paid: {lost[:10]}"
    doubled = {k: v for k, v in counts.items() if v != 1}
    assert not doubled, f"{len(doubled)} orders have several order.paid: {list(doubled)[:5]}"
    rows = wait_rows(database_url, len(numbers))
    assert sorted(rows) == sorted(numbers), f"{len(rows)} paid rows for {len(numbers)} orders"
    assert set(rows.values()) == {1}
    assert_alive(first, sink)
