"""Fast bulk load of generated rows into PostgreSQL with `COPY ... FROM STDIN`.

The columns and their PostgreSQL types come from the models
([`COLUMNS`][pytest_celestra.rows.loader.COLUMNS],
[`COPY_TYPES`][pytest_celestra.rows.loader.COPY_TYPES]), so the generator and the loader agree on
one order. Rows go through psycopg 3's `Copy.write_row` in binary format (large scenario,
130k rows: 1.17-1.26 s against 1.30-1.33 s for text); generating in a worker thread while
PostgreSQL digests the previous COPY ([`load`][pytest_celestra.rows.loader.load]'s
`prefetch`) brings a seed from ~1.85 s to ~1.5 s. Enum labels travel as text, so no enum
type needs registering. Nothing is committed: the rows land in the caller's transaction.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import sys
import threading
from queue import Full, Queue
from types import MappingProxyType, SimpleNamespace
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from psycopg.types.net import PGSQL_AF_INET, PGSQL_AF_INET6, InetBinaryDumper
from sqlalchemy import DateTime, Integer, String, Uuid
from sqlalchemy.dialects.postgresql import INET

from pytest_celestra.errors import ConfigError
from pytest_celestra.schema.models import MODELS_IN_FK_ORDER, TABLES_IN_FK_ORDER

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

    from psycopg.adapt import Buffer
    from sqlalchemy.sql.elements import KeyedColumnElement

Row = tuple[Any, ...]
Chunk = tuple[str, list[Row]]

_COPY_TYPE_NAMES = ((INET, "inet"), (Integer, "int4"), (Uuid, "uuid"), (String, "text"))


def _copy_type(column: KeyedColumnElement[Any]) -> str:
    """The type `column`'s values are dumped as in binary COPY (an enum as its label's text)."""
    kind = column.type
    if isinstance(kind, DateTime):
        return "timestamptz" if kind.timezone else "timestamp"
    for sa_type, name in _COPY_TYPE_NAMES:
        if isinstance(kind, sa_type):
            return name
    raise TypeError(f"no COPY type for {column} of type {kind!r}")


COPY_TYPES: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        model.__tablename__: {column.name: _copy_type(column) for column in model.__table__.columns}
        for model in MODELS_IN_FK_ORDER
    }
)
"""Table -> column -> PostgreSQL type of its binary COPY."""
COLUMNS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {table: tuple(types) for table, types in COPY_TYPES.items()}
)
"""Column names of every table, in the order generated rows carry their values."""


def raw_connection(connection: Any) -> psycopg.Connection[Any]:
    """The psycopg 3 connection behind a psycopg connection, a SQLAlchemy Connection or
    Session (whose pending objects are flushed first)."""
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
    """The caller's transaction, or ours in autocommit mode: a seed is never half-written."""
    with pg_conn.transaction() if pg_conn.autocommit else contextlib.nullcontext():
        yield


_INET4_HEAD = bytes((PGSQL_AF_INET, 32, 0, 4))
_INET6_HEAD = bytes((PGSQL_AF_INET6, 128, 0, 16))


class _TextOrAddressInetDumper(InetBinaryDumper):
    """Binary inet from an address string too, packed by the C `inet_pton` rather than
    through an `ipaddress` object (a 10,000-row user_sessions COPY: 14 ms instead of 65)."""

    def dump(self, obj: Any) -> Buffer | None:
        if isinstance(obj, str):
            try:
                if ":" in obj:
                    return _INET6_HEAD + socket.inet_pton(socket.AF_INET6, obj)
                return _INET4_HEAD + socket.inet_pton(socket.AF_INET, obj)
            except OSError:
                obj = ipaddress.ip_address(obj)  # a scoped address, or a clear ValueError
        return super().dump(obj)


def _added_type(rows: Any, index: int) -> str:
    values = [row[index] for row in rows if row[index] is not None]
    for kind, name in ((bool, "bool"), (int, "int4")):
        if values and all(isinstance(value, kind) for value in values):
            return name
    return "text"


def copy_rows(
    pg_conn: psycopg.Connection[Any], table: str, columns: Sequence[str], rows: Iterable[Row]
) -> int:
    """Binary `COPY table (columns) FROM STDIN` of `rows`; how many were written. A column
    a rule of yours added is sent as its values' type (bool, int4, else text)."""
    known = COPY_TYPES[table]
    if not all(column in known for column in columns):
        rows = list(rows)
    types = [known.get(column) or _added_type(rows, index) for index, column in enumerate(columns)]
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    written = 0
    with pg_conn.cursor() as cursor:
        if "inet" in types:
            # On this cursor only: the caller's connection keeps its own adapters.
            cursor.adapters.register_dumper(None, _TextOrAddressInetDumper)
        with cursor.copy(statement) as copy:
            copy.set_types(types)
            for row in rows:
                copy.write_row(row)
                written += 1
    return written


def load(
    pg_conn: psycopg.Connection[Any],
    chunks: Iterable[Chunk],
    progress: Callable[[str, int], None] | None = None,
    *,
    prefetch: int = 4,
) -> dict[str, int]:
    """COPY every chunk, in the order given, into `pg_conn`; the rows written per table.

    Each non-empty chunk is one COPY, ended at once, so PostgreSQL checks its foreign keys
    while the next chunk is made. `progress(table, rows_so_far)` is called after each chunk.
    With `prefetch` > 0, a thread makes up to that many chunks ahead (and the GIL changes
    hands promptly meanwhile: `prompt_thread_switches`). A generator of chunks is closed
    before `load` returns or raises, so its clean-up has run.
    """
    counts = dict.fromkeys(TABLES_IN_FK_ORDER, 0)
    with prompt_thread_switches(prefetch > 0), _ahead(chunks, prefetch) as stream:
        for table, rows in stream:
            if rows:
                counts[table] += copy_rows(pg_conn, table, COLUMNS[table], rows)
            if progress is not None:
                progress(table, counts[table])
    return counts


@contextlib.contextmanager
def prompt_thread_switches(wanted: bool = True) -> Iterator[None]:
    """Inside the block (if `wanted`), the interpreter hands the GIL over every 0.5 ms
    rather than every 5 ms. Where one thread makes rows and another COPYs them, the one
    back from waiting on the server (a dozen times a chunk) goes on at once instead of
    after the other's next 5 ms: a scenario's load and a `bulk_create` in chunks wait less.
    Blocks in several threads at once share it: the last one out restores the interval."""
    if not wanted:
        yield
        return
    with _SWITCHES.lock:
        if not _SWITCHES.users:
            _SWITCHES.interval = sys.getswitchinterval()
            sys.setswitchinterval(min(_SWITCHES.interval, 0.0005))
        _SWITCHES.users += 1
    try:
        yield
    finally:
        with _SWITCHES.lock:
            _SWITCHES.users -= 1
            if not _SWITCHES.users:
                sys.setswitchinterval(_SWITCHES.interval)


#: The blocks of `prompt_thread_switches` open now, and the interval they replaced.
_SWITCHES = SimpleNamespace(lock=threading.Lock(), users=0, interval=sys.getswitchinterval())


@contextlib.contextmanager
def _ahead(chunks: Iterable[Chunk], depth: int) -> Iterator[Iterator[Chunk]]:
    """`chunks`, produced by a worker thread up to `depth` chunks ahead; their iterator
    closed at the end, however the consumer stopped.

    A consumer that stops early (Ctrl-C, a COPY refused) leaves a generator suspended: its
    `finally` blocks would run only when it is collected, maybe never before the process
    exits. The scenario's generator joins its password-hashing thread in one; left to run
    on at exit in bcrypt, that thread aborts the process (SIGABRT) instead of letting it
    exit as interrupted.
    """
    if depth <= 0:
        iterator = iter(chunks)
        try:
            yield iterator
        finally:
            _close(iterator)
        return
    queue: Queue[Chunk | BaseException | None] = Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: Chunk | BaseException | None) -> bool:
        while not stop.is_set():
            with contextlib.suppress(Full):
                queue.put(item, timeout=0.1)
                return True
        return False

    def produce() -> None:
        iterator = iter(chunks)
        try:
            for chunk in iterator:
                if not offer(chunk):
                    return
            offer(None)
        except BaseException as error:  # handed to the consumer, which re-raises it
            offer(error)
        finally:
            _close(iterator)  # here, in the thread it runs in; the consumer joins this one

    def consume() -> Iterator[Chunk]:
        while (item := queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item

    worker = threading.Thread(target=produce, name="celestra-generate", daemon=True)
    worker.start()
    try:
        yield consume()
    finally:
        stop.set()
        worker.join()


def _close(iterator: Iterator[Any]) -> None:
    """Close `iterator` if it can be (a generator: its `finally` blocks run now)."""
    close = getattr(iterator, "close", None)
    if callable(close):
        close()


def existing_keys(pg_conn: psycopg.Connection[Any], table: str, column: str) -> list[Any]:
    """The values of `table.column` in `pg_conn`'s database, in order: the keys a table your
    migrations fill holds for the rows that point at it."""
    query = sql.SQL("SELECT {} FROM {} ORDER BY 1").format(
        sql.Identifier(column), sql.Identifier(table)
    )
    return [key for (key,) in pg_conn.execute(query)]
