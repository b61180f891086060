"""Isolation survives a test that escapes its transaction (issue 8, section 3).

A test that runs ``COMMIT`` or ``ROLLBACK`` through its session (or commits the DB-API
connection) ends the transaction the plugin rolls back after it. The plugin notices,
reports it as that test's error with a message saying what happened and what to use
instead, and replaces the database with a fresh clone before the next test, so no later
test sees anything of it. One inner run holds every case, in the order they happen.
"""

from __future__ import annotations

import importlib.util
import re

import pytest

ESCAPING_TESTS = """
import pytest
from sqlalchemy import text
from pytest_celestra.rows.factories import CompanyFactory

COUNT = "SELECT count(*) FROM {}"

def count(session, table):
    return session.execute(text(COUNT.format(table))).scalar_one()

def test_01_commit_in_the_empty_database(celestra_session):
    CompanyFactory(name="Escaped Empty")
    celestra_session.execute(text("COMMIT"))
    # More statements start a new transaction: the COMMIT must not hide behind it.
    assert count(celestra_session, "companies") == 1

def test_02_the_empty_database_is_empty_again(celestra_session, celestra_engine):
    assert count(celestra_session, "companies") == 0
    with celestra_engine.connect() as connection:  # what is committed
        assert connection.execute(text(COUNT.format("companies"))).scalar_one() == 0

def test_03_commit_in_the_seeded_database(celestra_seeded_db):
    celestra_seeded_db.execute(text("DELETE FROM audit_change_logs"))
    celestra_seeded_db.execute(text("COMMIT"))

def test_04_the_seeded_database_is_whole_again(celestra_seeded_db, celestra_scenario):
    expected = celestra_scenario.volume.counts["audit_change_logs"]
    assert count(celestra_seeded_db, "audit_change_logs") == expected
    assert celestra_scenario.rows["audit_change_logs"] == expected

def test_05_rollback_in_the_seeded_database(celestra_seeded_db):
    celestra_seeded_db.execute(text("DELETE FROM notifications"))
    celestra_seeded_db.execute(text("ROLLBACK"))

def test_06_rollback_then_writes_in_the_empty_database(celestra_session):
    CompanyFactory()
    celestra_session.execute(text("ROLLBACK"))
    CompanyFactory(name="After The Rollback")

def test_07_commit_of_the_dbapi_connection(celestra_session):
    CompanyFactory(name="Committed By The Driver")
    celestra_session.connection().connection.dbapi_connection.commit()

def test_07b_commit_of_the_sqlalchemy_connection(celestra_seeded_db):
    celestra_seeded_db.execute(text("DELETE FROM audit_change_logs"))
    celestra_seeded_db.connection().commit()
    assert count(celestra_seeded_db, "audit_change_logs") == 0

def test_08_nothing_of_them_is_left(celestra_session, celestra_seeded_db_engine_counts):
    assert count(celestra_session, "companies") == 0
    assert celestra_seeded_db_engine_counts == (True, True)

def test_09_session_commit_is_not_an_escape(celestra_seeded_db):
    celestra_seeded_db.execute(text("DELETE FROM notifications"))
    celestra_seeded_db.commit()
    assert count(celestra_seeded_db, "notifications") == 0

@pytest.fixture
def celestra_seeded_db_engine_counts(celestra_seeded_engine, celestra_scenario):
    with celestra_seeded_engine.connect() as connection:
        return tuple(
            connection.execute(text(COUNT.format(table))).scalar_one()
            == celestra_scenario.volume.counts[table]
            for table in ("audit_change_logs", "notifications")
        )
"""

ESCAPED = {
    "test_01_commit_in_the_empty_database": ("celestra_session", "'COMMIT'"),
    "test_03_commit_in_the_seeded_database": ("celestra_seeded_db", "'COMMIT'"),
    "test_05_rollback_in_the_seeded_database": ("celestra_seeded_db", "'ROLLBACK'"),
    "test_06_rollback_then_writes_in_the_empty_database": ("celestra_session", "'ROLLBACK'"),
    "test_07_commit_of_the_dbapi_connection": ("celestra_session", "the connection itself"),
    "test_07b_commit_of_the_sqlalchemy_connection": (
        "celestra_seeded_db",
        "the connection itself",
    ),
}


@pytest.mark.slow
def test_an_escaping_test_errors_and_no_later_test_sees_its_changes(celestra_pytester, run_inner):
    celestra_pytester.makepyfile(test_escapes=ESCAPING_TESTS)
    result = run_inner("-p", "no:randomly", "-p", "no:xdist")
    output = result.stdout.str()
    # Every test passes (the later ones see nothing); each escaping one errors at teardown.
    result.assert_outcomes(passed=10, errors=len(ESCAPED))
    errors = re.findall(r"ERROR at teardown of (\w+)", output)
    assert sorted(errors) == sorted(ESCAPED)
    for test, (fixture, how) in ESCAPED.items():
        message = (
            f"*pytest-celestra: test_escapes.py::{test} ended the transaction that {fixture} "
            f"runs it in: after *{how}* the connection was outside any transaction*"
        )
        result.stdout.fnmatch_lines([message])
    # What it says to do instead, once per escaping test in the error reports (the short
    # summary repeats the message cut to the terminal's width, so it is not counted).
    reports = output.split("short test summary info")[0]
    assert reports.count("has been replaced by a fresh clone of its template") == len(ESCAPED)
    assert reports.count("use the celestra_transactional_db fixture") == len(ESCAPED)
    assert reports.count("session.commit() and session.rollback() are safe") == len(ESCAPED)
    # No raw driver error.
    assert "does not exist" not in output
    assert "Traceback" not in output


ASYNC_ESCAPING_TESTS = """
import pytest
from sqlalchemy import text

pytestmark = pytest.mark.asyncio

async def test_1_commit(celestra_async_seeded_db):
    await celestra_async_seeded_db.execute(text("DELETE FROM notifications"))
    await celestra_async_seeded_db.execute(text("COMMIT"))

async def test_2_whole_again(celestra_async_seeded_db, celestra_scenario):
    found = await celestra_async_seeded_db.scalar(text("SELECT count(*) FROM notifications"))
    assert found == celestra_scenario.volume.counts["notifications"]
"""


@pytest.mark.skipif(
    importlib.util.find_spec("pytest_asyncio") is None
    or importlib.util.find_spec("greenlet") is None,
    reason="needs pytest-asyncio and greenlet (pip install pytest-asyncio 'sqlalchemy[asyncio]')",
)
def test_the_async_fixtures_notice_it_too(celestra_pytester, run_inner):
    celestra_pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    celestra_pytester.makepyfile(test_async_escapes=ASYNC_ESCAPING_TESTS)
    result = run_inner("-p", "no:randomly", "-p", "no:xdist")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*test_1_commit ended the transaction that celestra_async_seeded_db runs it in:"
            " after the statement 'COMMIT'*"
        ]
    )


def test_a_connection_the_server_closed_is_replaced_before_the_next_test(request, admin):
    """A server restart or a terminated backend between tests costs nothing: the shared
    connection is checked without a round trip and opened again."""
    import time

    from sqlalchemy import text

    from pytest_celestra.plugin.fixtures import rolled_back_session

    database = request.getfixturevalue("_celestra_empty_database")
    connection, guard = database.connection()
    pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    connection.rollback()
    admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # until the goodbye has reached the socket
        fresh, guard = database.connection()
        if fresh is not connection:
            break
        time.sleep(0.05)
    assert fresh is not connection
    with rolled_back_session(fresh, guard) as session:
        assert session.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
