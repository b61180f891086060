"""Each fixture, used the way a user would: in a generated test file run by pytester."""

from __future__ import annotations

import pytest

from pytest_celestra.plugin.fixtures import ENTITY_FIXTURES

# The fixtures on the server the suite runs on: CI runs these on each path.
pytestmark = pytest.mark.server_path

COUNTS = """
from sqlalchemy import func, select
from pytest_celestra.schema.models import MODELS_IN_FK_ORDER
from pytest_celestra.schema.volumes import Volume

SMALL = dict(Volume.parse("small").counts)
EMPTY = dict.fromkeys(SMALL, 0)

def counts(session):
    return {
        model.__tablename__: session.scalar(select(func.count()).select_from(model))
        for model in MODELS_IN_FK_ORDER
    }
"""


def test_an_entity_fixture_for_every_table():
    assert sorted(ENTITY_FIXTURES) == sorted(
        f"celestra_{entity}"
        for entity in (
            "company",
            "knowledge_type",
            "agent",
            "knowledge_base",
            "user",
            "agent_knowledge_base",
            "knowledge_source",
            "audit_log",
            "failed_login",
            "invitation",
            "notification",
            "password_history",
            "user_lockout",
            "user_session",
            "audit_change_log",
        )
    )


def test_celestra_session_is_empty_and_rolls_back_commits(celestra_pytester, run_inner):
    celestra_pytester.makeconftest(COUNTS)
    celestra_pytester.makepyfile(
        """
        from conftest import EMPTY, counts
        from pytest_celestra.rows.factories import CompanyFactory
        from pytest_celestra.schema.models import Company

        def test_starts_empty(celestra_session):
            assert counts(celestra_session) == EMPTY

        def test_code_under_test_commits(celestra_session):
            company = CompanyFactory()
            celestra_session.commit()
            celestra_session.expire_all()
            assert celestra_session.get(Company, company.id).name == company.name
            assert counts(celestra_session)["companies"] == 1

        def test_the_next_test_starts_empty_again(celestra_session):
            assert counts(celestra_session) == EMPTY
        """
    )
    run_inner("-p", "no:randomly").assert_outcomes(passed=3)


def test_celestra_seeded_db_holds_the_scenario_for_every_test(celestra_pytester, run_inner):
    celestra_pytester.makeconftest(COUNTS)
    celestra_pytester.makepyfile(
        """
        from sqlalchemy import text
        from conftest import SMALL, counts
        from pytest_celestra.rows.factories import UserFactory

        def test_the_whole_scenario(celestra_seeded_db):
            assert counts(celestra_seeded_db) == SMALL

        def test_delete_everything_and_commit(celestra_seeded_db):
            celestra_seeded_db.execute(text("DELETE FROM companies"))
            celestra_seeded_db.execute(text("DELETE FROM knowledge_types"))
            celestra_seeded_db.commit()
            assert counts(celestra_seeded_db)["users"] < SMALL["users"]

        def test_the_next_test_sees_the_whole_scenario_again(celestra_seeded_db):
            assert counts(celestra_seeded_db) == SMALL

        def test_factories_write_into_the_seeded_database(celestra_seeded_db):
            user = UserFactory()
            assert counts(celestra_seeded_db)["users"] == SMALL["users"] + 1
            assert celestra_seeded_db.get(type(user), user.id) is user
        """
    )
    run_inner("-p", "no:randomly").assert_outcomes(passed=4)


def test_entity_fixtures_bring_their_parent_chain_and_roll_back(celestra_pytester, run_inner):
    celestra_pytester.makeconftest(COUNTS)
    celestra_pytester.makepyfile(
        """
        import pytest
        from sqlalchemy import text
        from conftest import EMPTY, counts
        from pytest_celestra.schema import models
        from pytest_celestra.plugin.fixtures import ENTITY_FIXTURES

        @pytest.mark.parametrize("name", sorted(ENTITY_FIXTURES))
        def test_entity(request, celestra_session, name):
            entity = request.getfixturevalue(name)
            model = getattr(models, ENTITY_FIXTURES[name])
            assert isinstance(entity, model)
            assert celestra_session.get(model, entity.id) is entity
            for key in model.__table__.foreign_keys:
                value = getattr(entity, key.parent.name)
                if not key.parent.nullable:
                    assert value is not None, key.parent
                if value is not None:
                    parent = key.column.table.name
                    found = celestra_session.execute(
                        text(f"SELECT count(*) FROM {parent} WHERE id = :id"), {"id": value}
                    ).scalar_one()
                    assert found == 1, (key.parent, value)

        def test_entities_are_rolled_back(celestra_session):
            assert counts(celestra_session) == EMPTY
        """
    )
    run_inner("-p", "no:randomly").assert_outcomes(passed=len(ENTITY_FIXTURES) + 1)


def test_engines_and_dsns_see_committed_rows_only(celestra_pytester, run_inner):
    celestra_pytester.makepyfile(
        """
        import psycopg
        from sqlalchemy import text
        from pytest_celestra.rows.factories import CompanyFactory
        from pytest_celestra.schema.volumes import Volume

        COUNT = "SELECT count(*) FROM companies"

        def test_empty_database(celestra_session, celestra_engine, celestra_dsn):
            CompanyFactory()
            celestra_session.commit()  # only releases a savepoint
            assert celestra_session.execute(text(COUNT)).scalar() == 1
            with celestra_engine.connect() as connection:
                assert connection.execute(text(COUNT)).scalar() == 0
            with psycopg.connect(celestra_dsn) as connection:
                assert connection.execute(COUNT).fetchone() == (0,)
                name = connection.execute("SELECT current_database()").fetchone()[0]
            assert name == celestra_engine.url.database
            assert name == celestra_session.connection().engine.url.database
            assert name.startswith("celestra_empty_main_")

        def test_seeded_database(celestra_seeded_db, celestra_seeded_engine, celestra_seeded_dsn):
            companies = Volume.parse("small").counts["companies"]
            CompanyFactory()
            with psycopg.connect(celestra_seeded_dsn) as connection:
                assert connection.execute(COUNT).fetchone() == (companies,)
                name = connection.execute("SELECT current_database()").fetchone()[0]
            assert name == celestra_seeded_engine.url.database
            assert name.startswith("celestra_seeded_main_")
            assert celestra_seeded_db.execute(text(COUNT)).scalar() == companies + 1
        """
    )
    run_inner().assert_outcomes(passed=2)


def test_seeded_db_and_the_empty_session_do_not_mix(celestra_pytester, run_inner):
    celestra_pytester.makepyfile(
        """
        def test_both(celestra_seeded_db, celestra_user):
            pass
        """
    )
    result = run_inner()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*cannot use celestra_seeded_db together with celestra_session or a celestra_<entity>*"]
    )


def test_factories_outside_a_celestra_fixture_name_the_fixtures(celestra_pytester, run_inner):
    celestra_pytester.makepyfile(
        """
        from pytest_celestra.rows.factories import CompanyFactory

        def test_no_session():
            CompanyFactory()
        """
    )
    result = run_inner()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*NoSessionError*celestra_session*celestra_seeded_db*"])


WORKER_TESTS = """
import pytest
from sqlalchemy import text
from conftest import SMALL, counts

@pytest.mark.parametrize("round", range(4))
def test_seeded(celestra_seeded_db, worker_id, round, tmp_path_factory):
    name = celestra_seeded_db.execute(text("SELECT current_database()")).scalar()
    assert name.startswith(f"celestra_seeded_{worker_id}_")
    assert counts(celestra_seeded_db) == SMALL
    celestra_seeded_db.execute(text("DELETE FROM users"))
    celestra_seeded_db.commit()
    (tmp_path_factory.getbasetemp().parent / f"{name}.db").touch()

@pytest.mark.parametrize("round", range(4))
def test_empty(celestra_session, worker_id, round, tmp_path_factory):
    name = celestra_session.execute(text("SELECT current_database()")).scalar()
    assert name.startswith(f"celestra_empty_{worker_id}_")
    assert sum(counts(celestra_session).values()) == 0
    (tmp_path_factory.getbasetemp().parent / f"{name}.db").touch()
"""


@pytest.mark.slow
def test_xdist_workers_get_databases_of_their_own(celestra_pytester, run_inner, admin, unique_seed):
    from helpers import templates_with_seed

    celestra_pytester.makeconftest(COUNTS)
    celestra_pytester.makepyfile(WORKER_TESTS)
    result = run_inner("-n", "2", f"--celestra-seed={unique_seed}")
    result.assert_outcomes(passed=8)
    used = sorted(path.stem for path in celestra_pytester.path.rglob("celestra_*.db"))
    kinds_and_workers = [tuple(name.split("_")[1:3]) for name in used]
    assert {worker for _, worker in kinds_and_workers} == {"gw0", "gw1"}
    assert len(set(kinds_and_workers)) == len(used)  # at most one of each kind per worker
    existing = {row[0] for row in admin.execute("SELECT datname FROM pg_database")}
    assert existing.isdisjoint(used)  # dropped at the end
    assert len(templates_with_seed(admin, unique_seed)) == 1  # built once, by one worker


START = "SELECT transaction_timestamp()"


@pytest.mark.parametrize(
    "database_fixture", ["_celestra_empty_database", "_celestra_seeded_databases"]
)
def test_per_test_sessions_share_one_connection_and_roll_back_once(request, database_fixture):
    """What keeps a test cheap: no connection checkout, one ROLLBACK (no ROLLBACK TO
    SAVEPOINT) at the end; besides, the transaction's start asked of the server when it
    begins and again before the rollback (what catches COMMIT AND CHAIN), and the session
    reset after it (through the driver: not a statement SQLAlchemy sees)."""
    from sqlalchemy import event, text

    from pytest_celestra.plugin.fixtures import rolled_back_session
    from pytest_celestra.plugin.run_info import CONFIG_KEY

    database = request.getfixturevalue(database_fixture)
    if database_fixture == "_celestra_seeded_databases":
        database = database.database(request.config.stash[CONFIG_KEY].scenario)
    connection, guard = database.connection()
    seen: list[str] = []
    listeners = {
        "before_cursor_execute": lambda _c, _cur, statement, *_: seen.append(statement),
        "rollback": lambda _c: seen.append("(rollback)"),
        "rollback_savepoint": lambda _c, name, _ctx: seen.append(f"(rollback to {name})"),
    }
    for name, listener in listeners.items():
        event.listen(connection, name, listener)
    try:
        with rolled_back_session(connection, guard):
            pass
        assert seen == [START, START, "(rollback)"]
        seen.clear()
        with rolled_back_session(connection, guard) as session:
            session.execute(text("SELECT 1"))
            session.commit()  # releases the savepoint
            session.execute(text("SELECT 2"))
    finally:
        for name, listener in listeners.items():
            event.remove(connection, name, listener)
    savepoints = [statement for statement in seen if statement.startswith("SAVEPOINT")]
    released = [statement for statement in seen if statement.startswith("RELEASE")]
    assert len(savepoints) == 2
    assert len(released) == 1
    assert [s for s in seen if s not in savepoints + released] == [
        START,
        "SELECT 1",
        "SELECT 2",
        START,
        "(rollback)",
    ]
    assert database.connection()[0] is connection  # the same connection for the next test


REPRODUCIBLE_TESTS = """
from pathlib import Path
from pytest_celestra.rows.factories import CompanyFactory, UserFactory

def record(test, *values):
    folder = Path(__file__).parent / "names"
    folder.mkdir(exist_ok=True)
    (folder / test).write_text(" | ".join(values))

def test_a(celestra_session):
    record("a", CompanyFactory().name, UserFactory().email)

def test_b(celestra_user):
    record("b", celestra_user.name, celestra_user.email, CompanyFactory().name, UserFactory().email)

def test_c(celestra_seeded_db):
    record("c", UserFactory().name, UserFactory().email)
"""

#: Reseeds the way pytest-randomly does, at each test call (not installed here).
LIKE_PYTEST_RANDOMLY = """
import os, factory.random

def pytest_runtest_call(item):
    if os.environ.get("LIKE_RANDOMLY"):
        factory.random.reseed_random(os.environ["LIKE_RANDOMLY"])
"""


@pytest.mark.slow
def test_factory_data_is_the_same_in_any_test_order(celestra_pytester, run_inner, monkeypatch):
    celestra_pytester.makeconftest(LIKE_PYTEST_RANDOMLY)
    celestra_pytester.makepyfile(test_reproducible=REPRODUCIBLE_TESTS)
    names = celestra_pytester.path / "names"

    def names_after(*args: str) -> dict[str, str]:
        run_inner("-p", "no:randomly", *args).assert_outcomes(passed=3)
        found = {path.name: path.read_text() for path in names.iterdir()}
        for path in names.iterdir():
            path.unlink()
        return found

    in_order = names_after()
    assert sorted(in_order) == ["a", "b", "c"]
    reverse = [f"test_reproducible.py::test_{name}" for name in "cba"]
    assert names_after(*reverse) == in_order
    assert names_after("-n", "2") == in_order
    monkeypatch.setenv("LIKE_RANDOMLY", "1")
    assert names_after(*reverse) == in_order
    monkeypatch.setenv("LIKE_RANDOMLY", "2")
    assert names_after() == in_order
    monkeypatch.delenv("LIKE_RANDOMLY")
    other_seed = names_after("--celestra-seed=99")
    assert all(other_seed[test] != in_order[test] for test in in_order)
