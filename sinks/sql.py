"""Statements that work on PostgreSQL and SQLite alike, and the PostgreSQL forms that keep a
batch's statement short (one array parameter per column instead of one placeholder per value)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Table,
    Text,
    any_,
    bindparam,
    cast,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY

CHUNK = 5000


def insert(conn: Connection, table: Any) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def insert_many(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> tuple[Any, Any]:
    """Return a multi-row INSERT and its parameters.

    On PostgreSQL it is ``INSERT ... SELECT * FROM unnest(array, ...)``: one array parameter per
    column, so every batch sends the same short statement (no per-row placeholders to build and
    parse). The arrays are text/bigint, so a value too long for its column is still refused.
    Elsewhere it is an ``executemany``.
    """
    if conn.dialect.name != "postgresql":
        return sqlite.insert(table), rows
    names = list(rows[0])
    arrays = [
        cast(bindparam(name), ARRAY(BigInteger if _is_int(table, name) else Text)) for name in names
    ]
    source = func.unnest(*arrays).table_valued(*names).render_derived(name="batch")
    stmt = postgresql.insert(table).from_select(names, select(*(source.c[n] for n in names)))
    return stmt, {name: [row[name] for row in rows] for name in names}


def _is_int(table: Table, name: str) -> bool:
    return isinstance(table.c[name].type, BigInteger)


def chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def among(conn: Connection, column: Any, values: Sequence[str]) -> Any:
    """``column IN values``; on PostgreSQL ``= ANY(array)``, one parameter for the whole list."""
    if conn.dialect.name == "postgresql":
        return column == any_(cast(bindparam("among", list(values)), ARRAY(Text)))
    return column.in_(values)
