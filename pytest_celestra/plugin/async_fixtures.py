"""`celestra_async_session` and `celestra_async_seeded_db`: the same isolation, for async code.

Registered only when pytest-asyncio is active and greenlet installed; otherwise fixtures
of these names fail naming what to install (`fixtures.AsyncFixturesUnavailable`).

Each test gets an `AsyncSession` (psycopg async) joined to an outer transaction through a
savepoint and rolled back after the test. The fixtures run in the loop of pytest-asyncio's
`asyncio_default_fixture_loop_scope`; connections are opened per test, so none outlives
its loop. Factories cannot write through an `AsyncSession`: `session.add(Factory.build())`,
or `await session.run_sync(make)` with `bound_session(sync_session)` inside `make`.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import pytest_asyncio

from pytest_celestra.plugin.fixtures import (
    IsolationGuard,
    RollbackDatabase,
    SeededDatabases,
    TransactionEscapedError,
    end_test_transaction,
    reseed_factories,
    seeded_database,
)
from pytest_celestra.plugin.run_info import scenario_of

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import pytest
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

    from pytest_celestra.schema.app_rules import SchemaRules


@contextlib.asynccontextmanager
async def rolled_back_async_session(
    engine: AsyncEngine, rules: SchemaRules | None = None
) -> AsyncIterator[AsyncSession]:
    """An `AsyncSession` rolled back at the end, as
    [`rolled_back_session`][pytest_celestra.plugin.fixtures.rolled_back_session]; its
    `sync_session` carries `rules` for the factories. `expire_on_commit=False`: after a
    commit, reading an attribute must not need I/O."""
    from sqlalchemy.ext.asyncio import AsyncSession

    from pytest_celestra.schema.app_rules import SESSION_INFO_KEY

    async with engine.connect() as connection:
        assert connection.sync_connection is not None  # set by connect()
        guard = IsolationGuard(connection.sync_connection)
        transaction = (await connection.begin()).sync_transaction
        assert transaction is not None  # set by begin()
        await connection.run_sync(guard.open)
        session = AsyncSession(
            bind=connection,
            join_transaction_mode="create_savepoint",
            expire_on_commit=False,
            info=None if rules is None else {SESSION_INFO_KEY: rules},
        )
        try:
            yield session
        finally:
            await connection.run_sync(
                end_test_transaction, guard, transaction, session.sync_session
            )


@contextlib.asynccontextmanager
async def isolated_async_session(
    request: pytest.FixtureRequest, database: RollbackDatabase
) -> AsyncIterator[AsyncSession]:
    """A rolled-back async session on `database`; replaced if the test escapes it."""
    rules = database.run.rules
    try:
        async with rolled_back_async_session(database.async_engine, rules) as session:
            yield session
    except TransactionEscapedError as error:
        escape = error
    else:
        return
    database.escaped(request, escape)  # outside the except: no chained traceback


@pytest_asyncio.fixture
async def celestra_async_session(
    request: pytest.FixtureRequest,
    _celestra_empty_database: RollbackDatabase,
) -> AsyncIterator[AsyncSession]:
    """An `AsyncSession` on the empty Celestra schema, rolled back after the test, commits
    included. Needs pytest-asyncio (`@pytest.mark.asyncio` in strict mode). Factories do
    not write through it: `session.add(Factory.build())`, or `await session.run_sync(...)`
    with `bound_session`."""
    seed = scenario_of(request.node).seed
    reseed_factories(seed, request.node.nodeid, "celestra_async_session")
    async with isolated_async_session(request, _celestra_empty_database) as session:
        yield session


@pytest_asyncio.fixture
async def celestra_async_seeded_db(
    request: pytest.FixtureRequest,
    _celestra_seeded_databases: SeededDatabases,
) -> AsyncIterator[AsyncSession]:
    """An `AsyncSession` on the scenario of `celestra_seeded_db` (the run's, or its
    `@pytest.mark.celestra`), otherwise as `celestra_async_session`."""
    database = seeded_database(request, _celestra_seeded_databases, "celestra_async_seeded_db")
    async with isolated_async_session(request, database) as session:
        yield session
