from __future__ import annotations

import pytest
from sqlalchemy import Engine

from sinks.errors import SchemaError
from sinks.schema import check_migrated, head_revision, upgrade
from tests.support import writer_cases

pytestmark = pytest.mark.integration


def test_migrations_postgres_upgrade_then_check_passes(pg_engine: Engine) -> None:
    with pytest.raises(SchemaError):
        check_migrated(pg_engine)
    assert upgrade(pg_engine) == head_revision()
    check_migrated(pg_engine)


def test_write_batch_postgres_redelivery_in_any_order_one_row_per_event(pg_engine: Engine) -> None:
    upgrade(pg_engine)
    writer_cases.check_redelivery_in_any_order_gives_one_row_per_event(pg_engine)


def test_write_batch_postgres_paid_never_moves_back(pg_engine: Engine) -> None:
    upgrade(pg_engine)
    writer_cases.check_paid_never_moves_back_to_created(pg_engine)


def test_write_batch_postgres_anomalies_and_undecodable_kept_once(pg_engine: Engine) -> None:
    upgrade(pg_engine)
    writer_cases.check_undecodable_and_anomalies_are_kept_once(pg_engine)


def test_write_batch_postgres_refunds_closes_any_order_same_rows(pg_engine: Engine) -> None:
    upgrade(pg_engine)
    want = writer_cases.check_history_in_order_gives_expected_rows(pg_engine)
    for seed in range(8):
        order, sizes = writer_cases.shuffled(seed)
        writer_cases.check_any_order_and_copies_give_same_rows(pg_engine, want, order, sizes)


def test_write_batch_postgres_lower_version_never_moves_status_back(pg_engine: Engine) -> None:
    upgrade(pg_engine)
    writer_cases.check_lower_version_never_moves_status_back(pg_engine)


def test_write_batch_postgres_payment_after_unpaid_close_leaves_order_paid(
    pg_engine: Engine,
) -> None:
    upgrade(pg_engine)
    writer_cases.check_payment_after_unpaid_close_leaves_order_paid(pg_engine)


def test_write_records_postgres_refused_record_becomes_anomaly(pg_engine: Engine) -> None:
    upgrade(pg_engine)
    writer_cases.check_record_the_database_refuses_becomes_anomaly(pg_engine)


def test_write_batch_postgres_notification_keeps_the_latest_decision(pg_engine: Engine) -> None:
    upgrade(pg_engine)
    writer_cases.check_notification_keeps_the_stream_s_latest_decision(pg_engine)
