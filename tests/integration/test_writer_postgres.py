from __future__ import annotations

import pytest
from sqlalchemy import Engine

from sinks.schema import SchemaError, check_migrated, upgrade
from tests.support import writer_cases

pytestmark = pytest.mark.integration


def test_migrations_postgres_upgrade_then_check_passes(pg_engine: Engine) -> None:
    with pytest.raises(SchemaError):
        check_migrated(pg_engine)
    assert upgrade(pg_engine) == "0001"
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
