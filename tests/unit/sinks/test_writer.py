from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from sinks.consumer import KafkaSink
from sinks.errors import SchemaError
from sinks.rows import metadata
from sinks.schema import check_migrated, create_db_engine, upgrade
from sinks.settings import SinkSettings
from tests.support import writer_cases


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'sink.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


def test_check_migrated_unmigrated_database_raises_clear_error(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(SchemaError, match="paynotify db upgrade"):
        check_migrated(engine)
    upgrade(engine)
    check_migrated(engine)
    engine.dispose()


def test_write_batch_sqlite_redelivery_in_any_order_one_row_per_event(engine: Engine) -> None:
    writer_cases.check_redelivery_in_any_order_gives_one_row_per_event(engine)


def test_write_batch_sqlite_paid_never_moves_back(engine: Engine) -> None:
    writer_cases.check_paid_never_moves_back_to_created(engine)


def test_write_batch_sqlite_anomalies_and_undecodable_kept_once(engine: Engine) -> None:
    writer_cases.check_undecodable_and_anomalies_are_kept_once(engine)


def test_write_batch_sqlite_refunds_and_closes_give_expected_rows(engine: Engine) -> None:
    writer_cases.check_history_in_order_gives_expected_rows(engine)


def test_write_batch_sqlite_lower_version_never_moves_status_back(engine: Engine) -> None:
    writer_cases.check_lower_version_never_moves_status_back(engine)


def test_write_batch_sqlite_payment_after_unpaid_close_leaves_order_paid(engine: Engine) -> None:
    writer_cases.check_payment_after_unpaid_close_leaves_order_paid(engine)


def test_write_records_sqlite_late_cumulative_refund_total_changes_nothing(engine: Engine) -> None:
    writer_cases.check_late_cumulative_total_adds_nothing_and_is_no_anomaly(engine)


def test_write_batch_sqlite_notification_keeps_the_latest_decision(engine: Engine) -> None:
    writer_cases.check_notification_keeps_the_stream_s_latest_decision(engine)


def test_write_records_sqlite_refused_record_becomes_anomaly(engine: Engine) -> None:
    writer_cases.check_record_the_database_refuses_becomes_anomaly(engine)


@pytest.fixture(scope="module")
def reference(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[writer_cases.Snapshot, Engine]]:
    """The rows of the history written once, in order, and a database to replay it into."""
    engine = create_db_engine(f"sqlite:///{tmp_path_factory.mktemp('property') / 'sink.db'}")
    upgrade(engine)
    yield writer_cases.check_history_in_order_gives_expected_rows(engine), engine
    engine.dispose()


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_write_batch_sqlite_any_order_and_copies_same_rows(
    reference: tuple[writer_cases.Snapshot, Engine], data: st.DataObject
) -> None:
    n = len(writer_cases.history())
    order = data.draw(st.lists(st.integers(0, 3 * n), min_size=n, max_size=3 * n))
    sizes = data.draw(st.lists(st.integers(1, 9), min_size=1, max_size=6))
    want, engine = reference
    writer_cases.check_any_order_and_copies_give_same_rows(engine, want, order, sizes)


def test_rows_match_migrations_no_difference(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_kafka_sink_unmigrated_database_refuses_to_start(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    settings = SinkSettings(
        database_url=str(engine.url),
        bootstrap_servers="127.0.0.1:1",
        topic_prefix="",
        group_id="g",
        batch_size=10,
        flush_interval_s=0.1,
    )
    with pytest.raises(SchemaError, match="run `paynotify db upgrade` first"):
        KafkaSink(settings, engine).run(threading.Event())
    engine.dispose()


def test_notifications_columns_are_the_decision_record_s_fields() -> None:
    from gateway.records import field_names
    from sinks.notifications import COLUMNS
    from stream.records import NotificationDecision

    assert sorted(COLUMNS) == sorted(field_names(NotificationDecision))
