"""No escaped transaction, in any form (issue 17, item 1).

A test can end the transaction ``celestra_session``/``celestra_seeded_db`` run it in so
that the driver still sees a transaction afterwards (``COMMIT AND CHAIN``, ``COMMIT;
BEGIN`` in one string), or leave state in its connection's session that a rollback does
not undo (a session advisory lock, an SQL ``PREPARE``, settings), or prepare its
transaction. The plugin asks the server (the transaction's start, the backend's locks,
the database's prepared transactions) and resets the session as connection poolers do:
each case is undone before the next test, or is that test's error naming it.

Prepared transactions are disabled on most servers (``max_prepared_transactions = 0``),
so those cases run on a throwaway server of their own.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

import psycopg
import pytest
from helpers import PREPARING, ThrowawayServer, running, throwaway_setup

from pytest_celestra.config import ServerMode
from pytest_celestra.db.cache_keys import builtin_schema_setup
from pytest_celestra.db.database import DatabaseManager
from pytest_celestra.db.seeding import Seeder
from pytest_celestra.db.server import Server
from pytest_celestra.urls import sqlalchemy_url

if TYPE_CHECKING:
    from collections.abc import Iterator

ESCAPES = """
import pytest
from sqlalchemy import text
from pytest_celestra.rows.factories import CompanyFactory

def count(session, table):
    return session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()

def test_01_commit_and_chain(celestra_session):
    CompanyFactory(name="Chained")
    celestra_session.execute(text("COMMIT AND CHAIN"))

def test_02_nothing_of_it(celestra_session, celestra_engine):
    assert count(celestra_session, "companies") == 0
    with celestra_engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM companies")).scalar_one() == 0

def test_03_commit_and_begin_in_one_string(celestra_seeded_db):
    celestra_seeded_db.execute(text("DELETE FROM notifications"))
    celestra_seeded_db.connection().exec_driver_sql("COMMIT; BEGIN")

def test_04_whole_again(celestra_seeded_db, celestra_scenario):
    expected = celestra_scenario.volume.counts["notifications"]
    assert count(celestra_seeded_db, "notifications") == expected

def test_05_rollback_and_chain(celestra_session):
    celestra_session.execute(text("ROLLBACK AND CHAIN"))
    CompanyFactory(name="After The Chain")

def test_06_end_then_writes(celestra_seeded_db):
    celestra_seeded_db.connection().exec_driver_sql("DELETE FROM notifications; END; BEGIN")

def test_07_whole_again(celestra_seeded_db, celestra_scenario):
    expected = celestra_scenario.volume.counts["notifications"]
    assert count(celestra_seeded_db, "notifications") == expected

def test_08_chain_then_an_error(celestra_session):
    CompanyFactory(name="Chained Then Failed")
    celestra_session.execute(text("COMMIT AND CHAIN"))
    with pytest.raises(Exception, match="division by zero"):
        celestra_session.connection().exec_driver_sql("SELECT 1/0")

def test_09_an_error_in_its_own_transaction_is_no_escape(celestra_session):
    CompanyFactory(name="Rolled Back")
    with pytest.raises(Exception, match="division by zero"):
        celestra_session.connection().exec_driver_sql("SELECT 1/0")

def test_10_nothing_of_them(celestra_session):
    assert count(celestra_session, "companies") == 0

def test_11_session_advisory_lock(celestra_session):
    celestra_session.execute(text("SELECT pg_advisory_lock(4242, 17)"))

def test_12_the_lock_is_free(celestra_session):
    assert celestra_session.execute(text("SELECT pg_try_advisory_xact_lock(4242, 17)")).scalar()

def test_13_session_state(celestra_session):
    celestra_session.execute(text("PREPARE celestra_probe AS SELECT 1"))
    celestra_session.execute(text("SELECT set_config('search_path', 'pg_catalog', false)"))
    celestra_session.execute(text("LISTEN celestra_probe"))
    celestra_session.execute(text("CREATE TEMP TABLE probe (id int)"))

def test_14_session_state_reset(celestra_session):
    assert count(celestra_session, "pg_prepared_statements WHERE from_sql") == 0
    assert celestra_session.execute(text("SHOW search_path")).scalar_one() != "pg_catalog"
    assert count(celestra_session, "pg_listening_channels()") == 0
    assert count(celestra_session, "pg_class WHERE relnamespace = pg_my_temp_schema()") == 0
"""

ESCAPED = {
    "test_01_commit_and_chain": "celestra_session",
    "test_03_commit_and_begin_in_one_string": "celestra_seeded_db",
    "test_05_rollback_and_chain": "celestra_session",
    "test_06_end_then_writes": "celestra_seeded_db",
    "test_08_chain_then_an_error": "celestra_session",
}


@pytest.mark.slow
def test_every_spelling_of_an_escape_errors_and_later_tests_see_nothing(celestra_pytester):
    celestra_pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    celestra_pytester.makepyfile(test_escapes=ESCAPES)
    result = celestra_pytester.runpytest("-p", "no:randomly", "-p", "no:xdist")
    output = result.stdout.str()
    result.assert_outcomes(passed=14, errors=len(ESCAPED) + 1)
    for test, fixture in ESCAPED.items():
        result.stdout.fnmatch_lines(
            [
                f"*test_escapes.py::{test} ended the transaction that {fixture} runs it in*"
                "has been replaced by a fresh clone*"
            ]
        )
    chained = [f"test_{n:02d}" for n in (1, 3, 5, 8)]
    for test in chained:
        assert f"{test}" in output
    assert output.count("the connection went on in another transaction") >= len(chained)
    result.stdout.fnmatch_lines(
        [
            "*test_11_session_advisory_lock left state in the connection celestra_session "
            "runs it on: the test still held the session advisory lock "
            "pg_advisory_lock(4242, 17) after its transaction ended*The plugin released it*"
        ]
    )
    assert "test_13_session_state" not in output.split("short test summary info")[1]
    assert "Traceback" not in output


ASYNC_CHAIN = """
import pytest
from sqlalchemy import text

pytestmark = pytest.mark.asyncio

async def test_1_chain(celestra_async_seeded_db):
    await celestra_async_seeded_db.execute(text("DELETE FROM notifications"))
    await celestra_async_seeded_db.execute(text("COMMIT AND CHAIN"))

async def test_2_whole_again(celestra_async_seeded_db, celestra_scenario):
    found = await celestra_async_seeded_db.scalar(text("SELECT count(*) FROM notifications"))
    assert found == celestra_scenario.volume.counts["notifications"]

async def test_3_lock(celestra_async_session):
    await celestra_async_session.execute(text("SELECT pg_advisory_lock(777001)"))

async def test_4_free(celestra_async_session):
    free = await celestra_async_session.scalar(text("SELECT pg_try_advisory_xact_lock(777001)"))
    assert free
"""


def test_the_async_fixtures_ask_the_server_too(celestra_pytester, run_inner):
    pytest.importorskip("pytest_asyncio")
    pytest.importorskip("greenlet")
    celestra_pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    celestra_pytester.makepyfile(test_async_chain=ASYNC_CHAIN)
    result = run_inner("-p", "no:randomly", "-p", "no:xdist")
    result.assert_outcomes(passed=4, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*test_1_chain ended the transaction that celestra_async_seeded_db runs it in: "
            "the test ended it and the connection went on in another transaction*",
            "*test_3_lock left state*pg_advisory_lock(777001)*",
        ]
    )


# --- prepared transactions: a throwaway server that allows them ----------------------


@pytest.fixture(scope="module")
def preparing_server() -> Iterator[ThrowawayServer]:
    """A throwaway server that allows prepared transactions and logical slots."""
    with running(ThrowawayServer(*throwaway_setup(), PREPARING)) as server:
        yield server


@pytest.fixture
def preparing_pytester(celestra_pytester, monkeypatch, preparing_server):
    monkeypatch.setenv("CELESTRA_SERVER", "dsn")
    monkeypatch.setenv("CELESTRA_DSN", preparing_server.url)
    return celestra_pytester


PREPARED = """
from sqlalchemy import text

def test_1_prepare_transaction(celestra_seeded_db):
    celestra_seeded_db.execute(text("DELETE FROM notifications"))
    celestra_seeded_db.execute(text("PREPARE TRANSACTION 'celestra_escape'"))

def test_2_writes_do_not_wait(celestra_seeded_db, celestra_scenario):
    celestra_seeded_db.execute(text("DELETE FROM notifications"))
    celestra_seeded_db.execute(text("UPDATE users SET email = email"))

def test_3_whole(celestra_seeded_db, celestra_scenario):
    found = celestra_seeded_db.execute(text("SELECT count(*) FROM notifications")).scalar_one()
    assert found == celestra_scenario.volume.counts["notifications"]
"""


@pytest.mark.slow
def test_a_prepared_transaction_is_rolled_back_and_its_database_replaced(
    preparing_pytester, run_inner, preparing_server
):
    preparing_pytester.makepyfile(test_prepared=PREPARED)
    result = run_inner("-p", "no:randomly", "-p", "no:xdist")
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*test_1_prepare_transaction ended the transaction that celestra_seeded_db runs "
            "it in: after the statement \"PREPARE TRANSACTION 'celestra_escape'\"*"
            "replaced by a fresh clone*"
        ]
    )
    assert "ObjectInUse" not in result.stdout.str()
    with psycopg.connect(preparing_server.url) as admin:
        assert admin.execute("SELECT gid FROM pg_prepared_xacts").fetchall() == []
        left = admin.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'celestra\\_seeded\\_%'"
        ).fetchall()
    assert left == []


def test_the_sweep_ends_prepared_transactions_in_databases_of_ours_only(preparing_server):
    def manager() -> DatabaseManager:
        return DatabaseManager(
            Server(ServerMode.DSN, sqlalchemy_url(preparing_server.url)),
            builtin_schema_setup(),
            Seeder(),
            run_id=secrets.token_hex(8),
            worker="probe",
        )

    gone = manager()
    gone.open()
    ours = gone.create_empty()
    theirs = f"not_ours_{secrets.token_hex(4)}"
    with psycopg.connect(preparing_server.url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {theirs}")
    try:
        for database in (ours.database, theirs):
            url = preparing_server.url.rsplit("/", 1)[0] + f"/{database}"
            with psycopg.connect(url) as inside:
                inside.execute(f"PREPARE TRANSACTION 'left_in_{database}'")
        gone.close()  # its lock is free: a killed run, as far as a sweep can tell
        manager().open()  # sweeps
        with psycopg.connect(preparing_server.url) as admin:
            prepared = admin.execute("SELECT gid, database FROM pg_prepared_xacts").fetchall()
            names = {name for (name,) in admin.execute("SELECT datname FROM pg_database")}
        assert prepared == [(f"left_in_{theirs}", theirs)]
        assert ours.database not in names
        assert theirs in names
    finally:
        url = preparing_server.url.rsplit("/", 1)[0] + f"/{theirs}"
        with psycopg.connect(url, autocommit=True) as inside:
            inside.execute(f"ROLLBACK PREPARED 'left_in_{theirs}'")
        with psycopg.connect(preparing_server.url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {theirs}")
