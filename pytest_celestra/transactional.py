"""``celestra_transactional_db``, ``_engine``, ``_dsn``: commits are real, and gone after the test.

Each test that asks for one of them gets a database holding the whole scenario, in which
it may commit from any connection (code under test with its own engine, threads,
subprocesses). Nothing it commits reaches another test. How, chosen by measurement
(``benchmarks/bench_transactional.py``): cloning a template takes 50-300 ms on a busy
server, far more than a test, so

* clones are made **ahead**, a few per scenario, by a background thread of this process,
  which also drops the used ones;
* every clone gets **change tracking** first: a statement trigger on each table records
  that it was written to. After a test, other sessions on its database are ended and one
  query checks the triggers' record, a fingerprint of the catalogs (DDL) and the sequence
  values. A database nothing was committed to is **reused** by the next test of the
  same scenario (it holds exactly what a fresh clone holds); any other is dropped in the
  background and the next test takes a fresh clone. So a test that only reads costs a
  query, and one that writes costs a clone, made while earlier tests ran.

A test that fails or errors never leaves its database to another test. With
``--celestra-keep`` every test's database is kept and listed. Databases are created
through :class:`~pytest_celestra.database.DatabaseManager`, so they carry the plugin's
comment and are swept like its other test databases if a run is killed.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from pytest_celestra.fixtures import RUN_KEY, reseed_factories, scenario_of
from pytest_celestra.server import connect, libpq_url

if TYPE_CHECKING:
    from collections.abc import Iterator

    import psycopg
    from sqlalchemy.engine import URL, Engine
    from sqlalchemy.orm import Session

    from pytest_celestra.config import Scenario
    from pytest_celestra.database import DatabaseManager
    from pytest_celestra.fixtures import RunInfo

#: Clones made ahead per scenario: enough for a test that writes, while the next is made.
AHEAD = 2
#: ``CREATE DATABASE`` strategy: on PostgreSQL 15 WAL_LOG beat FILE_COPY, whose two
#: checkpoints cost 100-2,000 ms on a server other sessions write to (see the benchmark).
STRATEGY = "WAL_LOG"

TRACKING_SCHEMA = "celestra_tracking"
#: Statement triggers (fired even under ``session_replication_role = replica``) that
#: record which tables were written to; installed in each clone before a test gets it.
INSTALL_TRACKING = f"""
CREATE SCHEMA {TRACKING_SCHEMA};
CREATE TABLE {TRACKING_SCHEMA}.changed (relid oid NOT NULL);
CREATE FUNCTION {TRACKING_SCHEMA}.mark() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {TRACKING_SCHEMA}.changed VALUES (TG_RELID);
    RETURN NULL;
END $$;
DO $$
DECLARE
    tab regclass;
BEGIN
    FOR tab IN
        SELECT c.oid::regclass FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND n.nspname NOT LIKE 'pg\\_%'
          AND n.nspname NOT IN ('information_schema', '{TRACKING_SCHEMA}')
    LOOP
        EXECUTE format('CREATE TRIGGER celestra_tracking AFTER INSERT OR UPDATE OR DELETE '
                       'OR TRUNCATE ON %s FOR EACH STATEMENT '
                       'EXECUTE FUNCTION {TRACKING_SCHEMA}.mark()', tab);
        EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER celestra_tracking', tab);
    END LOOP;
END $$;
"""
#: Catalogs whose rows change with any DDL, comment, grant or large object (a changed row
#: gets a newer ``xmin``, a dropped one lowers the count) -> the column holding the oid of
#: the object a row is about: only user objects (oid >= 16384) count, found by index.
_CATALOGS = {
    "pg_class": "oid",
    "pg_attribute": "attrelid",
    "pg_attrdef": "adrelid",
    "pg_constraint": "oid",
    "pg_index": "indexrelid",
    "pg_proc": "oid",
    "pg_type": "oid",
    "pg_trigger": "oid",
    "pg_rewrite": "oid",
    "pg_sequence": "seqrelid",
    "pg_description": "objoid",
    "pg_enum": "oid",
    "pg_inherits": "inhrelid",
    "pg_namespace": None,  # "public" is older than 16384
    "pg_policy": None,
    "pg_extension": None,
    "pg_largeobject_metadata": None,
    "pg_default_acl": None,
    "pg_event_trigger": None,
    "pg_publication": None,
}


def _catalog_state(catalog: str, oid_column: str | None) -> str:
    where = "" if oid_column is None else f" WHERE {oid_column} >= 16384"
    return f"(SELECT count(*) || ':' || coalesce(max(xmin::text::bigint), 0) FROM {catalog}{where})"


#: One text that changes whenever anything but the tracked tables' rows changes.
FINGERPRINT = "SELECT concat_ws('|', {catalogs}, {sequences}, {settings}, {prepared})".format(
    catalogs=", ".join(_catalog_state(*item) for item in _CATALOGS.items()),
    sequences="(SELECT string_agg(coalesce(last_value, 0)::text, ',' ORDER BY schemaname, "
    "sequencename) FROM pg_sequences)",
    settings="(SELECT count(*) FROM pg_db_role_setting s JOIN pg_database d "
    "ON d.oid = s.setdatabase WHERE d.datname = current_database())",
    prepared="(SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database())",
)
#: Ends every other session on the database (the code under test's pooled connections,
#: with their locks, LISTENs and open transactions), waiting up to a second for each, so
#: that what they were committing is either committed or gone before the check.
END_OTHER_SESSIONS = """
SELECT count(pg_terminate_backend(pid, 1000)) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
"""
#: Was a tracked table written to, and the fingerprint now.
_CHECK = f"SELECT EXISTS (SELECT FROM {TRACKING_SCHEMA}.changed), ({FINGERPRINT})"


@dataclass
class TestDatabase:
    """One database handed to tests of one scenario, and its connection for checks."""

    __test__ = False  # not a pytest test class

    url: URL
    scenario: Scenario
    fingerprint: str = ""
    monitor: psycopg.Connection[Any] | None = field(default=None, repr=False)

    def unchanged(self) -> bool:
        """End other sessions on it; True if nothing was committed since it was made."""
        import psycopg

        if self.monitor is None:
            return False
        try:
            self.monitor.execute(END_OTHER_SESSIONS)
            row = self.monitor.execute(_CHECK).fetchone()
        except psycopg.Error:  # e.g. the test ended our session too: assume the worst
            return False
        return row is not None and not row[0] and row[1] == self.fingerprint

    def close_monitor(self) -> None:
        if self.monitor is not None:
            with contextlib.suppress(Exception):  # a dead connection is closed anyway
                self.monitor.close()
            self.monitor = None


class TransactionalDatabases:
    """This process's per-test databases: made ahead, checked after each test, reused if
    untouched, dropped in the background otherwise.

    ``ahead`` 0 makes and drops every clone in the test's own thread; ``reuse`` False
    gives every test a fresh clone. The benchmark compares such variants; the fixtures
    use the defaults.
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
        self._ready: dict[Scenario, deque[TestDatabase]] = {}
        self._to_drop: deque[TestDatabase] = deque()
        self._changed = threading.Condition()
        self._closing = False
        self._error: BaseException | None = None
        self._worker: threading.Thread | None = None

    # --- what the fixtures call -------------------------------------------------------

    def take(self, scenario: Scenario) -> TestDatabase:
        """A database holding ``scenario`` that no test has changed."""
        with self._changed:
            ready = self._ready.setdefault(scenario, deque())
            if self.ahead == 0:
                return ready.popleft() if ready else self._make(scenario)
            self._start()
            self._changed.notify_all()
            while not ready:
                if self._error is not None:
                    raise self._error
                self._changed.wait(timeout=1)
            database = ready.popleft()
            self._changed.notify_all()  # make the next one
        return database

    def give_back(self, database: TestDatabase, *, failed: bool) -> str | None:
        """After the test: reuse ``database`` if nothing was committed to it, else drop it
        (or with ``--celestra-keep`` keep it and return its URL)."""
        if self.manager.keep:
            database.close_monitor()
            return self.manager.release(database.url)
        if self.reuse and not failed and database.unchanged():
            with self._changed:
                self._ready.setdefault(database.scenario, deque()).appendleft(database)
            return None
        self._discard(database)
        return None

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
        while self._to_drop:
            self._drop(self._to_drop.popleft())

    # --- making and dropping ----------------------------------------------------------

    def _make(self, scenario: Scenario) -> TestDatabase:
        """Clone the scenario's template and install the change tracking in the clone."""
        url = self.manager.create_seeded(
            scenario.volume,
            scenario.seed,
            self.run.anchor,
            label="transactional",
            strategy=self.strategy,
        )
        database = TestDatabase(url, scenario)
        try:
            monitor = connect(url, autocommit=True)
            database.monitor = monitor
            with monitor.transaction():
                monitor.execute(INSTALL_TRACKING)
            row = monitor.execute(FINGERPRINT).fetchone()
            database.fingerprint = "" if row is None else str(row[0])
        except BaseException:
            self._drop(database)
            raise
        return database

    def _discard(self, database: TestDatabase) -> None:
        database.close_monitor()
        if self.ahead == 0:
            self._drop(database)
            return
        with self._changed:
            self._to_drop.append(database)
            self._changed.notify_all()

    def _drop(self, database: TestDatabase) -> None:
        database.close_monitor()
        self.manager.release(database.url, keep=False)

    def _start(self) -> None:
        """Start the background thread (the caller holds ``_changed``)."""
        if self._worker is None:
            self._worker = threading.Thread(
                target=self._work, name="celestra-transactional", daemon=True
            )
            self._worker.start()

    def _next_job(self) -> tuple[str, Any] | None:
        """What the thread does next: a clone a test may be waiting for comes first, then
        drops, then clones up to ``ahead``. None when closing."""
        with self._changed:
            while not self._closing:
                short = [s for s, ready in self._ready.items() if len(ready) < self.ahead]
                empty = [s for s in short if not self._ready[s]]
                if empty:
                    return ("make", empty[0])
                if self._to_drop:
                    return ("drop", self._to_drop.popleft())
                if short:
                    return ("make", short[0])
                self._changed.wait()
            return None

    def _work(self) -> None:
        try:
            while (job := self._next_job()) is not None:
                kind, subject = job
                if kind == "drop":
                    self._drop(subject)
                    continue
                database = self._make(subject)
                with self._changed:
                    self._ready[subject].append(database)
                    self._changed.notify_all()
        except BaseException as error:  # handed to the test waiting in take()
            with self._changed:
                self._error = error
                self._changed.notify_all()


@pytest.fixture(scope="session")
def _celestra_transactional_databases(
    request: pytest.FixtureRequest, _celestra_databases: DatabaseManager
) -> Iterator[TransactionalDatabases]:
    run = request.config.stash[RUN_KEY]
    with contextlib.closing(TransactionalDatabases(_celestra_databases, run)) as databases:
        yield databases


_OTHER_SESSIONS = ("celestra_session", "celestra_seeded_db")


@pytest.fixture
def celestra_transactional_engine(
    request: pytest.FixtureRequest, _celestra_transactional_databases: TransactionalDatabases
) -> Iterator[Engine]:
    """Engine of a database of this test's own, holding the whole scenario.

    Whatever the test commits there, through this engine, your own engines, threads or
    subprocesses, is gone before the next test and seen by no other test. The scenario
    is the run's (``--celestra-volume``, ``--celestra-seed``) or that of the test's
    ``@pytest.mark.celestra``.
    """
    from sqlalchemy import create_engine

    databases = _celestra_transactional_databases
    database = databases.take(scenario_of(request.node))
    engine = create_engine(database.url)
    try:
        yield engine
    finally:
        engine.dispose()
        failed = _failed(request.node)
        kept = databases.give_back(database, failed=failed)
        if kept is not None:
            request.config.stash[RUN_KEY].kept.append(kept)


@pytest.fixture
def celestra_transactional_dsn(celestra_transactional_engine: Engine) -> str:
    """URL (``postgresql://...``) of the database behind ``celestra_transactional_engine``,
    for code that builds its own engine or runs in a subprocess."""
    return libpq_url(celestra_transactional_engine.url)


@pytest.fixture
def celestra_transactional_db(
    request: pytest.FixtureRequest, celestra_transactional_engine: Engine
) -> Iterator[Session]:
    """A SQLAlchemy session on this test's own database; its commits are real.

    Factories' ``create()`` goes into it; ``celestra_transactional_db.commit()`` makes
    their rows visible to every other connection. All of it is gone after the test.
    """
    from sqlalchemy.orm import Session

    from pytest_celestra.factories import bound_session

    both = [name for name in _OTHER_SESSIONS if name in request.fixturenames]
    if both:
        pytest.fail(
            f"a test cannot use celestra_transactional_db together with {' and '.join(both)}: "
            "factories write into one session. Use celestra_transactional_db alone (it holds "
            "the whole scenario too), or celestra_transactional_engine beside the other.",
            pytrace=False,
        )
    scenario = scenario_of(request.node)
    reseed_factories(scenario.seed, request.node.nodeid, "celestra_transactional_db")
    with Session(celestra_transactional_engine) as session, bound_session(session):
        yield session


def _failed(item: pytest.Item) -> bool:
    """Did a phase of ``item`` so far fail (set-up or call)?"""
    reports = item.stash.get(_REPORTS_KEY, {})
    return any(report.failed for report in reports.values())


_REPORTS_KEY = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Record each phase's report on the item, so teardown knows if the test failed."""
    report: pytest.TestReport = yield
    item.stash.setdefault(_REPORTS_KEY, {})[report.when] = report
    return report
