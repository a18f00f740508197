"""Read-only access to the sink's tables for the console, in plain values.

:class:`DatabaseReader` owns one engine and hands out the timeline (``sinks/timeline.py``), the
recent anomalies and the overview counts (``sinks/stats.py``), so that the console's module
never sees SQLAlchemy: it gets dataclasses and dicts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from sinks.errors import DatabaseUnavailableError
from sinks.schema import check_migrated, create_db_engine
from sinks.stats import Stats, order_stats
from sinks.timeline import Story, order_story, recent_anomalies


class DatabaseReader:
    """One engine on ``[database] url``, read by short connections (one per question).

    Every question raises ``DatabaseUnavailableError`` (the driver error's class name only: no
    SQL, no parameters) when the database does not answer.
    """

    def __init__(self, url: str) -> None:
        self._engine = create_db_engine(url)

    def check(self) -> None:
        """Check that the database answers and has every migration.

        Raises:
            DatabaseUnavailableError: the database does not answer.
            SchemaError: a migration is missing.
        """
        check_migrated(self._engine)

    def story(self, out_trade_no: str) -> Story:
        """Return everything on record about one order, in time order.

        Raises:
            DatabaseUnavailableError: the database does not answer.
        """
        with self._connection() as conn:
            return order_story(conn, out_trade_no)

    def anomalies(
        self, since: datetime | None, reason: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """Return the latest anomalies first (without their records), filtered as asked."""
        with self._connection() as conn:
            return recent_anomalies(conn, since, reason, limit)

    def stats(self, now: datetime) -> Stats:
        """Return the orders by status and the last hour's counts up to ``now``."""
        with self._connection() as conn:
            return order_stats(conn, now)

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        try:
            with self._engine.connect() as conn:
                yield conn
        except DBAPIError as exc:
            raise DatabaseUnavailableError(type(exc.orig or exc).__name__) from exc

    def close(self) -> None:
        """Release the engine's connections."""
        self._engine.dispose()
