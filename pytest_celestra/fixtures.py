"""The ``celestra_*`` fixtures.

Databases are made only when a test asks for them: ``celestra_session`` clones the empty
schema, ``celestra_seeded_db`` the seeded scenario; each test then runs in a transaction
that is rolled back, so per-test cost does not grow with the volume.

What connections you open yourself (through ``celestra_engine``, ``celestra_dsn`` and
their seeded twins) can see: everything committed in the database, that is the template's
rows; not the rows a test writes through ``celestra_session``/``celestra_seeded_db``,
which stay uncommitted and are rolled back. What such connections commit stays for the
rest of the run, for every later test of that process.

Factory data is reproducible: the fixtures that bind a session reseed factory_boy's and
Faker's shared random generator, and reset the factories' sequences, from the run's
``--celestra-seed`` and the test's node id, and the plugin reseeds once more right before
the test function runs (after pytest-randomly's own reseeding). So a test makes the same
rows whatever order the tests run in, under xdist or pytest-randomly, and other rows
under another seed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from pytest_celestra.cache_keys import SchemaSetup, builtin_schema_setup, user_schema_key
from pytest_celestra.config import CONFIG_KEY, Scenario
from pytest_celestra.database import DatabaseManager
from pytest_celestra.errors import ServerError
from pytest_celestra.models import MODELS_IN_FK_ORDER, Base
from pytest_celestra.server import check_room, libpq_url, start_server

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime
    from pathlib import Path

    from sqlalchemy.engine import URL, Connection, Engine


@dataclass(frozen=True)
class RunInfo:
    """What this process shares with the other processes of the run (xdist workers)."""

    run_id: str
    worker: str
    anchor: datetime
    kept: list[str] = field(default_factory=list)


RUN_KEY = pytest.StashKey[RunInfo]()

#: The fixtures that give a test a session (and so reseed its factories).
SESSION_FIXTURES = frozenset(
    {"celestra_session", "celestra_seeded_db", "celestra_async_session", "celestra_async_seeded_db"}
)


def _concrete_factories(base: type[Any]) -> Iterator[type[Any]]:
    for subclass in base.__subclasses__():
        if not subclass._meta.abstract:
            yield subclass
        yield from _concrete_factories(subclass)


#: The scenario of a test whose ``@pytest.mark.celestra`` markers set one.
SCENARIO_KEY = pytest.StashKey[Scenario]()


def scenario_of(item: pytest.Item) -> Scenario:
    """The scenario ``celestra_seeded_db`` holds for ``item``: its markers', else the run's."""
    return item.stash.get(SCENARIO_KEY, None) or item.config.stash[CONFIG_KEY].scenario


def reseed_factories(seed: int, nodeid: str, phase: str) -> None:
    """Seed the factories' random generator from ``seed``, ``nodeid`` and ``phase``.

    ``phase`` tells apart the reseeds of one test (each fixture's, the test call's), so
    they draw different values (ids that do not collide). Phases other than ``call``
    also restart the sequences of every factory (our own and their subclasses, e.g.
    the numbers that keep emails unique), so they too are the same in any test order.
    """
    import factory.random

    from pytest_celestra.factories import CelestraFactory

    seed_text = f"pytest-celestra {seed} {nodeid} {phase}"
    factory.random.reseed_random(seed_text)  # type: ignore[no-untyped-call]
    if phase != "call":
        for factory_class in _concrete_factories(CelestraFactory):
            factory_class.reset_sequence(0, force=True)


def schema_setup(config: pytest.Config) -> SchemaSetup:
    """The user's ``pytest_celestra_create_schema`` hook if there is one, else ``create_all``."""
    hook: Any = config.hook
    if not hook.pytest_celestra_create_schema.get_hookimpls():
        return builtin_schema_setup()

    def create(connection: Connection) -> None:
        if hook.pytest_celestra_create_schema(connection=connection, config=config) is None:
            Base.metadata.create_all(connection)

    version = hook.pytest_celestra_schema_version(config=config)
    return SchemaSetup(create, None if version is None else user_schema_key(str(version)))


@contextlib.contextmanager
def open_databases(config: pytest.Config, workdir: Path) -> Iterator[DatabaseManager]:
    """Start or reach the run's server; the template cache on it. Raises ServerError.

    ``workdir`` holds the data directory of a throwaway local server.
    """
    celestra = config.stash[CONFIG_KEY]
    run = config.stash[RUN_KEY]
    server = start_server(celestra, workdir)
    manager = DatabaseManager(
        server,
        schema_setup(config),
        run_id=run.run_id,
        worker=run.worker,
        rebuild=celestra.rebuild.value,
        keep=celestra.keep.value,
    )
    try:
        yield manager
    finally:
        server.stop()


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
        except ServerError as error:
            # One clear message and a stop, rather than the same error for every test.
            request.session.shouldstop = "pytest-celestra has no database server (see above)"
            raise pytest.fail.Exception(f"pytest-celestra: {error}", pytrace=False) from None
        yield manager


@contextlib.contextmanager
def _test_engine(manager: DatabaseManager, url: URL, run: RunInfo) -> Iterator[Engine]:
    engine = create_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()
        kept = manager.release(url)
        if kept is not None:
            run.kept.append(kept)


@pytest.fixture(scope="session")
def celestra_engine(
    request: pytest.FixtureRequest, _celestra_databases: DatabaseManager
) -> Iterator[Engine]:
    """Engine of this process's database with the empty Celestra schema (session scope).

    For code under test that opens its own connections. They see what is committed (no
    rows); not what a test writes through ``celestra_session``. What they commit stays
    for later tests.
    """
    url = _celestra_databases.create_empty()
    with _test_engine(_celestra_databases, url, request.config.stash[RUN_KEY]) as engine:
        yield engine


@pytest.fixture(scope="session")
def celestra_dsn(celestra_engine: Engine) -> str:
    """URL (``postgresql://...``) of the database behind ``celestra_engine``."""
    return libpq_url(celestra_engine.url)


class SeededDatabases:
    """This process's seeded test databases: one per scenario, made when first asked for."""

    def __init__(self, manager: DatabaseManager, run: RunInfo) -> None:
        self.manager = manager
        self.run = run
        self.engines: dict[Scenario, Engine] = {}
        self._stack = contextlib.ExitStack()

    def engine(self, scenario: Scenario) -> Engine:
        """Engine of the database holding ``scenario`` (cloned from its template once)."""
        if scenario not in self.engines:
            check_room(self.manager.server.url, scenario.volume)
            url = self.manager.create_seeded(scenario.volume, scenario.seed, self.run.anchor)
            engine = self._stack.enter_context(_test_engine(self.manager, url, self.run))
            self.engines[scenario] = engine
        return self.engines[scenario]

    def close(self) -> None:
        """Dispose of the engines and drop (or keep) the databases."""
        self._stack.close()


@pytest.fixture(scope="session")
def _celestra_seeded_databases(
    request: pytest.FixtureRequest, _celestra_databases: DatabaseManager
) -> Iterator[SeededDatabases]:
    databases = SeededDatabases(_celestra_databases, request.config.stash[RUN_KEY])
    try:
        yield databases
    finally:
        databases.close()


@pytest.fixture(scope="session")
def celestra_seeded_engine(
    request: pytest.FixtureRequest, _celestra_seeded_databases: SeededDatabases
) -> Engine:
    """Engine of this process's database holding the run's scenario (session scope).

    For code under test that opens its own connections. They see the committed scenario;
    not what a test writes through ``celestra_seeded_db``. What they commit stays for
    later tests. Always the run's ``--celestra-volume``/``--celestra-seed``, whatever a
    test's ``@pytest.mark.celestra`` says.
    """
    return _celestra_seeded_databases.engine(request.config.stash[CONFIG_KEY].scenario)


@pytest.fixture(scope="session")
def celestra_seeded_dsn(celestra_seeded_engine: Engine) -> str:
    """URL (``postgresql://...``) of the database behind ``celestra_seeded_engine``."""
    return libpq_url(celestra_seeded_engine.url)


@contextlib.contextmanager
def rolled_back_session(engine: Engine) -> Iterator[Session]:
    """A session in a transaction that is rolled back at the end, commits included.

    The session joins an outer transaction through a savepoint, so ``session.commit()``
    in the code under test only releases a savepoint. Factories write into the session.
    """
    from pytest_celestra.factories import bound_session

    with engine.connect() as connection:
        transaction = connection.begin()
        session = Session(bind=connection, join_transaction_mode="create_savepoint")
        try:
            with bound_session(session):
                yield session
        finally:
            session.close()
            transaction.rollback()


@pytest.fixture
def celestra_session(request: pytest.FixtureRequest, celestra_engine: Engine) -> Iterator[Session]:
    """A SQLAlchemy session on the empty Celestra schema, rolled back after the test.

    Every factory ``create()`` in the test goes into it; so do the ``celestra_<entity>``
    fixtures. Commits made by the code under test are rolled back too. Factory data
    depends only on ``--celestra-seed`` and the test, not on the order of the tests.
    """
    reseed_factories(scenario_of(request.node).seed, request.node.nodeid, "celestra_session")
    with rolled_back_session(celestra_engine) as session:
        yield session


@pytest.fixture
def celestra_seeded_db(
    request: pytest.FixtureRequest, _celestra_seeded_databases: SeededDatabases
) -> Iterator[Session]:
    """A SQLAlchemy session on the whole scenario (``--celestra-volume``), rolled back after.

    Factories' ``create()`` goes into it. Seeding happens once (or never, when a cached
    template matches), not per test. Factory data depends only on ``--celestra-seed`` and
    the test, not on the order of the tests.

    ``@pytest.mark.celestra(volume="small", seed=3)`` on the test, its class or module
    (``pytestmark``) gives it that scenario instead, in a database of its own made once
    per process.
    """
    if "celestra_session" in request.fixturenames:
        pytest.fail(
            "a test cannot use celestra_seeded_db together with celestra_session or a "
            "celestra_<entity> fixture (those live in the empty database of "
            "celestra_session): call the factories, e.g. UserFactory(), to add rows "
            "to the seeded database.",
            pytrace=False,
        )
    scenario = scenario_of(request.node)
    _check_run_scenario(request, scenario)
    reseed_factories(scenario.seed, request.node.nodeid, "celestra_seeded_db")
    with rolled_back_session(_celestra_seeded_databases.engine(scenario)) as session:
        yield session


_RUN_SCENARIO_FIXTURES = ("celestra_seeded_engine", "celestra_seeded_dsn")


def _check_run_scenario(request: pytest.FixtureRequest, scenario: Scenario) -> None:
    """Fail a marked test that also uses the engine or DSN of the run's scenario."""
    run_scenario = request.config.stash[CONFIG_KEY].scenario
    shared = [name for name in _RUN_SCENARIO_FIXTURES if name in request.fixturenames]
    if scenario != run_scenario and shared:
        verb = "holds" if len(shared) == 1 else "hold"
        pytest.fail(
            f"this test's @pytest.mark.celestra asks for {scenario.describe()}, but "
            f"{' and '.join(shared)} {verb} the run's scenario ({run_scenario.describe()}) "
            "for the whole session. For this test's database use "
            "celestra_seeded_db.get_bind().engine (its .url for a DSN), or drop the marker.",
            pytrace=False,
        )


# --- one fixture per table -------------------------------------------------------


def _snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


#: ``celestra_<entity>`` fixture name -> model, for every table.
ENTITY_FIXTURES: dict[str, type[Base]] = {
    f"celestra_{_snake_case(model.__name__)}": model for model in MODELS_IN_FK_ORDER
}


def _entity_fixture(name: str, model: type[Base]) -> Any:
    factory_name = f"{model.__name__}Factory"

    def entity(celestra_session: Session) -> Any:
        from pytest_celestra import factories

        instance = getattr(factories, factory_name).create()
        celestra_session.flush()
        return instance

    entity.__name__ = name
    entity.__doc__ = (
        f"One {model.__name__} ({model.__tablename__}) made by {factory_name}, with its "
        "whole parent chain, in celestra_session; rolled back after the test."
    )
    return pytest.fixture(name=name)(entity)


for _name, _model in ENTITY_FIXTURES.items():
    globals()[_name] = _entity_fixture(_name, _model)


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
    """Stand-ins for ``celestra_async_session``/``celestra_async_seeded_db`` that say
    what to install."""

    def __init__(self, problem: str) -> None:
        self.problem = problem

    def _fail(self, name: str) -> None:
        pytest.fail(f"{name} needs {self.problem}.", pytrace=False)

    @pytest.fixture
    def celestra_async_session(self) -> None:
        """An AsyncSession on the empty schema; needs pytest-asyncio (not active here)."""
        self._fail("celestra_async_session")

    @pytest.fixture
    def celestra_async_seeded_db(self) -> None:
        """An AsyncSession on the whole scenario; needs pytest-asyncio (not active here)."""
        self._fail("celestra_async_seeded_db")
