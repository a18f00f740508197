"""Schema migrations: apply them, and refuse to run on a database that lacks them."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError

from sinks.errors import DatabaseUnavailableError, SchemaError

MIGRATIONS = Path(__file__).parent / "migrations"


def create_db_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL mode, a busy timeout, its parent folder, and
    transactions SQLAlchemy controls (so that savepoints work with the sqlite3 driver)."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})
        database = engine.url.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    engine = create_engine(url, pool_pre_ping=True)
    if engine.dialect.driver == "psycopg":
        event.listen(engine, "connect", _psycopg_binary_arrays)
    return engine


def _psycopg_binary_arrays(dbapi_conn: object, _record: object) -> None:
    """Send list parameters (the writer's column arrays) in binary: no per-element escaping.

    And plan every statement for its own array: psycopg prepares repeated statements, and a
    generic plan for ``= ANY($1)`` over a growing table can be a scan that costs seconds.
    """
    from psycopg.types.array import ListBinaryDumper

    dbapi_conn.adapters.register_dumper(list, ListBinaryDumper)  # type: ignore[attr-defined]
    cursor = dbapi_conn.cursor()  # type: ignore[attr-defined]
    cursor.execute("SET plan_cache_mode = force_custom_plan")
    cursor.close()
    dbapi_conn.commit()  # type: ignore[attr-defined]


def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
    dbapi_conn.isolation_level = None  # type: ignore[attr-defined]
    cursor = dbapi_conn.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN")


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(engine: Engine) -> str:
    """Apply every pending migration and return the head revision."""
    config = _config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    return head_revision()


def head_revision() -> str:
    """Return the newest migration's revision id."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def check_migrated(engine: Engine) -> None:
    """Raise unless the database is at the head revision.

    Raises:
        SchemaError: the database is empty or behind.
        DatabaseUnavailableError: the database cannot be reached.
    """
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
    except DBAPIError as exc:
        raise DatabaseUnavailableError(type(exc.orig or exc).__name__) from exc
    head = head_revision()
    if current != head:
        raise SchemaError(
            f"database schema is at {current or 'nothing'}, expected {head}: "
            "run `paynotify db upgrade` first"
        )
