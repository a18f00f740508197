from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from sinks.schema import SchemaError, check_migrated, create_db_engine, upgrade
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
