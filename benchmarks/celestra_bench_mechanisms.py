"""The ways of giving each test a database it may commit to, as ``bench_transactional.py``
compares them. Imported by the ``conftest.py`` of each generated suite, which replaces the
plugin's ``_celestra_transactional_databases`` with the mechanism named in
``CELESTRA_BENCH_MECHANISM``; the fixtures and everything else stay the plugin's.

* ``clone-wal``, ``clone-file``: a clone of the template per test (``CREATE DATABASE ...
  TEMPLATE ... STRATEGY WAL_LOG`` / ``FILE_COPY``), made and dropped in the test's thread;
* ``pool``: clones made ahead and dropped by a background thread, a fresh one per test;
* ``restore``: one database per process; after each test, the tables it wrote to (and
  those referencing them, which ``TRUNCATE`` must empty too) are emptied and reloaded
  from a pristine copy kept in the same database, in the test's thread;
* ``truncate``: the pytest-django way, one database per process, every table emptied and
  the scenario loaded again after each test (``seed_scenario``, the package's fast COPY
  path);
* ``chosen``: the plugin's own (clones made ahead, reused while untouched).
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

import pytest

from pytest_celestra.db.server import connect
from pytest_celestra.plugin.run_info import RUN_KEY
from pytest_celestra.plugin.transactional import (
    END_OTHER_SESSIONS,
    FINGERPRINT,
    INSTALL_TRACKING,
    TestDatabase,
    TransactionalDatabases,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from pytest_celestra.config import ScenarioSettings as Scenario
    from pytest_celestra.db.database import DatabaseManager
    from pytest_celestra.plugin.run_info import RunInfo

MECHANISM_VARIABLE = "CELESTRA_BENCH_MECHANISM"


class OneDatabasePerProcess:
    """One database per scenario for the whole process, put back in shape after each test."""

    def __init__(self, manager: DatabaseManager, run: RunInfo) -> None:
        self.manager = manager
        self.run = run
        self.databases: dict[Scenario, TestDatabase] = {}

    def take(self, scenario: Scenario) -> TestDatabase:
        if scenario not in self.databases:
            url = self.manager.create_seeded(
                scenario.volume, scenario.seed, self.run.anchor, label="bench"
            )
            database = TestDatabase(url, scenario, monitor=connect(url, autocommit=True))
            self.prepare(database)
            self.databases[scenario] = database
        return self.databases[scenario]

    def give_back(self, database: TestDatabase, *, failed: bool) -> str | None:
        assert database.monitor is not None
        database.monitor.execute(END_OTHER_SESSIONS)
        with database.monitor.transaction():
            self.reset(database.monitor, database.scenario)
        return None

    def close(self) -> None:
        for database in self.databases.values():
            database.close_monitor()
            self.manager.discard(database.url)

    def prepare(self, database: TestDatabase) -> None:
        """Once, when the database is made."""

    def reset(self, connection: Any, scenario: Scenario) -> None:
        """After each test, in a transaction."""
        raise NotImplementedError


class TruncateAndReload(OneDatabasePerProcess):
    """pytest-django's ``transactional_db``: empty every table, load the data again."""

    def reset(self, connection: Any, scenario: Scenario) -> None:
        from pytest_celestra.rows.scenario import seed_scenario
        from pytest_celestra.schema.models import TABLES_IN_FK_ORDER

        connection.execute(f"TRUNCATE {', '.join(TABLES_IN_FK_ORDER)}")
        seed_scenario(connection, scenario.volume, seed=scenario.seed, anchor=self.run.anchor)


class RestoreChangedTables(OneDatabasePerProcess):
    """Reload only the tables a test wrote to, in the test's thread (the plugin's change
    tracking and copies, without clones made ahead or reuse)."""

    def prepare(self, database: TestDatabase) -> None:
        assert database.monitor is not None
        with database.monitor.transaction():
            database.monitor.execute(INSTALL_TRACKING)
        database.fingerprint = str(database.monitor.execute(FINGERPRINT).fetchone()[0])

    def give_back(self, database: TestDatabase, *, failed: bool) -> str | None:
        changed = database.changes()
        if changed is None or (changed and not database.restore(changed, math.inf)):
            raise RuntimeError("restore: the test changed more than rows")
        return None


def make_mechanism(name: str, manager: DatabaseManager, run: RunInfo) -> Any:
    """The object behind the fixtures for mechanism ``name`` (see the module docstring)."""
    if name == "clone-wal":
        return TransactionalDatabases(manager, run, ahead=0, reuse=False, strategy="WAL_LOG")
    if name == "clone-file":
        return TransactionalDatabases(manager, run, ahead=0, reuse=False, strategy="FILE_COPY")
    if name == "pool":
        return TransactionalDatabases(manager, run, reuse=False)
    if name == "restore":
        return RestoreChangedTables(manager, run)
    if name == "truncate":
        return TruncateAndReload(manager, run)
    if name == "chosen":
        return TransactionalDatabases(manager, run)
    raise ValueError(f"unknown mechanism {name!r}")


@pytest.fixture(scope="session")
def _celestra_transactional_databases(
    request: pytest.FixtureRequest, _celestra_databases: DatabaseManager
) -> Iterator[Any]:
    mechanism = make_mechanism(
        os.environ[MECHANISM_VARIABLE], _celestra_databases, request.config.stash[RUN_KEY]
    )
    try:
        yield mechanism
    finally:
        mechanism.close()
