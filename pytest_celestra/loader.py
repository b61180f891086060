"""Fast bulk load of generated rows into PostgreSQL with ``COPY ... FROM STDIN``.

The column list of every table comes from the models (:data:`COLUMNS`), so the generator
and the loader agree on one order. Rows go through psycopg 3's ``Copy.write_row`` in text
format, which measured faster here than binary for these rows (uuid, text, enum labels,
inet, timestamptz) and needs no type registration for the enum types. Nothing is
committed: the rows land in the caller's transaction.
"""

from __future__ import annotations

import contextlib
import itertools
import operator
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from pytest_celestra.errors import ConfigError
from pytest_celestra.models import MODELS_IN_FK_ORDER, TABLES_IN_FK_ORDER

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

Row = tuple[Any, ...]
Chunk = tuple[str, list[Row]]

#: Column names of every table, in the order generated rows carry their values.
COLUMNS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        model.__tablename__: tuple(column.name for column in model.__table__.columns)
        for model in MODELS_IN_FK_ORDER
    }
)


def raw_connection(connection: Any) -> psycopg.Connection[Any]:
    """The psycopg 3 connection behind a psycopg connection, a SQLAlchemy Connection or a
    SQLAlchemy Session (whose pending objects are flushed first, so they come before)."""
    if isinstance(connection, psycopg.Connection):
        return connection
    flush = getattr(connection, "flush", None)
    if callable(flush):
        flush()
        connection = connection.connection()
    driver = getattr(getattr(connection, "connection", None), "driver_connection", None)
    if isinstance(driver, psycopg.Connection):
        return driver
    raise ConfigError(
        f"cannot seed through {type(connection).__name__}: pass a psycopg 3 connection, or a "
        "SQLAlchemy Session/Connection on a postgresql+psycopg:// URL (the psycopg 3 driver)"
    )


@contextlib.contextmanager
def caller_transaction(pg_conn: psycopg.Connection[Any]) -> Iterator[None]:
    """The caller's transaction; one of our own when the connection is in autocommit
    mode, so a seed is never half-written."""
    if pg_conn.autocommit:
        with pg_conn.transaction():
            yield
    else:
        yield


def copy_rows(
    pg_conn: psycopg.Connection[Any], table: str, columns: Sequence[str], rows: Iterable[Row]
) -> int:
    """``COPY table (columns) FROM STDIN`` of ``rows``; returns how many were written."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    written = 0
    with pg_conn.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)
            written += 1
    return written


def load(
    pg_conn: psycopg.Connection[Any],
    chunks: Iterable[Chunk],
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """COPY every chunk, in the order given (parents before children), into ``pg_conn``.

    Consecutive chunks of one table share one COPY. ``progress(table, rows_so_far)`` is
    called after each chunk. Returns the rows written per table (every table listed).
    """
    counts = dict.fromkeys(TABLES_IN_FK_ORDER, 0)
    for table, group in itertools.groupby(chunks, key=operator.itemgetter(0)):
        counts[table] += copy_rows(
            pg_conn, table, COLUMNS[table], _rows(table, group, counts, progress)
        )
    return counts


def _rows(
    table: str,
    group: Iterable[Chunk],
    counts: dict[str, int],
    progress: Callable[[str, int], None] | None,
) -> Iterator[Row]:
    done = counts[table]
    for _, rows in group:
        yield from rows
        done += len(rows)
        if progress is not None:
            progress(table, done)
