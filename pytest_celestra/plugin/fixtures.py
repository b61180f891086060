"""The `celestra_*` fixtures.

Databases are made only when a test asks for them: `celestra_session` clones the empty
schema, `celestra_seeded_db` the seeded scenario; each test then runs in a transaction
that is rolled back, so per-test cost does not grow with the volume.

Connections you open yourself (`celestra_engine`, `celestra_dsn` and their seeded twins)
see what is committed, the template's rows, not what a test writes through a session
fixture; what they commit stays for every later test of that process.

Factory data is reproducible: the session fixtures reseed factory_boy's and Faker's random
generator and reset the factories' sequences from `--celestra-seed` and the test's node id,
and again right before the test function runs (after pytest-randomly's reseeding), so a
test makes the same rows in any order, under xdist or pytest-randomly.

Cheap to import: SQLAlchemy, the database manager and the factories are imported by the
fixtures that need them.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import os
import re
import select
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import pytest

from pytest_celestra.db.drift import RowRejectedError, SchemaDriftError
from pytest_celestra.db.server import start_server
from pytest_celestra.errors import ConfigError, RuleError, ServerError
from pytest_celestra.plugin.run_info import CONFIG_KEY, RUN_KEY, RunInfo, scenario_of
from pytest_celestra.schema.tables import ENTITIES, MODEL_NAMES_IN_FK_ORDER
from pytest_celestra.urls import libpq_url

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping
    from datetime import datetime
    from pathlib import Path

    from sqlalchemy.engine import URL, Connection, Engine, Transaction
    from sqlalchemy.ext.asyncio import AsyncEngine
    from sqlalchemy.orm import Session

    from pytest_celestra.config import ScenarioSettings
    from pytest_celestra.db.cache_keys import SchemaSetup
    from pytest_celestra.db.database import DatabaseManager
    from pytest_celestra.db.server import Server
    from pytest_celestra.db.user_scenarios import ScenarioBuilder, ScenarioTemplates
    from pytest_celestra.schema.app_rules import SchemaRules
    from pytest_celestra.schema.volumes import Volume

SESSION_FIXTURES = frozenset(
    {
        "celestra_session",
        "celestra_seeded_db",
        "celestra_async_session",
        "celestra_async_seeded_db",
        "celestra_transactional_db",
    }
)
"""The fixtures that give a test a session (and so reseed its factories)."""


def concrete_factories(base: type[Any] | None = None) -> Iterator[type[Any]]:
    """Every subclass of `CelestraFactory` (or `base`) alive now, but the abstract ones."""
    from pytest_celestra.rows.factories import CelestraFactory
    from pytest_celestra.rows.factory_internals import is_abstract

    for subclass in (base or CelestraFactory).__subclasses__():
        if not is_abstract(subclass):
            yield subclass
        yield from concrete_factories(subclass)


def reseed_factories(seed: int, nodeid: str, phase: str) -> None:
    """Seed the factories' random generator from `seed`, `nodeid` and `phase` (which tells
    apart the reseeds of one test, so their ids do not collide). Phases other than `call`
    also restart every factory's sequences, so they too are the same in any test order."""
    import factory.random
    import faker.generator

    # What factory.random.reseed_random does, seeded with 64 bits of a hash: an integer
    # seeds the generator several times faster than the text itself.
    text = f"pytest-celestra {seed} {nodeid} {phase}".encode()
    number = int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")
    factory.random.randgen.seed(number)
    factory.random.randgen.state_set = True  # type: ignore[attr-defined]
    faker.generator.random.seed(number)
    if phase != "call":
        for factory_class in concrete_factories():
            factory_class.reset_sequence(0, force=True)


def schema_setup(config: pytest.Config) -> SchemaSetup:
    """The user's `pytest_celestra_create_schema` hook if there is one, else `create_all`."""
    from pytest_celestra.db.cache_keys import SchemaSetup, builtin_schema_setup, user_schema_key

    hook: Any = config.hook
    if not hook.pytest_celestra_create_schema.get_hookimpls():
        return builtin_schema_setup()

    def create(connection: Connection) -> None:
        if hook.pytest_celestra_create_schema(connection=connection, config=config) is None:
            from pytest_celestra.schema.models import Base

            Base.metadata.create_all(connection)

    version = hook.pytest_celestra_schema_version(config=config)
    if version is None:
        return SchemaSetup(create, None)
    return SchemaSetup(create, user_schema_key(str(version), str(config.rootpath)))


@contextlib.contextmanager
def open_databases(config: pytest.Config, workdir: Path) -> Iterator[DatabaseManager]:
    """Start or reach the run's server (a throwaway one's data in `workdir`); the template
    cache on it. Raises ServerError."""
    from pytest_celestra.db.database import Budget, DatabaseManager
    from pytest_celestra.db.seeding import Seeder
    from pytest_celestra.plugin.build_progress import BuildProgress
    from pytest_celestra.schema.app_rules import SchemaRules

    celestra = config.stash[CONFIG_KEY]
    run = config.stash[RUN_KEY]
    run.rules = SchemaRules()  # your hooks first: one that raises leaves no server running
    run.rules.hooked = bool(config.hook.pytest_celestra_schema_rules.get_hookimpls())
    config.hook.pytest_celestra_schema_rules(rules=run.rules, config=config)
    setup = schema_setup(config)
    server = start_server(celestra, workdir)
    manager: DatabaseManager | None = None
    try:
        manager = DatabaseManager(
            server,
            setup,
            Seeder(run.rules),
            run_id=run.run_id,
            worker=run.worker,
            rebuild=celestra.rebuild.value,
            keep=celestra.keep.value,
            budget=Budget(celestra.template_max_age.value, celestra.template_max_size.value),
            notes=run.notes,
            processes=int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1),
            lock_timeout=celestra.lock_timeout.value,
            say=_terminal_line(config),
            watcher=BuildProgress(config, run),
        )
        manager.open()
        yield manager
    finally:
        if manager is not None:
            manager.close()
        _stop_unless_kept(server, celestra.pgdata.value, run)


def _stop_unless_kept(server: Server, pgdata: Path, run: RunInfo) -> None:
    """Stop the run's server, except an embedded one holding kept databases (of this run
    or an earlier one): their URLs must connect. Says so, and how to stop it, in the run's
    notes; and that a throwaway local server took this run's kept databases with it."""
    import psycopg

    from pytest_celestra.config import ServerMode
    from pytest_celestra.db.database import kept_databases
    from pytest_celestra.db.server import connect

    notes, kept = run.notes, []
    if server.kind is ServerMode.LOCAL and run.kept:
        notes.append(
            "the test databases kept with --celestra-keep were on this run's throwaway local "
            "server (pg_ctl), which stops with the run: they are gone. To keep databases "
            "after the run, use the embedded server (--celestra-server=embedded) or a "
            "server of yours (--celestra-dsn)"
        )
    if server.kind is ServerMode.EMBEDDED:
        with contextlib.suppress(psycopg.Error), connect(server.url, autocommit=True) as admin:
            kept = kept_databases(admin)
    if not kept:
        server.stop()
        return
    server.leave_running()
    notes.append(
        f"the embedded PostgreSQL in {pgdata} keeps running for the test databases kept "
        "with --celestra-keep; drop them with DROP DATABASE when done, and stop it with: "
        f"celestra-seed stop --data-dir {pgdata}"
    )


@pytest.fixture(scope="session")
def _celestra_databases(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DatabaseManager]:
    """The server and the template cache on it, for this test process."""
    with contextlib.ExitStack() as stack:
        try:
            manager = stack.enter_context(
                open_databases(request.config, tmp_path_factory.mktemp("celestra-server"))
            )
        except (ServerError, ConfigError) as error:  # ConfigError: a rule it cannot use
            # One clear message and a stop, rather than the same error for every test.
            request.session.shouldstop = (
                "pytest-celestra cannot use its database server (see above)"
                if isinstance(error, ServerError)
                else "pytest-celestra cannot use your schema rules (see above)"
            )
            raise pytest.fail.Exception(f"pytest-celestra: {error}", pytrace=False) from None
        yield manager


@contextlib.contextmanager
def _server_error_as_failure() -> Iterator[None]:
    """A server lost while making a database: one line, not the driver's traceback."""
    try:
        yield
    except (SchemaDriftError, ServerError, RowRejectedError, RuleError) as error:
        failure = pytest.fail.Exception(f"pytest-celestra: {error}", pytrace=False)
        # A drift report is shown in full once (row_reports).
        failure.celestra_drift = isinstance(error, SchemaDriftError)  # type: ignore[attr-defined]
        raise failure from None


class RollbackDatabase:
    """A database of this process whose tests roll back: its engine and the one connection
    the per-test sessions share. `create(name)` clones it from its template (under `name`
    when given). The fixtures and `--celestra-lint` both use it.
    """

    def __init__(
        self, manager: DatabaseManager, run: RunInfo, create: Callable[[str | None], URL]
    ) -> None:
        from sqlalchemy import create_engine

        self.manager = manager
        self.run = run
        self._create = create
        self.url = create(None)
        # A statement's parameters are a row's values: never in an error's text.
        self.engine = create_engine(self.url, hide_parameters=True)
        self._connection: Connection | None = None
        self._guard: IsolationGuard | None = None

    def connection(self) -> tuple[Connection, IsolationGuard]:
        """The shared connection and its guard; opened again when the server closed it or
        it failed."""
        connection = self._connection
        if connection is None or connection.invalidated or _hung_up(connection):
            self._close_connection(invalidate=True)  # not back into the pool
            connection = self._connection = self._connect()
            self._guard = IsolationGuard(connection)
        assert self._guard is not None
        return connection, self._guard

    @functools.cached_property
    def async_engine(self) -> AsyncEngine:
        """Its async twin, for the async fixtures. NullPool: a pooled connection belongs to
        the loop that opened it, and loops come and go."""
        from sqlalchemy.ext.asyncio import create_async_engine
        from sqlalchemy.pool import NullPool

        return create_async_engine(self.url, poolclass=NullPool)

    def _connect(self) -> Connection:
        """A new connection; a `ServerError` when there is none (for a server out of slots,
        the same error naming its limit as the plugin's own connections and the
        transactional engine raise)."""
        from sqlalchemy.exc import DBAPIError

        from pytest_celestra.db.server import too_many_clients
        from pytest_celestra.urls import error_text, host_port, mask_text, secrets_of

        try:
            return self.engine.connect()
        except DBAPIError as error:
            if error.orig is not None and too_many_clients(error.orig):
                raise self.manager.connection_limit_error(error.orig) from None
            cause = error_text(error.orig or error, secrets_of(self.url))
            raise ServerError(
                f"could not connect to test database {self.url.database} at "
                f"{host_port(self.url)}: {mask_text(cause)}. Was the server restarted "
                "or stopped? The next test connects again"
            ) from None

    @contextlib.contextmanager
    def session(self, request: pytest.FixtureRequest) -> Iterator[Session]:
        """A rolled-back session for one test; a test that ends its transaction fails at
        teardown, and the database is replaced."""
        with _server_error_as_failure():
            connection, guard = self.connection()
        try:
            with rolled_back_session(connection, guard, self.run.rules) as session:
                yield session
        except TransactionEscapedError as error:
            escape = error
        else:
            return
        self.escaped(request, escape)

    def escaped(self, request: pytest.FixtureRequest, escape: TransactionEscapedError) -> None:
        """Fail the test (at teardown) that ended its fixture's transaction or left state in
        the session: what it did, what it caused, and what to use; first replace this
        database if the test may have changed it."""
        fixture = request.fixturename or "celestra_session"
        nodeid, ended_by = request.node.nodeid, escape.ended_by
        if not escape.replace:
            pytest.fail(
                f"pytest-celestra: {nodeid} left state in the connection {fixture} runs it "
                f"on: {ended_by}. Its database was not changed; the next test gets a new "
                "connection.",
                pytrace=False,
            )
        self.replace()
        if ended_by.startswith((CHAINED[:20], "a transaction was prepared")):
            what = ended_by
        else:
            quoted = f"the statement {ended_by.strip()[:200]!r}"
            statement = ended_by if ended_by == OUTSIDE_SQL else quoted
            what = f"after {statement} the connection was outside any transaction"
        pytest.fail(
            f"pytest-celestra: {nodeid} ended the transaction that {fixture} runs it in: "
            f"{what}, so the plugin could no longer roll back what the test wrote (a COMMIT "
            "keeps it in the database). This process's test database has been replaced by a "
            "fresh clone of its template, so no later test sees any of it. Do not run COMMIT "
            "or ROLLBACK (or the connection's commit()/rollback()) in a "
            f"{fixture} test: session.commit() and session.rollback() are safe (they only "
            "release or roll back a savepoint). For code that must really commit, use the "
            "celestra_transactional_db fixture.",
            pytrace=False,
        )

    def replace(self) -> None:
        """Drop this database, damaged by a test (cutting every connection to it), and
        clone it again under the same name."""
        self._close_connection()
        self.engine.dispose()
        self.manager.discard(self.url)
        self._create(self.url.database)

    def _close_connection(self, *, invalidate: bool = False) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):  # it may be broken: that is why we close it
                if invalidate:
                    self._connection.invalidate()
                self._connection.close()
            self._connection = self._guard = None

    def close(self) -> None:
        self._close_connection()
        self.engine.dispose()
        kept = self.manager.release(self.url)
        if kept is not None:
            self.run.kept.append(kept)


def _hung_up(connection: Connection) -> bool:
    """Whether the server closed this idle connection, without a round trip: an idle
    connection has nothing to read unless the server said goodbye."""
    if connection.closed:
        return True
    try:
        socket = connection.connection.driver_connection.fileno()  # type: ignore[union-attr]
        readable, _, _ = select.select([socket], [], [], 0)
    except (OSError, ValueError, AttributeError):
        return True
    return bool(readable)


def _terminal_line(config: pytest.Config) -> Callable[[str], None]:
    """Prints a line at once, past pytest's capture (an xdist worker's reaches the terminal
    through its inherited stderr); only from the main thread (the summary has the rest)."""
    import sys
    import threading

    def say(line: str) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # a background clone: suspending capture from there would race the test
        capture = config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            sys.stderr.write(f"\npytest-celestra: {line}\n")
            sys.stderr.flush()

    return say


@pytest.fixture(scope="session")
def _celestra_empty_database(
    request: pytest.FixtureRequest, _celestra_databases: DatabaseManager
) -> Iterator[RollbackDatabase]:
    """This process's database with the empty schema."""
    with _server_error_as_failure():
        database = empty_database(_celestra_databases, request.config.stash[RUN_KEY])
    with contextlib.closing(database):
        yield database


@pytest.fixture(scope="session")
def celestra_engine(_celestra_empty_database: RollbackDatabase) -> Engine:
    """Engine of this process's database with the empty Celestra schema (session scope),
    for code that opens its own connections: they see no rows, not what a test writes through
    `celestra_session`, and what they commit stays for later tests."""
    return _celestra_empty_database.engine


@pytest.fixture(scope="session")
def celestra_dsn(celestra_engine: Engine) -> str:
    """URL (`postgresql://...`) of the database behind `celestra_engine`."""
    return libpq_url(celestra_engine.url)


def empty_database(manager: DatabaseManager, run: RunInfo) -> RollbackDatabase:
    """A new test database holding the empty schema (`celestra_session`'s, the lint's)."""
    database = RollbackDatabase(manager, run, lambda name: manager.create_empty(name=name))
    note_schema_differences(database, run)
    return database


def note_schema_differences(database: RollbackDatabase, run: RunInfo) -> None:
    """Add the schema's differences that do not break seeding to the run's summary, once
    per process; read again here, as a cached template was found by an earlier run."""
    if run.schema_noted:
        return
    run.schema_noted = True
    from pytest_celestra.db.drift import compare
    from pytest_celestra.rows.loader import COLUMNS, raw_connection
    from pytest_celestra.schema.app_rules import SchemaRules
    from pytest_celestra.schema.catalog import read_catalog

    with database.engine.connect() as connection:
        catalog = read_catalog(raw_connection(connection))
        connection.rollback()
    if any(table in catalog.tables for table in COLUMNS):
        rules = run.rules if run.rules is not None else SchemaRules()
        run.notes.extend(compare(catalog, rules).notes)


class SeededDatabases:
    """This process's seeded test databases: one per scenario, made when first asked for."""

    def __init__(self, manager: DatabaseManager, run: RunInfo) -> None:
        self.manager = manager
        self.run = run
        self.databases: dict[ScenarioSettings, RollbackDatabase] = {}
        self._rows: dict[ScenarioSettings, Mapping[str, int]] = {}

    def database(self, scenario: ScenarioSettings) -> RollbackDatabase:
        """The database holding `scenario` (cloned from its template once)."""
        if scenario not in self.databases:
            from pytest_celestra.db.user_scenarios import clone_scenario

            manager, anchor = self.manager, self.run.anchor
            with _server_error_as_failure():
                self.databases[scenario] = RollbackDatabase(
                    manager,
                    self.run,
                    lambda name: clone_scenario(manager, scenario, anchor, name=name),
                )
            note_schema_differences(self.databases[scenario], self.run)
        return self.databases[scenario]

    def rows(self, scenario: ScenarioSettings) -> Mapping[str, int]:
        """Rows of each Celestra table committed in the database of `scenario`."""
        if scenario not in self._rows:
            tables = list(scenario.volume.counts)
            counts = ", ".join(f"(SELECT count(*) FROM {table})" for table in tables)
            with self.database(scenario).engine.connect() as connection:
                row = connection.exec_driver_sql(f"SELECT {counts}").one()
            self._rows[scenario] = MappingProxyType(dict(zip(tables, row, strict=True)))
        return self._rows[scenario]

    def close(self) -> None:
        with contextlib.ExitStack() as stack:
            for database in self.databases.values():
                stack.callback(database.close)


@pytest.fixture(scope="session")
def _celestra_seeded_databases(
    request: pytest.FixtureRequest, _celestra_databases: DatabaseManager
) -> Iterator[SeededDatabases]:
    run = request.config.stash[RUN_KEY]
    with contextlib.closing(SeededDatabases(_celestra_databases, run)) as databases:
        yield databases


@pytest.fixture(scope="session")
def _celestra_scenario_templates(
    request: pytest.FixtureRequest, _celestra_databases: DatabaseManager
) -> ScenarioTemplates:
    """The templates of your scenarios this process has built or found."""
    from pytest_celestra.db.user_scenarios import ScenarioTemplates

    return ScenarioTemplates(_celestra_databases, request.config.stash[RUN_KEY].anchor)


def ensure_scenario_template(request: pytest.FixtureRequest, scenario: ScenarioSettings) -> None:
    """Build the template of a scenario of yours in the test's thread, if it needs one."""
    if scenario.builder is not None:
        templates: ScenarioTemplates = request.getfixturevalue("_celestra_scenario_templates")
        with _server_error_as_failure():
            templates.ensure(scenario, request.node.nodeid)


@pytest.fixture(scope="session")
def celestra_seeded_engine(
    request: pytest.FixtureRequest, _celestra_seeded_databases: SeededDatabases
) -> Engine:
    """Engine of this process's database holding the run's scenario (session scope), as
    `celestra_engine` is of the empty one; always the run's, whatever a test's
    `@pytest.mark.celestra` says."""
    return _celestra_seeded_databases.database(request.config.stash[CONFIG_KEY].scenario).engine


@pytest.fixture(scope="session")
def celestra_seeded_dsn(celestra_seeded_engine: Engine) -> str:
    """URL (`postgresql://...`) of the database behind `celestra_seeded_engine`."""
    return libpq_url(celestra_seeded_engine.url)


# --- the per-test sessions and their isolation -----------------------------------------


class TransactionEscapedError(Exception):
    """A test ended the transaction that isolates it, or left state that outlives it;
    `ended_by` says how. With `replace` the database is not to be trusted any more."""

    def __init__(self, ended_by: str, *, replace: bool = True) -> None:
        super().__init__(ended_by)
        self.ended_by = ended_by
        self.replace = replace


OUTSIDE_SQL = "a commit or rollback of the connection itself (e.g. the DB-API connection's)"
"""How the transaction ended when no statement of ours saw it end."""
CHAINED = (
    "the test ended it and the connection went on in another transaction (COMMIT AND "
    "CHAIN, ROLLBACK AND CHAIN, or COMMIT and BEGIN sent as one string): the server "
    "reports the connection's transaction began at {now}, not at {start} when the "
    "plugin began it"
)
"""How the transaction ended when the server shows another one in its place."""

_SESSION_LEFTOVERS = """
SELECT ARRAY(SELECT CASE objsubid WHEN 1 THEN ((classid::bigint << 32) | objid::bigint)::text
                    ELSE classid || ', ' || objid END
             FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory'),
       ARRAY(SELECT gid FROM pg_prepared_xacts WHERE database = current_database());
CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; DEALLOCATE ALL; UNLISTEN *;
SELECT pg_advisory_unlock_all(); DISCARD PLANS; DISCARD TEMP; DISCARD SEQUENCES
"""
"""After the test's rollback: the session advisory locks still held and the database's
prepared transactions; then the reset poolers do (`DISCARD ALL` cannot share a message)."""


class IsolationGuard:
    """Notices when a test ends the transaction it runs in (COMMIT, ROLLBACK, COMMIT AND
    CHAIN, PREPARE TRANSACTION, ...).

    Two views. The driver's transaction status, sent with every reply, costs no round trip:
    once the test's transaction has begun the connection is never idle until the plugin
    rolls back. It is checked after each statement (more statements after a COMMIT would
    hide it in a new transaction), before each one, and at the end. The server's view
    catches a transaction ended and another begun in one reply: the plugin notes when the
    server says the test's began ([`open`][pytest_celestra.plugin.fixtures.IsolationGuard.open])
    and compares at the end ([`escaped`][pytest_celestra.plugin.fixtures.IsolationGuard.escaped]).
    """

    def __init__(self, connection: Connection) -> None:
        from psycopg.pq import TransactionStatus
        from sqlalchemy import event

        self._status = TransactionStatus
        # libpq's own status, kept by the driver from each reply of the server.
        self._pgconn: Any = connection.connection.driver_connection.pgconn  # type: ignore[union-attr]
        self._url = connection.engine.url
        self.start()
        event.listen(connection, "before_cursor_execute", lambda *_: self.ended())
        event.listen(connection, "after_cursor_execute", self._after)

    def start(self) -> None:
        self.begun = False
        self.ended_by: str | None = None
        self.started_at: datetime | None = None

    def open(self, connection: Connection) -> None:
        """Begin the test's transaction (after `connection.begin()`); note when it began."""
        self.started_at = connection.exec_driver_sql("SELECT transaction_timestamp()").scalar()

    def _is_idle(self) -> bool:
        return bool(self._pgconn.transaction_status == self._status.IDLE)

    def _after(self, _connection: object, _cursor: object, statement: str, *_: object) -> None:
        self.begun = True
        if self.ended_by is None and self._is_idle():
            self.ended_by = statement

    def ended(self) -> str | None:
        """What ended the test's transaction as the driver saw it, or None."""
        if self.ended_by is None and self.begun and self._is_idle():
            self.ended_by = OUTSIDE_SQL
        return self.ended_by

    def escaped(self, connection: Connection) -> str | None:
        """Before the rollback: what ended the test's transaction, as the driver or the
        server sees it; None if it is still open."""
        ended = self.ended()
        if ended is not None or self.started_at is None:
            return ended
        now = self._transaction_start(connection)
        if now is None or now == self.started_at:
            return None
        self.ended_by = CHAINED.format(now=now, start=self.started_at)
        return self.ended_by

    def _transaction_start(self, connection: Connection) -> datetime | str | None:
        """When the connection's transaction began, as the server says; None if it cannot
        say (the connection is broken: nothing of it stays)."""
        import psycopg
        from sqlalchemy.exc import DBAPIError

        from pytest_celestra.db.server import connect

        status = self._pgconn.transaction_status
        try:
            if status == self._status.INTRANS:
                started: datetime | None = connection.exec_driver_sql(
                    "SELECT transaction_timestamp()"
                ).scalar()
                return started
            if status == self._status.INERROR:  # it answers nothing: ask from outside
                with connect(self._url, autocommit=True) as other:
                    row = other.execute(
                        "SELECT xact_start FROM pg_stat_activity WHERE pid = %s",
                        (self._pgconn.backend_pid,),
                    ).fetchone()
                # A chained transaction's start is not reported (NULL): not the plugin's.
                return None if row is None else (row[0] or "an unreported time")
        except (DBAPIError, psycopg.Error):
            return None
        return None


def reset_session(connection: Connection) -> None:
    """After the test's rollback: reset what outlives a transaction in the session, as
    connection poolers do. Raises `TransactionEscapedError` for what the test should hear
    of: session advisory locks it held (released now; `replace=False`), prepared
    transactions (these need a fresh database)."""
    import psycopg

    dbapi: Any = connection.connection.dbapi_connection
    try:
        dbapi.autocommit = True  # the reset runs outside any transaction
        cursor = dbapi.cursor()
        cursor.execute(_SESSION_LEFTOVERS)
        locks, prepared = cursor.fetchone()
        cursor.close()
    except psycopg.OperationalError:  # the server closed it: its session state went too
        return
    finally:
        with contextlib.suppress(psycopg.Error):
            dbapi.autocommit = False
    if prepared:
        raise TransactionEscapedError(
            "a transaction was prepared in its database (PREPARE TRANSACTION "
            + ", ".join(repr(gid) for gid in prepared)
            + "), which holds its locks and the server's cleanup until someone ends it"
        )
    if locks:
        keys = ", ".join(f"pg_advisory_lock({key})" for key in locks)
        raise TransactionEscapedError(
            f"the test still held the session advisory lock {keys} after its transaction "
            "ended: a later test taking it would wait forever. The plugin released it. "
            "Take pg_advisory_xact_lock instead, which the rollback releases, or release "
            "the lock (pg_advisory_unlock) before the test ends",
            replace=False,
        )


@contextlib.contextmanager
def rolled_back_session(
    bind: Engine | Connection,
    guard: IsolationGuard | None = None,
    rules: SchemaRules | None = None,
) -> Iterator[Session]:
    """A session in a transaction that is rolled back at the end, commits included.

    The session joins the outer transaction through a savepoint, so `session.commit()` only
    releases a savepoint; factories write into it. `bind` is an engine or a connection
    (`guard` watching it, if given). Raises
    [`TransactionEscapedError`][pytest_celestra.plugin.fixtures.TransactionEscapedError] at the end
    if the code ended the outer transaction itself (a `COMMIT` statement).
    """
    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session

    from pytest_celestra.rows.factories import bound_session

    with contextlib.ExitStack() as stack:
        connection = bind if isinstance(bind, Connection) else stack.enter_context(bind.connect())
        if guard is None:
            guard = IsolationGuard(connection)
        guard.start()
        transaction = connection.begin()
        guard.open(connection)
        session = Session(bind=connection, join_transaction_mode="create_savepoint")
        try:
            with bound_session(session, rules):
                yield session
        finally:
            end_test_transaction(connection, guard, transaction, session)


def end_test_transaction(
    connection: Connection, guard: IsolationGuard, transaction: Transaction, session: Session
) -> None:
    """After a test: roll back its `transaction` (and every savepoint in it: one round
    trip) and reset the session state; raise `TransactionEscapedError` if it was ended."""
    try:
        ended_by = guard.escaped(connection)
        if ended_by is not None:
            raise TransactionEscapedError(ended_by)
        transaction.rollback()
        session.close()
        reset_session(connection)
    except TransactionEscapedError:
        # Its state is not ours to trust: the connection (and its session) ends.
        with contextlib.suppress(Exception):
            connection.invalidate()
        with contextlib.suppress(Exception):
            session.close()
        raise


@pytest.fixture
def celestra_session(
    request: pytest.FixtureRequest, _celestra_empty_database: RollbackDatabase
) -> Iterator[Session]:
    """A SQLAlchemy session on the empty Celestra schema, rolled back after the test,
    commits included. Every factory `create()` and `celestra_<entity>` fixture writes into
    it; their data depends only on `--celestra-seed` and the test."""
    reseed_factories(scenario_of(request.node).seed, request.node.nodeid, "celestra_session")
    with _celestra_empty_database.session(request) as session:
        yield session


@pytest.fixture
def celestra_seeded_db(
    request: pytest.FixtureRequest, _celestra_seeded_databases: SeededDatabases
) -> Iterator[Session]:
    """A SQLAlchemy session on the whole scenario (`--celestra-volume`), rolled back after,
    as `celestra_session`. Seeding happens once (or never, when a cached template matches).

    `@pytest.mark.celestra(volume="small", seed=3)` on the test, its class or module gives
    it that scenario instead, in a database of its own made once per process.
    """
    database = seeded_database(request, _celestra_seeded_databases, "celestra_seeded_db")
    with database.session(request) as session:
        yield session


def seeded_database(
    request: pytest.FixtureRequest, databases: SeededDatabases, fixture: str
) -> RollbackDatabase:
    """The test's seeded database for `fixture`, factories reseeded. Fails a test that also
    uses `celestra_session` (the empty database), or, marked, the run's seeded engine or DSN."""
    scenario = scenario_of(request.node)
    if "celestra_session" in request.fixturenames:
        call = "session.add(UserFactory.build())" if "async" in fixture else "UserFactory()"
        pytest.fail(
            f"a test cannot use {fixture} together with celestra_session or a "
            "celestra_<entity> fixture (those live in the empty database of "
            f"celestra_session): call the factories, e.g. {call}, to add rows "
            "to the seeded database.",
            pytrace=False,
        )
    run_scenario = request.config.stash[CONFIG_KEY].scenario
    shared = [
        name
        for name in ("celestra_seeded_engine", "celestra_seeded_dsn")
        if name in request.fixturenames
    ]
    if scenario != run_scenario and shared:
        verb = "holds" if len(shared) == 1 else "hold"
        pytest.fail(
            f"this test's @pytest.mark.celestra asks for {scenario.describe()}, but "
            f"{' and '.join(shared)} {verb} the run's scenario ({run_scenario.describe()}) "
            "for the whole session. For this test's database use "
            "celestra_seeded_db.get_bind().engine (its .url for a DSN), or drop the marker.",
            pytrace=False,
        )
    ensure_scenario_template(request, scenario)
    reseed_factories(scenario.seed, request.node.nodeid, fixture)
    return databases.database(scenario)


# --- what a test can read about its scenario ---------------------------------------------


@dataclass(frozen=True)
class CelestraScenario:
    """The scenario of a test's seeded database: what `celestra_scenario` gives.

    `volume` ([`Volume`][pytest_celestra.schema.volumes.Volume]: `.name`, `.counts`), `seed`
    and `anchor` (the instant every time column is relative to) are those the database was
    built with: the run's, or the test's `@pytest.mark.celestra`.
    """

    volume: Volume
    seed: int
    anchor: datetime
    _databases: SeededDatabases = field(repr=False, compare=False)
    builder: ScenarioBuilder | None = None
    """Your scenario (`@pytest.mark.celestra(scenario=...)`), if the test asked for one;
    then `volume` is that of its base (the run's if it is built on the empty schema)."""

    @property
    def rows(self) -> Mapping[str, int]:
        """Rows of each Celestra table in the seeded database as every test starts it
        (counted once per process and scenario)."""
        from pytest_celestra.config import ScenarioSettings

        return self._databases.rows(ScenarioSettings(self.volume, self.seed, self.builder))


@pytest.fixture
def celestra_scenario(
    request: pytest.FixtureRequest, _celestra_seeded_databases: SeededDatabases
) -> CelestraScenario:
    """The volume, seed, anchor and row counts of the scenario `celestra_seeded_db` holds
    for this test (its `@pytest.mark.celestra`'s, else the run's):
    ```python
    def test_users(celestra_seeded_db, celestra_scenario):
        assert celestra_scenario.rows["users"] == celestra_scenario.volume.counts["users"]
    ```
    """
    scenario = scenario_of(request.node)
    return CelestraScenario(
        scenario.volume,
        scenario.seed,
        request.config.stash[RUN_KEY].anchor,
        _celestra_seeded_databases,
        scenario.builder,
    )


# --- one fixture per table -------------------------------------------------------


def _entity_fixture(name: str, model: str) -> Any:
    def entity(celestra_session: Session) -> Any:
        from pytest_celestra.rows import factories

        instance = getattr(factories, f"{model}Factory").create()
        celestra_session.flush()
        return instance

    entity.__name__ = name
    entity.__doc__ = (
        f"One {model} ({dict(ENTITIES)[model]}) made by {model}Factory, with its "
        "whole parent chain, in celestra_session; rolled back after the test."
    )
    return pytest.fixture(name=name)(entity)


ENTITY_FIXTURES: dict[str, str] = {
    "celestra_" + re.sub(r"(?<!^)(?=[A-Z])", "_", model).lower(): model
    for model in MODEL_NAMES_IN_FK_ORDER
}
"""`celestra_<entity>` fixture name -> model class name, for every table."""
# Module attributes (celestra_company, celestra_user, ...): where pytest finds fixtures.
globals().update({name: _entity_fixture(name, model) for name, model in ENTITY_FIXTURES.items()})


# --- async fixtures when what they need is missing -------------------------------------


def async_support_problem(config: pytest.Config) -> str | None:
    """What the async fixtures need and how to install it, or None if they can work."""
    if not config.pluginmanager.hasplugin("asyncio"):
        return (
            "pytest-asyncio, which runs async tests and fixtures: pip install pytest-asyncio "
            "(then mark async tests @pytest.mark.asyncio, or set asyncio_mode = auto)"
        )
    if importlib.util.find_spec("greenlet") is None:
        return (
            "SQLAlchemy's asyncio support, the greenlet package: pip install 'sqlalchemy[asyncio]'"
        )
    return None


class AsyncFixturesUnavailable:
    """Stand-ins for `celestra_async_session`/`celestra_async_seeded_db` that say
    what to install."""

    def __init__(self, problem: str) -> None:
        self.problem = problem

    @pytest.fixture
    def celestra_async_session(self) -> None:
        """An AsyncSession on the empty schema; needs pytest-asyncio (not active here)."""
        pytest.fail(f"celestra_async_session needs {self.problem}.", pytrace=False)

    @pytest.fixture
    def celestra_async_seeded_db(self) -> None:
        """An AsyncSession on the whole scenario; needs pytest-asyncio (not active here)."""
        pytest.fail(f"celestra_async_seeded_db needs {self.problem}.", pytrace=False)
