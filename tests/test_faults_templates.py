"""Issue 8, sections 2 and 5: templates are what their key says, and faults of the server
and of killed runs leave nothing behind.

Against the suite's real server (only databases these tests create, from unique seeds and
keys) and, for restarts, a throwaway server of their own, never the shared one.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import psycopg
import pytest
from helpers import (
    ThrowawayServer,
    exists,
    free_port,
    running,
    swept,
    templates_with_seed,
    throwaway_setup,
)
from psycopg import sql
from sqlalchemy import text

from pytest_celestra import cli
from pytest_celestra.config import ServerMode
from pytest_celestra.db.cache_keys import SchemaSetup, builtin_schema_setup, content_fingerprint
from pytest_celestra.db.database import (
    BIRTH_MARK,
    SEALED,
    Budget,
    DatabaseManager,
    TemplateUse,
    _comment,
    _lock_id,
    _parse_comment,
    _use_lock_id,
    database_comment,
    drop_database,
    run_lock_id,
    template_name,
    templates_to_evict,
)
from pytest_celestra.db.seeding import Seeder
from pytest_celestra.db.server import Server
from pytest_celestra.errors import ServerError
from pytest_celestra.rows.scenario import anchor_for
from pytest_celestra.schema.volumes import Volume
from pytest_celestra.urls import libpq_url, sqlalchemy_url

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

SMALL = Volume.named("small")


def count_users(url) -> int:
    with psycopg.connect(libpq_url(url)) as connection:
        return int(connection.execute("SELECT count(*) FROM users").fetchone()[0])


@contextlib.contextmanager
def unsealed(admin: psycopg.Connection, manager: DatabaseManager, template: str):
    """What someone with superuser rights must do to change a template: open it up.
    Yields its URL; sealed again afterwards, as a careful intruder would."""
    name = sql.Identifier(template)
    admin.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(name))
    yield manager.server.url_for(template)
    admin.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(name))


def wait_until_free(admin: psycopg.Connection, lock: int) -> None:
    """Wait for the backend of a closed or killed session to exit and free ``lock``."""
    deadline = time.monotonic() + 30
    while admin.execute("SELECT pg_try_advisory_lock(%s)", (lock,)).fetchone() != (True,):
        assert time.monotonic() < deadline, "the lock of a gone session is still held"
        time.sleep(0.05)
    admin.execute("SELECT pg_advisory_unlock(%s)", (lock,))


@pytest.fixture
def managers(suite_databases):
    """Make DatabaseManagers (one per simulated run) on the suite's server; each one's
    databases and the templates they built are dropped afterwards."""
    made: list[DatabaseManager] = []

    def make(schema: SchemaSetup | None = None, **options) -> DatabaseManager:
        manager = DatabaseManager(
            suite_databases.server,
            schema or builtin_schema_setup(),
            Seeder(),
            run_id=options.pop("run_id", secrets.token_hex(8)),
            worker=options.pop("worker", "probe"),
            **options,
        )
        made.append(manager)
        return manager

    yield make
    built = {name for manager in made for name in manager._using}
    for manager in made:
        for name in list(manager.created):
            manager.release(manager.server.url_for(name))
        manager.close()
    with suite_databases._connect_admin() as admin:
        for name in built - {template_name("schema", builtin_schema_setup().key or "")}:
            drop_database(admin, name)


def tiny_schema() -> SchemaSetup:
    """A schema of one table under a key no other test uses: a template of its own."""
    return SchemaSetup(
        lambda connection: connection.execute(text("CREATE TABLE widgets (id int)")),
        secrets.token_hex(32),
    )


# --- 2. a template is what its key says, or it is rebuilt ------------------------


def test_a_template_is_sealed_once_built(admin, managers):
    manager = managers(tiny_schema())
    manager.create_empty()
    [template] = manager._using
    row = admin.execute(
        "SELECT datallowconn, datistemplate FROM pg_database WHERE datname = %s", (template,)
    ).fetchone()
    assert row == (False, True)
    with pytest.raises(psycopg.OperationalError, match="not currently accepting connections"):
        psycopg.connect(libpq_url(manager.server.url_for(template))).close()


def test_a_sealed_templates_size_is_recorded_once_and_read_by_sweeps(admin, managers):
    """A sweep after every build weighs every sealed template against the budget: with a
    thousand templates on a shared server, measuring each (pg_database_size walks its
    files) cost seconds per build. A sealed template never changes, so its size is
    recorded when it is sealed, and the sweep reads that."""
    manager = managers(tiny_schema())
    manager.create_empty()
    [template] = manager._using
    _, meta = _parse_comment(database_comment(admin, template) or "")
    measured = admin.execute("SELECT pg_database_size(%s)", (template,)).fetchone()[0]
    # Not to the byte: a connection after sealing (a check, a clone) may write the
    # database's relation cache file (pg_internal.init, ~150 kB); it was 2% off under load.
    assert abs(meta["size"] - measured) <= measured // 20
    admin.execute(
        sql.SQL("COMMENT ON DATABASE {} IS {}").format(
            sql.Identifier(template),
            sql.Literal(_comment(SEALED, **{**meta, "size": 4242})),
        )
    )
    with manager._admin() as connection:
        [listed] = [db for db in manager._listing(connection) if db.name == template]
    assert listed.size == 4242


@pytest.mark.slow
def test_rows_deleted_in_a_template_mean_a_rebuild(admin, managers, unique_seed):
    anchor = anchor_for()
    first = managers()
    assert count_users(first.create_seeded(SMALL, unique_seed, anchor)) == 20
    template = next(name for name in first._using if name.startswith("celestra_tpl_"))
    with unsealed(admin, first, template) as url, psycopg.connect(libpq_url(url)) as attacker:
        attacker.execute("SET session_replication_role = replica")  # past the foreign keys
        attacker.execute("DELETE FROM users WHERE id IN (SELECT id FROM users LIMIT 5)")
    again = managers()
    assert count_users(again.create_seeded(SMALL, unique_seed, anchor)) == 20
    [note] = again.notes
    assert note.startswith(f"template {template} was rebuilt: its content is not what was built")
    assert "users 15 rows (built with 20)" in note


@pytest.mark.slow
def test_a_session_left_on_a_template_does_not_block_a_run(admin, managers):
    manager = managers(tiny_schema())
    manager.create_empty()
    [template] = manager._using
    with unsealed(admin, manager, template) as url:
        left_open = psycopg.connect(libpq_url(url), application_name="left-open")
    with left_open:
        again = managers(manager.schema)
        with psycopg.connect(libpq_url(again.create_empty())) as clone:
            assert clone.execute("SELECT count(*) FROM widgets").fetchone() == (0,)
        [note] = again.notes
        assert "was connected to it" in note
        assert "(left-open)" in note
        assert left_open.broken or left_open.closed or _is_gone(left_open)


def _is_gone(connection: psycopg.Connection) -> bool:
    try:
        connection.execute("SELECT 1")
    except psycopg.OperationalError:
        return True
    return False


def test_a_reseeded_template_is_rebuilt_and_the_report_says_why(
    celestra_pytester, run_inner, admin, unique_seed, suite_databases, managers
):
    celestra_pytester.makepyfile(
        """
        from sqlalchemy import text

        def test_small_has_20_users(celestra_seeded_db):
            users = celestra_seeded_db.execute(text("SELECT count(*) FROM users")).scalar()
            assert users == 20
        """
    )
    # The template an earlier run built and left (made here, not by one more inner run:
    # were it not the one the inner run below looks for, it would not be reported).
    earlier = managers()
    earlier.release(earlier.create_seeded(SMALL, unique_seed, anchor_for()))
    earlier.close()
    [template] = templates_with_seed(admin, unique_seed)
    wait_until_free(admin, _use_lock_id(template))
    # What `celestra-seed --reset --volume medium` on the template did before it refused.
    with unsealed(admin, suite_databases, template) as url:
        cli.seed_database(
            url, Volume.named("medium"), seed=unique_seed, anchor=anchor_for(), reset=True
        )
    result = run_inner(f"--celestra-seed={unique_seed}")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [f"celestra: template {template} was rebuilt: its content is not what was built (*"]
    )
    assert list(templates_with_seed(admin, unique_seed)) == [template]


def test_the_fingerprint_does_not_depend_on_the_query_plan(managers):
    """Parallel plans return the tables' rows in any order; the fingerprint must not care."""

    def create(connection) -> None:
        for number in range(6):
            connection.execute(text(f"CREATE TABLE t{number} AS SELECT generate_series(1, 2000) n"))

    clone = managers(SchemaSetup(create, secrets.token_hex(32))).create_empty()
    with psycopg.connect(libpq_url(clone)) as connection:
        plain = content_fingerprint(connection)
        for setting in (
            "parallel_setup_cost",
            "parallel_tuple_cost",
            "min_parallel_table_scan_size",
        ):
            connection.execute(sql.SQL("SET {} = 0").format(sql.Identifier(setting)))
        assert all(content_fingerprint(connection) == plain for _ in range(5))
    assert plain.rows == {f"public.t{number}": 2000 for number in range(6)}


def test_celestra_seed_refuses_every_database_of_the_plugin(managers, capsys):
    manager = managers(tiny_schema())
    clone = manager.create_empty()
    [template] = manager._using
    for name in (clone.database, template):
        url = libpq_url(manager.server.url_for(name))
        assert cli.main(["--dsn", url, "--volume", "small"]) != 0
        error = capsys.readouterr().err
        assert f"refusing to write into database {name!r}" in error
        assert "pytest-celestra created it" in error


# --- 5. what runs leave behind ---------------------------------------------------


def test_a_database_left_unmarked_is_swept_when_its_creator_is_gone(admin, admin_dsn, managers):
    """A run killed between CREATE DATABASE and COMMENT leaves only the birth mark."""
    names = {kind: f"celestra_seeded_probe_{secrets.token_hex(4)}" for kind in "abc"}
    try:
        with psycopg.connect(admin_dsn, autocommit=True) as creator:  # still at work on "b"
            # Its lock first, as a creator takes it: other runs on the server sweep too.
            creator.execute("SELECT pg_advisory_lock(%s)", (_name_lock(names["b"]),))
            for kind, name in names.items():
                limit = sql.SQL(" CONNECTION LIMIT {}").format(sql.Literal(BIRTH_MARK))
                admin.execute(
                    sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
                    + (limit if kind != "c" else sql.SQL(""))
                )
            with managers()._admin():  # a run's first connection sweeps
                pass
            assert swept(admin, names["a"])
            assert exists(admin, names["b"])  # its creator is alive
            assert exists(admin, names["c"])  # no birth mark: not ours, never touched
    finally:
        for name in names.values():
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def _name_lock(name: str) -> int:
    return _lock_id(name)


def test_a_sweep_never_drops_a_database_finished_since_it_listed_it(
    admin, admin_dsn, managers, monkeypatch
):
    """A sweep lists, then takes each doomed database's lock. A database still unmarked
    when listed (between CREATE DATABASE and COMMENT) and finished by its living creator
    before the sweep got to it is a live run's test database: it stays. (It was dropped
    WITH (FORCE), milliseconds after its creator had commented it and let go of its lock.)"""
    name = f"celestra_empty_probe_{secrets.token_hex(4)}"
    run = secrets.token_hex(8)
    with psycopg.connect(admin_dsn, autocommit=True) as creator:
        creator.execute("SELECT pg_advisory_lock_shared(%s)", (run_lock_id(run),))  # alive
        creator.execute("SELECT pg_advisory_lock(%s)", (_name_lock(name),))
        try:
            sweeper = managers()
            listing = sweeper._listing

            def listed_then_finished(connection, sizes=True):
                limit = sql.Literal(BIRTH_MARK)
                admin.execute(
                    sql.SQL("CREATE DATABASE {} CONNECTION LIMIT {}").format(
                        sql.Identifier(name), limit
                    )
                )
                seen = listing(connection, sizes)
                assert name in {database.name for database in seen}  # unmarked: listed
                comment = _comment("test database", run=run, owner=run_lock_id(run))
                admin.execute(
                    sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                        sql.Identifier(name), sql.Literal(comment)
                    )
                )
                creator.execute("SELECT pg_advisory_unlock(%s)", (_name_lock(name),))
                return seen

            monkeypatch.setattr(sweeper, "_listing", listed_then_finished)
            with sweeper._admin():  # a run's first connection sweeps
                pass
            assert exists(admin, name)
        finally:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def test_workers_of_one_run_keep_each_others_databases(admin, managers):
    schema = tiny_schema()
    run = secrets.token_hex(8)
    gw0, gw1 = (
        managers(schema, run_id=run, worker="gw0"),
        managers(schema, run_id=run, worker="gw1"),
    )
    gw0.create_empty()
    mine = gw1.create_empty().database
    for name in list(gw0.created):  # gw0 ends first
        gw0.release(gw0.server.url_for(name))
    gw0.close()
    managers().open()  # another run starts and sweeps
    assert exists(admin, mine)
    gw1.close()  # gw1 is killed: its lock goes, its database stays
    wait_until_free(admin, run_lock_id(run))
    managers().open()
    assert swept(admin, mine)
    gw1.created.clear()


def test_kept_databases_survive_their_run(admin, managers):
    keeper = managers(tiny_schema(), keep=True)
    kept = keeper.create_empty().database
    keeper.created.clear()
    keeper.close()  # the run is gone (even killed)
    managers().open()
    try:
        assert exists(admin, kept)
    finally:
        drop_database(admin, kept)


INNER_SLEEPER = """
import os, time
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict

def test_hold(celestra_dsn):
    # The database's name, whatever the URL's form (the embedded server's has ?host=/...).
    Path(os.environ["READY_FILE"]).write_text(conninfo_to_dict(celestra_dsn)["dbname"])
    time.sleep(300)
"""


def _start_sleeper(pytester: pytest.Pytester, ready: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "test_sleeper.py"],
        cwd=pytester.path,
        env={**os.environ, "READY_FILE": str(ready)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait_for(path: Path, process: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 120
    while not path.exists() or not path.read_text():
        assert process.poll() is None, "the inner run ended early"
        assert time.monotonic() < deadline, "the inner run never made its database"
        time.sleep(0.1)
    return path.read_text()


@pytest.mark.slow
def test_databases_of_a_killed_run_are_dropped_by_the_next_run(
    celestra_pytester, admin, managers, tmp_path
):
    celestra_pytester.makepyfile(test_sleeper=INNER_SLEEPER)
    killed_ready, alive_ready = tmp_path / "killed", tmp_path / "alive"
    killed = _start_sleeper(celestra_pytester, killed_ready)
    alive = _start_sleeper(celestra_pytester, alive_ready)
    try:
        orphan, living = _wait_for(killed_ready, killed), _wait_for(alive_ready, alive)
        owner = owner_lock(admin, orphan)
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        # Its run is gone. (Another run on the same server may sweep it first: its owner
        # lock is read before the kill, so the check below does not need it to exist.)
        wait_until_free(admin, owner)
        managers().open()
        assert swept(admin, orphan)
        assert exists(admin, living)  # its run is still alive
        alive.send_signal(signal.SIGKILL)
        alive.wait()
        wait_until_free(admin, owner_lock(admin, living))
        managers().open()
        assert swept(admin, living)
    finally:
        for process in (killed, alive):
            process.kill()
            process.wait()


def owner_lock(admin: psycopg.Connection, name: str) -> int:
    """The run lock recorded in the comment of our database ``name``."""
    comment = admin.execute(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
        (name,),
    ).fetchone()[0]
    return int(json.loads(comment[comment.index("{") :])["owner"])


# --- 5e. the eviction budget ------------------------------------------------------


def test_the_budget_evicts_by_age_day_and_size_never_what_is_kept():
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    mb = 1024**2
    templates = [
        TemplateUse("fresh", now - timedelta(hours=1), 300 * mb),
        TemplateUse("recent", now - timedelta(days=1), 300 * mb),
        TemplateUse("older", now - timedelta(days=2), 300 * mb),
        TemplateUse("stale", now - timedelta(days=30), 1 * mb),
        TemplateUse("yesterday", now - timedelta(minutes=1), 1 * mb, day="2026-05-31"),
        TemplateUse("built", now - timedelta(days=9), 500 * mb),
    ]
    budget = Budget(max_age=timedelta(days=7), max_size=1024 * mb)
    evicted = templates_to_evict(templates, budget, now, keep={"built"})
    # "built" (kept) counts first: with it, 1 GB leaves room for "fresh" alone.
    assert sorted(evicted) == ["older", "recent", "stale", "yesterday"]
    # The default budget (7 days, 10 GB): by age and anchor day only.
    assert sorted(templates_to_evict(templates, Budget(), now)) == ["built", "stale", "yesterday"]


def test_a_template_of_a_fixed_anchor_day_is_not_stale_the_next_day():
    """`--celestra-anchor-day` fixes a day before the one a template is built on: such a
    template is not "yesterday's" (it would be dropped by every sweep and built again by
    every run); one anchored on its build day is, from the next day on."""
    now = datetime(2026, 6, 2, 12, tzinfo=UTC)
    built_yesterday = datetime(2026, 6, 1, 9, tzinfo=UTC)
    templates = [
        TemplateUse("fixed", now, 1, day="2025-01-15", built=built_yesterday),
        TemplateUse("yesterday", now, 1, day="2026-06-01", built=built_yesterday),
        TemplateUse("earlier", now, 1, day="2026-05-31"),  # built before "built" was recorded
    ]
    assert sorted(templates_to_evict(templates, Budget(), now)) == ["earlier", "yesterday"]


def test_eviction_never_drops_a_template_in_use(admin, managers, monkeypatch):
    user, idle = managers(tiny_schema()), managers(tiny_schema())
    user.create_empty()
    idle.create_empty()
    [in_use], [unused] = user._using, idle._using
    for name in list(idle.created):
        idle.release(idle.server.url_for(name))
    idle.close()
    wait_until_free(admin, _use_lock_id(unused))
    sweeper = managers(budget=Budget(max_size=0))
    # Only these two: the suite's server holds other runs' templates, which stay theirs.
    listing = sweeper._listing
    monkeypatch.setattr(
        sweeper,
        "_listing",
        lambda connection, sizes=True: [
            db for db in listing(connection, sizes) if db.name in {in_use, unused}
        ],
    )
    with sweeper._admin() as connection:  # as after a build: the cache grew
        sweeper._sweep(connection)
    assert exists(admin, in_use)
    assert not exists(admin, unused)
    # Said: on a shared server, one run's budget is everyone's (it went unsaid).
    said = [note for note in sweeper.notes if note.startswith("the template budget dropped")]
    assert len(said) == 1
    assert said[0].startswith("the template budget dropped 1 template other runs had built (")


# --- 5a, 5b. a server that restarts ------------------------------------------------


@pytest.fixture(scope="module")
def throwaway_server() -> Iterator[ThrowawayServer]:
    with running(ThrowawayServer(*throwaway_setup())) as server:
        yield server


@pytest.fixture
def throwaway_pytester(celestra_pytester, monkeypatch, throwaway_server):
    monkeypatch.setenv("CELESTRA_SERVER", "dsn")
    monkeypatch.setenv("CELESTRA_DSN", throwaway_server.url)
    monkeypatch.setenv("RESTART_COMMAND", json.dumps(throwaway_server.restart_command()))
    return celestra_pytester


RESTART_BETWEEN_TESTS = """
import json, os, subprocess
from sqlalchemy import text

def test_before(celestra_session):
    celestra_session.execute(text("SELECT 1"))

def test_restart():
    subprocess.run(json.loads(os.environ["RESTART_COMMAND"]), check=True, capture_output=True)

def test_after(celestra_session):
    assert celestra_session.execute(text("SELECT count(*) FROM users")).scalar() == 0
"""


@pytest.mark.slow
def test_a_restart_between_tests_costs_nothing(throwaway_pytester, run_inner):
    throwaway_pytester.makepyfile(RESTART_BETWEEN_TESTS)
    run_inner("-p", "no:randomly").assert_outcomes(passed=3)


def test_the_run_lock_is_taken_again_after_a_restart(throwaway_server):
    manager = DatabaseManager(
        Server(ServerMode.DSN, sqlalchemy_url(throwaway_server.url)),
        builtin_schema_setup(),
        Seeder(),
        run_id=secrets.token_hex(8),
        worker="probe",
    )
    manager.open()
    subprocess.run(throwaway_server.restart_command(), check=True, capture_output=True)
    clone = manager.create_empty()
    lock = run_lock_id(manager.run_id) & 0xFFFFFFFFFFFFFFFF
    with psycopg.connect(throwaway_server.url) as connection:
        held = connection.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND mode = 'ShareLock' "
            "AND classid = %s::bigint::oid AND objid = %s::bigint::oid AND objsubid = 1",
            (lock >> 32, lock & 0xFFFFFFFF),
        ).fetchone()
    assert held == (1,)
    manager.release(clone)
    manager.close()


CUT_OFF_BUILD = """
import json, os, subprocess
from pathlib import Path
from sqlalchemy import text

def pytest_celestra_create_schema(connection, config):
    marker = Path("restarted")
    if not marker.exists():
        marker.write_text("yes")
        subprocess.run(json.loads(os.environ["RESTART_COMMAND"]), check=True, capture_output=True)
    connection.execute(text("CREATE TABLE widgets (id int)"))
    return True
"""


def test_a_build_cut_off_by_the_server_is_one_message_and_leaves_nothing(
    throwaway_pytester, run_inner, throwaway_server
):
    throwaway_pytester.makeconftest(CUT_OFF_BUILD)
    throwaway_pytester.makepyfile("def test_empty(celestra_session):\n    pass\n")
    result = run_inner("-rN")  # no short summary: the error section alone
    result.assert_outcomes(errors=1)
    host_port = f"127.0.0.1:{throwaway_server.port}"
    message = [line for line in result.outlines if "lost the PostgreSQL server" in line]
    assert len(message) == 1
    assert host_port in message[0]
    assert not any("Traceback" in line or "psycopg" in line for line in result.outlines)
    with psycopg.connect(throwaway_server.url) as admin:
        leftovers = admin.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'celestra\\_build\\_%'"
        ).fetchall()
    assert leftovers  # the cut-off build, which the server would not let it drop
    run_inner().assert_outcomes(passed=1)  # the next run sweeps it, then builds
    with psycopg.connect(throwaway_server.url) as admin:
        left = admin.execute(
            "SELECT datname FROM pg_database WHERE datname = ANY(%s)", ([n for (n,) in leftovers],)
        ).fetchall()
    assert left == []


def test_a_lost_server_is_a_server_error_naming_it(throwaway_server):
    nobody_there = sqlalchemy_url(throwaway_server.url).set(port=free_port())
    manager = DatabaseManager(
        Server(ServerMode.DSN, nobody_there),
        builtin_schema_setup(),
        Seeder(),
        run_id=secrets.token_hex(8),
        worker="probe",
    )
    with pytest.raises(ServerError, match=r"lost the PostgreSQL server at 127\.0\.0\.1:\d+"):
        manager.open()
