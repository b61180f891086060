"""``celestra_async_session`` / ``celestra_async_seeded_db``: per-test isolation for async code."""

from __future__ import annotations

import importlib.util

import pytest

needs_async_support = pytest.mark.skipif(
    importlib.util.find_spec("pytest_asyncio") is None
    or importlib.util.find_spec("greenlet") is None,
    reason="needs pytest-asyncio and greenlet (pip install pytest-asyncio 'sqlalchemy[asyncio]')",
)

ASYNC_INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"

# The async driver reaches the suite's server by its URL (a socket folder for the embedded
# one): CI runs these on each path.
pytestmark = pytest.mark.server_path

ASYNC_TESTS = """
import pytest
from sqlalchemy import func, select, text
from pytest_celestra.errors import CelestraError
from pytest_celestra.rows.factories import CompanyFactory, UserFactory, bound_session
from pytest_celestra.schema.models import Company, User

pytestmark = pytest.mark.asyncio

async def count(session, model):
    return await session.scalar(select(func.count()).select_from(model))

async def test_seeded_sees_the_scenario_and_commits(celestra_async_seeded_db):
    session = celestra_async_seeded_db
    assert await count(session, User) == 20
    session.add(UserFactory.build(name="Ada Async"))  # its company comes with it
    await session.commit()  # only releases a savepoint
    assert await count(session, User) == 21
    assert await count(session, Company) == 6
    await session.execute(text("DELETE FROM user_sessions"))
    await session.commit()

async def test_the_next_seeded_test_sees_the_scenario_again(celestra_async_seeded_db):
    assert await count(celestra_async_seeded_db, User) == 20
    assert await count(celestra_async_seeded_db, Company) == 5
    names = await celestra_async_seeded_db.scalars(select(User.name))
    assert "Ada Async" not in set(names)

async def test_empty_database_and_sync_factories(celestra_async_session):
    session = celestra_async_session
    assert await count(session, User) == 0

    def make_admin(sync_session):
        with bound_session(sync_session):
            return UserFactory(company_admin=True)

    admin = await session.run_sync(make_admin)
    await session.commit()
    assert admin.company.name  # no I/O after a commit: expire_on_commit=False
    assert await count(session, User) == 1

    def make_many(sync_session):
        with bound_session(sync_session):
            return UserFactory.bulk_create(3)

    with pytest.raises(CelestraError, match="an async session cannot run it"):
        await session.run_sync(make_many)

async def test_the_next_empty_test_starts_empty(celestra_async_session):
    assert await count(celestra_async_session, User) == 0
    assert await count(celestra_async_session, Company) == 0

@pytest.mark.celestra(volume="small,users=30")
async def test_the_marker_applies(celestra_async_seeded_db):
    assert await count(celestra_async_seeded_db, User) == 30
"""


@needs_async_support
def test_async_sessions_roll_back_after_each_test(celestra_pytester, run_inner):
    celestra_pytester.makeini(ASYNC_INI)
    celestra_pytester.makepyfile(ASYNC_TESTS)
    run_inner("-p", "no:randomly", "-W", "error::DeprecationWarning").assert_outcomes(passed=5)


@needs_async_support
def test_async_factory_data_is_reseeded_per_test(celestra_pytester, run_inner):
    celestra_pytester.makeini(ASYNC_INI)
    celestra_pytester.makepyfile(
        """
        import pytest
        from pathlib import Path
        from pytest_celestra.rows.factories import UserFactory

        @pytest.mark.asyncio
        @pytest.mark.parametrize("test", ["a", "b"])
        async def test_name(celestra_async_session, test):
            (Path(__file__).parent / f"{test}.name").write_text(UserFactory.build().name)
        """
    )
    names = {}
    for order in (["a", "b"], ["b", "a"]):
        run_inner(
            *(
                f"test_async_factory_data_is_reseeded_per_test.py::test_name[{test}]"
                for test in order
            )
        ).assert_outcomes(passed=2)
        names[tuple(order)] = {
            path.stem: path.read_text() for path in celestra_pytester.path.glob("*.name")
        }
    assert names[("a", "b")] == names[("b", "a")]
    assert names[("a", "b")]["a"] != names[("a", "b")]["b"]


@pytest.mark.parametrize("fixture", ["celestra_async_session", "celestra_async_seeded_db"])
def test_without_pytest_asyncio_the_fixtures_say_what_to_install(
    celestra_pytester, run_inner, fixture
):
    celestra_pytester.makepyfile(
        f"""
        def test_async({fixture}):
            pass
        """
    )
    result = run_inner("-p", "no:asyncio")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            f"{fixture} needs pytest-asyncio, which runs async tests and fixtures: "
            "pip install pytest-asyncio (then mark async tests @pytest.mark.asyncio, or set "
            "asyncio_mode = auto)."
        ]
    )


@needs_async_support
def test_a_marked_async_test_cannot_use_the_run_scenario_engine(celestra_pytester, run_inner):
    """As `celestra_seeded_db`: the engine holds the run's scenario, not the marker's."""
    celestra_pytester.makeini(ASYNC_INI)
    celestra_pytester.makepyfile(
        """
        import pytest

        @pytest.mark.asyncio
        @pytest.mark.celestra(seed=3)
        async def test_both(celestra_async_seeded_db, celestra_seeded_engine):
            pass
        """
    )
    result = run_inner()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*@pytest.mark.celestra asks for volume=small seed=3, but celestra_seeded_engine*"]
    )


@needs_async_support
def test_the_async_seeded_db_cannot_share_a_test_with_celestra_session(
    celestra_pytester, run_inner
):
    """As `celestra_seeded_db`: the factories' rows would go to the empty database."""
    celestra_pytester.makeini(ASYNC_INI)
    celestra_pytester.makepyfile(
        """
        import pytest

        @pytest.mark.asyncio
        async def test_both(celestra_async_seeded_db, celestra_session):
            pass
        """
    )
    result = run_inner()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*cannot use celestra_async_seeded_db together with celestra_session*"
            "session.add(UserFactory.build())*"
        ]
    )
