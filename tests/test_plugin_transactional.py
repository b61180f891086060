"""``celestra_transactional_db`` / ``_engine`` / ``_dsn``: real commits, gone after each test."""

from __future__ import annotations

import json

import psycopg
import pytest
from sqlalchemy import make_url

from pytest_celestra.config import ScenarioSettings
from pytest_celestra.db.database import MARK, database_comment, drop_database
from pytest_celestra.plugin.run_info import RUN_KEY
from pytest_celestra.plugin.transactional import TransactionalDatabases, restore_order
from pytest_celestra.schema.volumes import Volume
from pytest_celestra.urls import libpq_url

#: Written by inner runs: the run id, and the database each test had.
RECORD = """
import json, pathlib
import pytest
from sqlalchemy import func, select
from pytest_celestra.plugin.run_info import RUN_KEY
from pytest_celestra.schema.models import User

RECORDS = pathlib.Path(__file__).parent / "records"

@pytest.fixture(autouse=True)
def record(request):
    yield
    engine = request.node.funcargs.get("celestra_transactional_engine")
    if engine is not None:
        RECORDS.mkdir(exist_ok=True)
        run = request.config.stash[RUN_KEY].run_id
        worker = request.config.stash[RUN_KEY].worker
        data = {"run": run, "database": engine.url.database, "worker": worker}
        (RECORDS / f"{request.node.name}.json").write_text(json.dumps(data))

def users(session):
    return session.scalar(select(func.count()).select_from(User))
"""


def records(pytester: pytest.Pytester, key: str = "database") -> tuple[str, dict[str, str]]:
    """The run id and test name -> database name (or ``key``) that ``RECORD`` wrote."""
    data = {
        path.stem: json.loads(path.read_text())
        for path in (pytester.path / "records").glob("*.json")
    }
    (run,) = {record["run"] for record in data.values()}
    return run, {name: record[key] for name, record in data.items()}


def ours_of_run(admin: psycopg.Connection, run_id: str) -> dict[str, str]:
    """Name -> comment of the test databases whose comment names ``run_id``."""
    rows = admin.execute(
        "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database "
        "WHERE shobj_description(oid, 'pg_database') LIKE %s",
        (f'{MARK} test database %"run": "{run_id}"%',),
    ).fetchall()
    return dict(rows)


def test_commits_from_any_connection_are_gone_before_the_next_test(
    celestra_pytester, run_inner, admin
):
    celestra_pytester.makeconftest(RECORD)
    celestra_pytester.makepyfile(
        """
        import threading
        import psycopg
        import pytest
        from sqlalchemy import create_engine, text
        from conftest import users
        from pytest_celestra.rows.factories import UserFactory

        def test_commits(celestra_transactional_db, celestra_transactional_dsn):
            assert users(celestra_transactional_db) == 20
            UserFactory(email="factory@example.com")
            celestra_transactional_db.commit()

            def app():  # code under test, with an engine of its own, in a thread
                engine = create_engine(
                    celestra_transactional_dsn.replace("postgresql:", "postgresql+psycopg:")
                )
                with engine.begin() as connection:
                    connection.execute(text("UPDATE users SET name = 'changed'"))
                engine.dispose()

            thread = threading.Thread(target=app)
            thread.start()
            thread.join()
            with psycopg.connect(celestra_transactional_dsn) as other:  # a second connection
                rows = other.execute("SELECT count(*) FROM users WHERE name = 'changed'")
                assert rows.fetchone() == (21,)

        def test_sees_none_of_it(celestra_transactional_db):
            assert users(celestra_transactional_db) == 20
            changed = "SELECT count(*) FROM users WHERE name = 'changed'"
            assert celestra_transactional_db.scalar(text(changed)) == 0

        LEAKED = []

        def test_only_reads(celestra_transactional_engine, celestra_transactional_dsn):
            with celestra_transactional_engine.connect() as connection:
                assert connection.scalar(text("SELECT count(*) FROM users")) == 20
            # left open on purpose, holding a lock: the plugin ends it after the test
            LEAKED.append(psycopg.connect(celestra_transactional_dsn))
            LEAKED[0].execute("SELECT pg_advisory_lock(42)")

        def test_reuses_it_without_the_leaked_session(celestra_transactional_db):
            lock = "SELECT pg_try_advisory_lock(42)"
            assert celestra_transactional_db.scalar(text(lock))

        def test_commits_then_fails(celestra_transactional_db):
            UserFactory(email="failed@example.com")
            celestra_transactional_db.commit()
            assert False, "fails on purpose"

        def test_after_the_failure(celestra_transactional_db):
            assert users(celestra_transactional_db) == 20

        @pytest.mark.celestra(volume="small,users=30")
        def test_marker(celestra_transactional_db):
            assert users(celestra_transactional_db) == 30

        def test_not_with_another_session(celestra_transactional_db, celestra_seeded_db):
            pass
        """
    )
    result = run_inner("-p", "no:randomly")
    result.assert_outcomes(passed=6, failed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*cannot use celestra_transactional_db together with celestra_seeded_db*"]
    )
    run, databases = records(celestra_pytester)
    # A database written to is never handed out again; one only read is reused.
    assert databases["test_sees_none_of_it"] != databases["test_commits"]
    assert databases["test_only_reads"] == databases["test_sees_none_of_it"]
    assert databases["test_reuses_it_without_the_leaked_session"] == databases["test_only_reads"]
    assert databases["test_after_the_failure"] != databases["test_commits_then_fails"]
    assert ours_of_run(admin, run) == {}, "every database is dropped at the end"


@pytest.mark.slow
def test_under_xdist_every_worker_has_its_own(celestra_pytester, run_inner, admin):
    celestra_pytester.makeconftest(RECORD)
    celestra_pytester.makepyfile(
        """
        import pytest
        from conftest import users
        from pytest_celestra.rows.factories import CompanyFactory, UserFactory

        @pytest.mark.parametrize("n", range(6))
        def test_commits_a_user(celestra_transactional_db, n):
            assert users(celestra_transactional_db) == 20
            UserFactory(company=CompanyFactory())
            celestra_transactional_db.commit()
        """
    )
    run_inner("-n", "2", "-p", "no:randomly").assert_outcomes(passed=6)
    run, databases = records(celestra_pytester)
    _, workers = records(celestra_pytester, "worker")
    used = {
        worker: {databases[test] for test in databases if workers[test] == worker}
        for worker in ("gw0", "gw1")
    }
    assert all(used.values()), "both workers ran tests"
    assert not used["gw0"] & used["gw1"], "no database is shared between workers"
    assert ours_of_run(admin, run) == {}


def test_keep_keeps_and_lists_each_tests_database(celestra_pytester, run_inner, admin):
    celestra_pytester.makepyfile(
        """
        from pytest_celestra.rows.factories import UserFactory

        def test_passes(celestra_transactional_db):
            UserFactory(email="kept@example.com")
            celestra_transactional_db.commit()

        def test_fails(celestra_transactional_dsn):
            assert False
        """
    )
    result = run_inner("--celestra-keep", "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if "kept test databases" in line)
    urls = [line for line in lines[start + 1 :] if line.startswith("postgresql://")]
    transactional = [url for url in urls if "celestra_transactional_" in url]
    assert len(transactional) == 2
    for url in urls:
        comment = database_comment(admin, make_url(url).database)
        assert comment.startswith(f"{MARK} test database ")
        assert '"kept": true' in comment
    with psycopg.connect(transactional[0]) as connection:
        rows = connection.execute("SELECT count(*) FROM users WHERE email = 'kept@example.com'")
        assert rows.fetchone() == (1,)
    for url in urls:
        drop_database(admin, make_url(url).database)


def test_lint_mode_makes_no_transactional_database(celestra_pytester, run_inner):
    celestra_pytester.makepyfile(
        """
        def test_never_runs(celestra_transactional_db):
            assert False
        """
    )
    result = run_inner("--celestra-lint")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["OK   UserFactory"])
    assert "celestra_transactional_" not in result.stdout.str()


@pytest.mark.slow
def test_a_killed_run_leaves_only_marked_databases(celestra_pytester, run_inner_process, admin):
    celestra_pytester.makepyfile(
        """
        import json, os, pathlib, signal, time
        from pytest_celestra.plugin.run_info import RUN_KEY

        def test_killed(request, celestra_transactional_engine):
            run = request.config.stash[RUN_KEY].run_id
            pathlib.Path("run.json").write_text(json.dumps(run))
            databases = request.getfixturevalue("_celestra_transactional_databases")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # until the clones made ahead are there
                if sum(len(ready) for ready in databases._ready.values()) >= 2:
                    break
                time.sleep(0.1)
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    run_inner_process("-p", "no:randomly")  # the run kills its own process
    run_id = json.loads((celestra_pytester.path / "run.json").read_text())
    left = ours_of_run(admin, run_id)
    assert left, "the test's database and those made ahead outlive a SIGKILL"
    for name, comment in left.items():
        assert comment.startswith(f"{MARK} test database "), name
        drop_database(admin, name)


# --- in process: what counts as a change ----------------------------------------------


@pytest.fixture
def transactional(suite_databases, pytestconfig):
    databases = TransactionalDatabases(suite_databases, pytestconfig.stash[RUN_KEY], ahead=0)
    yield databases
    databases.close()


SMALL = ScenarioSettings(Volume.parse("small"), 1234)
#: What a test may leave behind, and what becomes of its database: reused as it is,
#: restored (the tables written to are reloaded), or replaced by a fresh clone.
AFTERMATHS = [
    ("SELECT count(*) FROM users", "reused"),
    ("BEGIN; UPDATE users SET name = 'x'; ROLLBACK", "reused"),
    ("UPDATE users SET name = 'x'", "restored"),
    ("DELETE FROM notifications", "restored"),
    ("TRUNCATE notifications", "replaced"),  # new files: pg_class changes
    ("SET session_replication_role = replica; DELETE FROM user_lockouts", "restored"),
    ("DELETE FROM celestra_pristine.p{users}", "replaced"),
    ("CREATE TABLE scratch (x int)", "replaced"),
    ("ALTER TABLE users RENAME COLUMN name TO full_name", "replaced"),
    ("COMMENT ON TABLE users IS 'changed'", "replaced"),
    (
        "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET work_mem = %L', "
        "current_database(), '8MB'); END $$",
        "replaced",
    ),
    ("SELECT lo_create(0)", "replaced"),
    ("CREATE SEQUENCE counter; SELECT nextval('counter')", "replaced"),
]
SCENARIO_STATE = (
    "SELECT (SELECT count(*) FROM users WHERE name <> 'x'), (SELECT count(*) FROM notifications),"
    " (SELECT count(*) FROM user_lockouts)"
)


@pytest.mark.parametrize(("statement", "aftermath"), AFTERMATHS)
@pytest.mark.slow
def test_what_a_test_committed_is_gone_for_the_next(transactional, statement, aftermath):
    database = transactional.take(SMALL)
    with psycopg.connect(libpq_url(database.url), autocommit=True) as connection:
        users = connection.execute("SELECT 'users'::regclass::oid").fetchone()[0]
        connection.execute(statement.replace("{users}", str(users)))
    transactional.give_back(database, failed=False)
    again = transactional.take(SMALL)
    same = again.url == database.url
    assert same is (aftermath != "replaced")
    if aftermath != "replaced":
        assert again.changes() == set(), "restored: nothing to report"
    with psycopg.connect(libpq_url(again.url)) as connection:
        assert connection.execute(SCENARIO_STATE).fetchone() == (20, 100, 10)
    transactional.give_back(again, failed=False)


@pytest.mark.parametrize(
    ("changed", "foreign_keys", "order"),
    [
        ({1}, [(1, 2), (2, 3), (4, 5)], [1, 2, 3]),  # with what references it, parents first
        ({2}, [(1, 2), (2, 3)], [2, 3]),  # its parents stay as they are
        ({1}, [(1, 1)], [1]),  # a table referencing itself
        ({1}, [(1, 2), (2, 1)], None),  # a cycle: a fresh clone instead
    ],
)
def test_restore_order(changed, foreign_keys, order):
    assert restore_order(changed, foreign_keys) == order


def test_a_clone_whose_set_up_fails_is_dropped_even_when_its_first_drop_fails(
    transactional, suite_databases, admin, monkeypatch
):
    """The server gone for a moment while a clone is set up (its monitor connection) and
    dropped: the clone is dropped at the run's end, not forgotten on the server."""
    from pytest_celestra.db import database as database_module
    from pytest_celestra.plugin import transactional as transactional_module

    connect, drop = transactional_module.connect, database_module.drop_database
    made: list[str] = []

    def lost(url, **kwargs):
        made.append(str(url.database))
        raise psycopg.OperationalError("the server restarts")

    def refused(*args, **kwargs):
        raise psycopg.OperationalError("the server restarts")

    monkeypatch.setattr(transactional_module, "connect", lost)
    monkeypatch.setattr(database_module, "drop_database", refused)
    with pytest.raises(psycopg.OperationalError):
        transactional.take(SMALL)
    monkeypatch.setattr(transactional_module, "connect", connect)
    monkeypatch.setattr(database_module, "drop_database", drop)
    transactional.close()
    left = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (made[0],)).fetchall()
    assert left == [], f"{made[0]} was left on the server"
