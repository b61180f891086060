"""`celestra_transactional_db`, `_engine`, `_dsn`: commits are real, and gone after the test.

Each test gets a database holding the whole scenario, in which it may commit from any
connection (its own engines, threads, subprocesses); nothing reaches another test. Cloning
takes 50-1,000 ms on a busy server and a drop forces a checkpoint on PostgreSQL 15, far
more than a test (`benchmarks/bench_transactional.py`), so

* clones are made **ahead**, two per scenario, by a background thread of this process;
* every clone gets a copy of each table (schema `celestra_pristine`) and **change
  tracking** (a statement trigger per table). After a test, other sessions on its database
  are ended and one query reads the triggers' record and a fingerprint of the catalogs,
  sequences, settings and prepared transactions;
* a database nothing was committed to is **reused** by the next test of its scenario;
* one whose tables only had rows written is **restored** in the background (those tables
  and the ones referencing them reloaded from the copies); any other change gets it
  **dropped** there.

A test that fails never leaves its database to another. With `--celestra-keep` every
test's database is kept and listed. Databases are made by
[`DatabaseManager`][pytest_celestra.db.database.DatabaseManager], so a killed run's are swept.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from pytest_celestra.db.server import connect
from pytest_celestra.errors import ServerError, UnsafeDatabaseError
from pytest_celestra.plugin.fixtures import ensure_scenario_template, reseed_factories
from pytest_celestra.plugin.run_info import RUN_KEY, scenario_of
from pytest_celestra.urls import libpq_url

if TYPE_CHECKING:
    from collections.abc import Iterator

    import psycopg
    from sqlalchemy.engine import URL, Engine, ExceptionContext
    from sqlalchemy.orm import Session

    from pytest_celestra.config import ScenarioSettings
    from pytest_celestra.db.database import DatabaseManager
    from pytest_celestra.plugin.run_info import RunInfo

AHEAD = 2
"""Clones made ahead per scenario: enough for a test that writes, while the next is made."""
STRATEGY = "WAL_LOG"
"""On PostgreSQL 15 WAL_LOG beat FILE_COPY, whose checkpoints cost 100-2,000 ms (benchmark)."""

TRACKING_SCHEMA = "celestra_tracking"
PRISTINE_SCHEMA = "celestra_pristine"
"""Where each clone keeps a copy of every table as the template had it, `p<table oid>`."""
_TABLES = f"""
SELECT c.oid::regclass AS tab, c.oid, c.relkind
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT LIKE 'pg\\_%'
  AND n.nspname NOT IN ('information_schema', '{TRACKING_SCHEMA}')
"""
"""The tables (`tab`, `oid`, `relkind`) of a database, the copies included."""
_USER_TABLES = f"{_TABLES}  AND n.nspname <> '{PRISTINE_SCHEMA}'\n"
"""The user tables of a database, ours excluded."""
_INSTALL_COPIES_AND_TRIGGERS = f"""
CREATE SCHEMA {PRISTINE_SCHEMA};
DO $$
DECLARE
    t record;
BEGIN
    FOR t IN {_USER_TABLES} AND c.relkind = 'r' LOOP
        EXECUTE format('CREATE TABLE {PRISTINE_SCHEMA}.%I AS TABLE %s', 'p' || t.oid, t.tab);
    END LOOP;
END $$;
CREATE SCHEMA {TRACKING_SCHEMA};
CREATE TABLE {TRACKING_SCHEMA}.changed (relid oid NOT NULL);
CREATE FUNCTION {TRACKING_SCHEMA}.mark() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {TRACKING_SCHEMA}.changed VALUES (TG_RELID);
    RETURN NULL;
END $$;
DO $$
DECLARE
    t record;
BEGIN
    FOR t IN {_TABLES} LOOP
        EXECUTE format('CREATE TRIGGER celestra_tracking AFTER INSERT OR UPDATE OR DELETE '
                       'OR TRUNCATE ON %s FOR EACH STATEMENT '
                       'EXECUTE FUNCTION {TRACKING_SCHEMA}.mark()', t.tab);
        EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER celestra_tracking', t.tab);
    END LOOP;
END $$;
"""
"""A copy of each table, then statement triggers (fired even under
`session_replication_role = replica`) on every table, copies included."""
_OBJECT_COLUMN_ROWS = """
    ('pg_aggregate', 'aggfnoid'), ('pg_attribute', 'attrelid'), ('pg_description', 'objoid'),
    ('pg_foreign_table', 'ftrelid'), ('pg_index', 'indexrelid'), ('pg_inherits', 'inhrelid'),
    ('pg_init_privs', 'objoid'), ('pg_largeobject', 'loid'), ('pg_range', 'rngtypid'),
    ('pg_partitioned_table', 'partrelid'), ('pg_seclabel', 'objoid'), ('pg_sequence', 'seqrelid'),
    ('pg_subscription_rel', 'srrelid'), ('pg_ts_config_map', 'mapcfg')"""
"""Catalogs without an `oid` column -> the column naming a row's object, so only user
objects' rows are read (by index); a catalog with neither (`pg_depend`) is read whole."""
_UNSETTLED = ("pg_statistic", "pg_statistic_ext_data")
"""Catalogs the server rewrites by itself (autovacuum's ANALYZE): not what a test made."""
FINGERPRINT_FUNCTION = f"{TRACKING_SCHEMA}.fingerprint"
INSTALL_FINGERPRINT = f"""
DO $$
DECLARE
    parts text;
BEGIN
    SELECT string_agg(format(
               '(SELECT count(*) || '':'' || coalesce(max(xmin::text::bigint), 0) '
               'FROM pg_catalog.%I%s)',
               c.relname,
               CASE WHEN k.col IS NULL THEN '' ELSE format(' WHERE %I::oid >= 16384', k.col) END),
           $sep$ || '|' || $sep$ ORDER BY c.relname)
    INTO parts
    FROM pg_class c
    LEFT JOIN LATERAL (
        SELECT coalesce(
            (SELECT 'oid' FROM pg_attribute a
             WHERE a.attrelid = c.oid AND a.attname = 'oid' AND NOT a.attisdropped),
            (SELECT m.col FROM (VALUES {_OBJECT_COLUMN_ROWS}) m(tab, col)
             WHERE m.tab = c.relname)) AS col
    ) k ON true
    WHERE c.relnamespace = 'pg_catalog'::regnamespace AND c.relkind = 'r' AND NOT c.relisshared
      AND c.relname NOT IN {_UNSETTLED!r};
    EXECUTE 'CREATE FUNCTION {FINGERPRINT_FUNCTION}() RETURNS text LANGUAGE plpgsql '
        'STABLE AS $body$ BEGIN RETURN ' || parts || $rest$
        || '|' || (SELECT xmin::text || ':' || coalesce(shobj_description(oid, 'pg_database'), '')
                   FROM pg_database WHERE datname = current_database())
        || '|' || (SELECT count(*) || ':' || coalesce(max(s.xmin::text::bigint), 0)
                   FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
                   WHERE d.datname = current_database())
        || '|' || (SELECT count(*) FROM pg_replication_slots
                   WHERE database = current_database())
        || '|' || (SELECT count(*) FROM pg_subscription s JOIN pg_database d
                   ON d.oid = s.subdbid WHERE d.datname = current_database())
        || '|' || (SELECT count(*) FROM pg_prepared_xacts
                   WHERE database = current_database())
        || '|' || coalesce((SELECT string_agg(coalesce(last_value, 0)::text, ','
                            ORDER BY schemaname, sequencename) FROM pg_sequences), '');
        END $body$ $rest$;
END $$;
"""
"""A function (PL/pgSQL: planned once per session) whose value changes whenever anything
but the tracked tables' rows changes. Written from the catalog as a whole, not a list of
object kinds: every catalog (a changed row gets a newer `xmin`, a dropped one lowers the
count), what shared catalogs hold about the database, and the sequences' values."""
INSTALL_TRACKING = _INSTALL_COPIES_AND_TRIGGERS + INSTALL_FINGERPRINT
"""Installed in each clone, in one transaction, before a test gets it."""
FINGERPRINT = f"SELECT {FINGERPRINT_FUNCTION}()"
END_OTHER_SESSIONS = """
SELECT count(pg_terminate_backend(pid, 1000)) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
"""
"""Ends every other session on the database (waiting up to a second for each), so what
they were committing is committed or gone before the check."""
_OWN = (
    "SELECT oid, coalesce(shobj_description(oid, 'pg_database'), '') AS comment "
    "FROM pg_database WHERE datname = current_database()"
)
"""The database's oid and the comment on it."""
_CHECK = f"SELECT ARRAY(SELECT DISTINCT relid FROM {TRACKING_SCHEMA}.changed), ({FINGERPRINT})"
"""The tables written to, and the fingerprint now."""
_FOREIGN_KEYS = "SELECT confrelid, conrelid FROM pg_constraint WHERE contype = 'f'"
"""Foreign keys between user tables: (referenced table oid, referencing table oid)."""
RESTORE_MAX_ROWS = 10_000
"""Above this many rows to reload (as the template's statistics count them), a fresh clone
is cheaper than a restore: 100,000 rows took 13 s to reload on the loaded benchmark
machine, a clone 2-4 s."""
_RESTORABLE = f"""
SELECT (SELECT count(*) FROM pg_tables WHERE schemaname = '{PRISTINE_SCHEMA}'
        AND substr(tablename, 2) = ANY(%(tables)s::oid[]::text[])) = cardinality(%(tables)s)
   AND NOT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = ANY(%(tables)s::oid[])
                   AND NOT tgisinternal AND tgname <> 'celestra_tracking')
   AND NOT EXISTS (SELECT FROM pg_rewrite WHERE ev_class = ANY(%(tables)s::oid[]))
   AND (SELECT sum(greatest(reltuples, 0)) FROM pg_class WHERE oid = ANY(%(tables)s::oid[]))
       <= %(max_rows)s
"""
"""Can these tables (oids) be reloaded from their copies? Each has one, no trigger (but
ours) or rule that would write elsewhere, and not too many rows."""


def restore_order(changed: set[int], foreign_keys: list[tuple[int, int]]) -> list[int] | None:
    """The tables to empty and reload so `changed` is as it was: those and every table
    referencing them, parents first; None if their references form a cycle."""
    tables = set(changed)
    while more := {child for parent, child in foreign_keys if parent in tables} - tables:
        tables |= more
    parents: dict[int, set[int]] = {table: set() for table in tables}
    for parent, child in foreign_keys:
        if child in tables and parent in tables and parent != child:
            parents[child].add(parent)
    order: list[int] = []
    while parents:
        free = sorted(table for table, waiting in parents.items() if not waiting)
        if not free:
            return None
        order += free
        for table in free:
            del parents[table]
        for waiting in parents.values():
            waiting.difference_update(free)
    return order


@dataclass
class TestDatabase:
    """One database handed to tests of one scenario, and its connection for checks."""

    __test__ = False  # not a pytest test class

    url: URL
    scenario: ScenarioSettings
    fingerprint: str = ""
    monitor: psycopg.Connection[Any] | None = field(default=None, repr=False)
    comment: str = field(default="", repr=False)
    oid: int | None = field(default=None, repr=False)
    """Its oid when made: a database of the same name made by a test differs."""

    def changes(self) -> set[int] | None:
        """End other sessions on it; the tables written to since it was made or restored,
        or None if anything else changed (DDL, sequences, ...)."""
        import psycopg

        if self.monitor is None:
            return None
        try:
            row = self._check()
        except psycopg.OperationalError:  # the server restarted, or a test ended our session
            self.close_monitor()
            try:
                self.monitor = connect(self.url, autocommit=True)
                if self._own()[0] != self.oid:  # dropped and made again by a test
                    self.close_monitor()
                    return None
                row = self._check()
            except psycopg.Error:
                return None
        except psycopg.Error:  # assume the worst
            return None
        return None if row is None or row[1] != self.fingerprint else set(row[0])

    def _check(self) -> Any:
        assert self.monitor is not None
        # One round trip; the second statement takes its snapshot after the first.
        cursor = self.monitor.execute(f"{END_OTHER_SESSIONS};\n{_CHECK}")
        cursor.nextset()
        return cursor.fetchone()

    def _own(self) -> tuple[int | None, str]:
        assert self.monitor is not None
        row = self.monitor.execute(_OWN).fetchone()
        return (None, "") if row is None else (int(row[0]), row[1])

    def reclaim_comment(self) -> None:
        """Put back the plugin's comment if a test changed it: without it the plugin would
        refuse to drop the database. Only through the monitor, on this very database (one
        dropped and made again by a test ended it)."""
        import psycopg

        from pytest_celestra.db.database import set_comment

        if self.monitor is None or not self.comment:
            return
        with contextlib.suppress(psycopg.Error):
            oid, comment = self._own()
            if comment != self.comment and oid == self.oid:
                set_comment(self.monitor, str(self.url.database), self.comment)

    def restore(self, changed: set[int], max_rows: float = RESTORE_MAX_ROWS) -> bool:
        """Reload the `changed` tables (and those referencing them) from the copies; False
        (nothing done) if it cannot be done, or would reload more than `max_rows` rows."""
        import psycopg

        assert self.monitor is not None
        connection = self.monitor
        try:
            with connection.transaction():
                order = restore_order(changed, connection.execute(_FOREIGN_KEYS).fetchall())
                if order is None:
                    return False
                restorable = connection.execute(
                    _RESTORABLE, {"tables": order, "max_rows": max_rows}
                ).fetchone()
                if restorable is None or not restorable[0]:
                    return False
                names = dict(connection.execute(f"SELECT oid, tab::text FROM ({_USER_TABLES}) t"))
                # DELETE, children first, not TRUNCATE: no new files, no catalog change.
                for table in reversed(order):
                    connection.execute(f"DELETE FROM {names[table]}")
                for table in order:
                    connection.execute(
                        f"INSERT INTO {names[table]} OVERRIDING SYSTEM VALUE "
                        f"TABLE {PRISTINE_SCHEMA}.p{table}"
                    )
                connection.execute(f"DELETE FROM {TRACKING_SCHEMA}.changed")
        except psycopg.Error:  # e.g. a generated column: a fresh clone will do
            return False
        return True

    def close_monitor(self) -> None:
        if self.monitor is not None:
            with contextlib.suppress(Exception):  # a dead connection is closed anyway
                self.monitor.close()
            self.monitor = None


ATTEMPTS = (0.0, 0.5, 2.0)
"""Pauses (s) before each attempt of a background job that lost the server (a restart
takes a second or two)."""


class TransactionalDatabases:
    """This process's per-test databases: made ahead, checked after each test, reused if
    untouched, restored or dropped in the background otherwise.

    `ahead` 0 makes and drops every clone in the test's thread; `reuse` False gives every
    test a fresh clone (the benchmark compares such variants).

    Each background job fails alone: one that lost the server is tried again (`ATTEMPTS`);
    a clone that still cannot be made is the error of the test waiting for it; a database
    that cannot be dropped is named once in the run's summary. Drops go before new clones,
    so the databases on the server stay few.
    """

    def __init__(
        self,
        manager: DatabaseManager,
        run: RunInfo,
        *,
        ahead: int = AHEAD,
        reuse: bool = True,
        strategy: str | None = STRATEGY,
    ) -> None:
        self.manager = manager
        self.run = run
        self.ahead = ahead
        self.reuse = reuse and not manager.keep
        self.strategy = strategy
        self._ready: dict[ScenarioSettings, deque[TestDatabase]] = {}
        self._to_drop: deque[TestDatabase] = deque()
        self._to_restore: deque[tuple[TestDatabase, set[int]]] = deque()
        self._changed = threading.Condition()
        self._closing = False
        self._failed: dict[ScenarioSettings, str] = {}
        """Scenarios whose clone could not be made -> the message for the test waiting."""
        self._worker: threading.Thread | None = None

    def take(self, scenario: ScenarioSettings) -> TestDatabase:
        """A database holding `scenario` that no test has changed. Raises
        [`ServerError`][pytest_celestra.errors.ServerError] if none could be made."""
        with self._changed:
            ready = self._ready.setdefault(scenario, deque())
            if self.ahead == 0:
                return ready.popleft() if ready else self._make(scenario)
            self._failed.pop(scenario, None)  # ask for one again
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._work, name="celestra-transactional", daemon=True
                )
                self._worker.start()
            self._changed.notify_all()
            while not ready:
                if scenario in self._failed:
                    raise ServerError(self._failed[scenario])
                self._changed.wait(timeout=1)
            database = ready.popleft()
            self._changed.notify_all()  # make the next one
        return database

    def give_back(self, database: TestDatabase, *, failed: bool) -> str | None:
        """After the test: reuse `database` if nothing was committed to it, restore it if
        only rows were, else (or if the test failed) drop it. With `--celestra-keep`: keep
        it, return its URL."""
        if self.manager.keep:
            database.close_monitor()
            return self.manager.release(database.url)
        changed = database.changes() if self.reuse and not failed else None
        if changed == set():
            with self._changed:
                self._ready.setdefault(database.scenario, deque()).appendleft(database)
        elif changed is None:
            self._discard(database)
        elif self.ahead == 0:
            self._repair(database, changed)
        else:
            self._post(self._to_restore, (database, changed))
        return None

    def _post(self, queue: deque[Any], item: Any) -> None:
        """Append `item` to one of the queues the thread and `take` share; wake them."""
        with self._changed:
            queue.append(item)
            self._changed.notify_all()

    def close(self) -> None:
        """Stop the background thread; drop every database made ahead or left to drop."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        if self._worker is not None:
            self._worker.join()
        for ready in self._ready.values():
            self._to_drop.extend(ready)
            ready.clear()
        self._to_drop.extend(database for database, _ in self._to_restore)
        self._to_restore.clear()
        while self._to_drop:
            self._run_job("drop", self._to_drop.popleft())

    def _make(self, scenario: ScenarioSettings) -> TestDatabase:
        from pytest_celestra.db.user_scenarios import clone_scenario

        url = clone_scenario(
            self.manager, scenario, self.run.anchor, label="transactional", strategy=self.strategy
        )
        database = TestDatabase(url, scenario)
        try:
            monitor = connect(url, autocommit=True)
            database.monitor = monitor
            with monitor.transaction():
                monitor.execute(INSTALL_TRACKING)
            row = monitor.execute(f"SELECT ({FINGERPRINT}), * FROM ({_OWN}) own").fetchone()
            assert row is not None
            database.fingerprint, database.oid, database.comment = str(row[0]), row[1], row[2]
        except BaseException:
            # Dropped as any other (with the thread's retries while a restarted server comes
            # back, else at the end of the run, else a note): a drop tried once here and
            # failing forgot the database, and left it on the server.
            self._post(self._to_drop, database)
            raise
        return database

    def _repair(self, database: TestDatabase, changed: set[int]) -> None:
        """Restore what a test wrote and make `database` ready again, else drop it."""
        if database.restore(changed):
            self._post(self._ready[database.scenario], database)
        else:
            self._discard(database)

    def _discard(self, database: TestDatabase) -> None:
        database.reclaim_comment()
        database.close_monitor()
        if self.ahead == 0:
            self._drop(database)
        else:
            self._post(self._to_drop, database)

    def _drop(self, database: TestDatabase) -> None:
        database.close_monitor()
        self.manager.discard(database.url)

    def _next_job(self) -> tuple[str, Any] | None:
        """What the thread does next: restores first (fastest way to a ready database), then
        drops (a clone at `large` is 65 MB), then a clone a test may be waiting for, then
        clones up to `ahead`. None when closing."""
        with self._changed:
            while not self._closing:
                if self._to_restore:
                    return ("restore", self._to_restore.popleft())
                if self._to_drop:
                    return ("drop", self._to_drop.popleft())
                short = [
                    scenario
                    for scenario, ready in self._ready.items()
                    if len(ready) < self.ahead and scenario not in self._failed
                ]
                if short:  # one with no clone ready first
                    return ("make", min(short, key=lambda scenario: bool(self._ready[scenario])))
                self._changed.wait()
            return None

    def _work(self) -> None:
        while (job := self._next_job()) is not None:
            self._run_job(*job)

    def _run_job(self, kind: str, subject: Any) -> None:
        """Run one job to its end; its failure is its own (see the class)."""
        import psycopg

        for pause in ATTEMPTS:
            time.sleep(pause)
            try:
                if kind == "restore":
                    self._repair(*subject)
                elif kind == "drop":
                    if subject.url.database not in self.manager.created:  # an earlier attempt's
                        self.manager.created.append(str(subject.url.database))
                    self._drop(subject)
                else:
                    self._post(self._ready[subject], self._make(subject))
                return
            except (psycopg.OperationalError, ServerError) as error:
                last: BaseException = error  # the server: restarted, or gone
            except Exception as error:  # contained: reported below, once
                last = error
                break
        self._report(kind, subject, last)

    def _report(self, kind: str, subject: Any, error: BaseException) -> None:
        """Say once, scrubbed, which job failed and on which database."""
        from pytest_celestra.db.database import undropped_note
        from pytest_celestra.urls import error_text, mask_text, secrets_of

        what = mask_text(error_text(error, secrets_of(self.manager.server.url)))
        if kind == "make":
            scenario: ScenarioSettings = subject
            with self._changed:
                self._failed[scenario] = (
                    f"could not make a database for {scenario.describe()} in the "
                    f"background: {what}. The next test asks for one again"
                )
                self._changed.notify_all()
            return
        if kind == "restore":  # not ready again: drop it instead, as any other change
            self._post(self._to_drop, subject[0])
            return
        name = subject.url.database
        if isinstance(error, UnsafeDatabaseError):
            note = (
                f"left test database {name}: a test dropped it and made another of that "
                "name (it no longer carries the plugin's comment); drop it yourself"
            )
        else:
            note = undropped_note(str(name), what)
        if name in self.manager.created:
            self.manager.created.remove(str(name))
        self.run.notes.append(note)


@pytest.fixture(scope="session")
def _celestra_transactional_databases(
    request: pytest.FixtureRequest, _celestra_databases: DatabaseManager
) -> Iterator[TransactionalDatabases]:
    run = request.config.stash[RUN_KEY]
    with contextlib.closing(TransactionalDatabases(_celestra_databases, run)) as databases:
        yield databases


@pytest.fixture
def celestra_transactional_engine(
    request: pytest.FixtureRequest, _celestra_transactional_databases: TransactionalDatabases
) -> Iterator[Engine]:
    """Engine of a database of this test's own, holding the whole scenario (the run's or
    that of the test's `@pytest.mark.celestra`). Whatever the test commits there, through
    any connection, thread or subprocess, is gone before the next test."""
    from sqlalchemy import create_engine, event

    from pytest_celestra.db.server import too_many_clients
    from pytest_celestra.plugin.fixtures import _server_error_as_failure

    databases = _celestra_transactional_databases
    scenario = scenario_of(request.node)
    ensure_scenario_template(request, scenario)  # here, not in the background thread
    with _server_error_as_failure():
        database = databases.take(scenario)
    engine = create_engine(database.url)
    manager = databases.manager

    @event.listens_for(engine, "handle_error")
    def name_the_connection_limit(context: ExceptionContext) -> BaseException | None:
        """A connection of the test's refused for want of a slot fails with the plugin's
        error naming the server's limit and what to change, not the driver's text."""
        error = context.original_exception
        return manager.connection_limit_error(error) if too_many_clients(error) else None

    try:
        yield engine
    finally:
        engine.dispose()
        kept = databases.give_back(database, failed=_failed(request.node))
        if kept is not None:
            request.config.stash[RUN_KEY].kept.append(kept)


@pytest.fixture
def celestra_transactional_dsn(celestra_transactional_engine: Engine) -> str:
    """URL (`postgresql://...`) of the database behind `celestra_transactional_engine`,
    for code that builds its own engine or runs in a subprocess."""
    return libpq_url(celestra_transactional_engine.url)


@pytest.fixture
def celestra_transactional_db(
    request: pytest.FixtureRequest, celestra_transactional_engine: Engine
) -> Iterator[Session]:
    """A SQLAlchemy session on this test's own database; its commits are real.

    Factories' `create()` goes into it; `celestra_transactional_db.commit()` makes
    their rows visible to every other connection. All of it is gone after the test.
    """
    from sqlalchemy.orm import Session

    from pytest_celestra.rows.factories import bound_session

    both = [
        name for name in ("celestra_session", "celestra_seeded_db") if name in request.fixturenames
    ]
    if both:
        pytest.fail(
            f"a test cannot use celestra_transactional_db together with {' and '.join(both)}: "
            "factories write into one session. Use celestra_transactional_db alone (it holds "
            "the whole scenario too), or celestra_transactional_engine beside the other.",
            pytrace=False,
        )
    scenario = scenario_of(request.node)
    reseed_factories(scenario.seed, request.node.nodeid, "celestra_transactional_db")
    rules = request.config.stash[RUN_KEY].rules
    with Session(celestra_transactional_engine) as session, bound_session(session, rules):
        yield session


def _failed(item: pytest.Item) -> bool:
    return any(report.failed for report in item.stash.get(_REPORTS_KEY, {}).values())


_REPORTS_KEY = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Record each phase's report on the item, so teardown knows if the test failed."""
    report: pytest.TestReport = yield
    item.stash.setdefault(_REPORTS_KEY, {})[report.when] = report
    return report
