"""Each way to a server (DSN, local pg_ctl, embedded), its failures, and its safety."""

from __future__ import annotations

import os
import secrets
import shutil

import psycopg
import pytest
from helpers import skip_unless_the_embedded_server_can_start
from psycopg import sql
from sqlalchemy.engine import make_url

from pytest_celestra.db.database import MARK, drop_database
from pytest_celestra.urls import libpq_url

# Each way to a server, tried from the server the suite runs on: CI runs these on each path.
pytestmark = pytest.mark.server_path

USES_BOTH = """
from sqlalchemy import text

def test_empty(celestra_session):
    assert celestra_session.execute(text("SELECT count(*) FROM users")).scalar() == 0

def test_seeded(celestra_seeded_db):
    assert celestra_seeded_db.execute(text("SELECT count(*) FROM companies")).scalar() == 5
"""

FSYNC_IS = """
def test_fsync(celestra_session):
    assert celestra_session.execute(text("SHOW fsync")).scalar() == {!r}
"""

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def header(result: pytest.RunResult) -> str:
    return next(line for line in result.outlines if line.startswith("celestra: "))


@pytest.fixture(scope="module")
def reachable_dsn() -> str:
    """The suite's DSN (CELESTRA_DSN), else the conventional local server, else skip."""
    dsn = os.environ.get("CELESTRA_DSN") or "postgresql://postgres@127.0.0.1:5432/postgres"
    try:
        psycopg.connect(dsn, connect_timeout=3).close()
    except psycopg.OperationalError as error:
        pytest.skip(f"no PostgreSQL server at {dsn}: {error}")
    return dsn


def test_dsn_path(celestra_pytester, run_inner, monkeypatch, reachable_dsn):
    monkeypatch.setenv("CELESTRA_DSN", reachable_dsn)
    monkeypatch.setenv("CELESTRA_SERVER", "auto")
    with psycopg.connect(reachable_dsn) as connection:
        fsync = connection.execute("SHOW fsync").fetchone()[0]
    celestra_pytester.makepyfile(USES_BOTH + FSYNC_IS.format(fsync))  # a DSN's settings stay
    result = run_inner()
    result.assert_outcomes(passed=3)
    bare = make_url(reachable_dsn)
    expected = f"server=dsn (env) postgresql://{bare.username}@{bare.host}:{bare.port or 5432} "
    assert expected + "PostgreSQL " in header(result)


@pytest.mark.slow
def test_embedded_path(celestra_pytester, run_inner_process, monkeypatch, inner_server_env):
    skip_unless_the_embedded_server_can_start()
    pgdata = inner_server_env["CELESTRA_PGDATA"]
    monkeypatch.setenv("CELESTRA_SERVER", "embedded")
    celestra_pytester.makepyfile(USES_BOTH + FSYNC_IS.format("off"))  # ours: disposable
    result = run_inner_process()
    result.assert_outcomes(passed=3)
    assert f"server=embedded (env) {pgdata} PostgreSQL " in header(result)


@pytest.mark.skipif(IS_ROOT, reason="pg_ctl refuses to run as root; CI runs this as a user")
@pytest.mark.skipif(shutil.which("pg_ctl") is None, reason="no pg_ctl on PATH")
def test_local_pg_ctl_path(celestra_pytester, run_inner, monkeypatch):
    monkeypatch.delenv("CELESTRA_DSN", raising=False)
    monkeypatch.delenv("CELESTRA_SERVER")
    celestra_pytester.makepyfile(USES_BOTH + FSYNC_IS.format("off"))
    result = run_inner()
    result.assert_outcomes(passed=3)
    assert f"server=local (default) {shutil.which('pg_ctl')} PostgreSQL " in header(result)


@pytest.mark.skipif(IS_ROOT, reason="pg_ctl refuses to run as root; CI runs this as a user")
@pytest.mark.skipif(shutil.which("pg_ctl") is None, reason="no pg_ctl on PATH")
def test_databases_kept_on_the_local_server_are_said_to_go_with_it(
    celestra_pytester, run_inner, monkeypatch
):
    """The summary listed their URLs to inspect with psql, and the server was gone."""
    monkeypatch.delenv("CELESTRA_DSN", raising=False)
    monkeypatch.delenv("CELESTRA_SERVER")
    celestra_pytester.makepyfile("def test_empty(celestra_session):\n    pass\n")
    result = run_inner("--celestra-keep")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "celestra: the test databases kept with --celestra-keep were on this run's "
            "throwaway local server (pg_ctl), which stops with the run: they are gone.*"
        ]
    )


@pytest.mark.skipif(not IS_ROOT, reason="checks what happens as root")
def test_as_root_the_local_path_is_skipped_and_says_why(celestra_pytester, run_inner, monkeypatch):
    monkeypatch.delenv("CELESTRA_DSN", raising=False)
    monkeypatch.delenv("CELESTRA_SERVER")
    celestra_pytester.makepyfile(USES_BOTH)
    line = header(run_inner("--co"))
    assert " server=embedded (default) " in line
    assert line.endswith("(local pg_ctl skipped: running as root, which pg_ctl refuses)")
    result = run_inner("--celestra-server=local")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*server=local (option) cannot work: local pg_ctl skipped: running as root*"]
    )


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["single", "xdist"])
@pytest.mark.slow
def test_an_unreachable_server_fails_fast_with_one_message(
    celestra_pytester, run_inner, monkeypatch, workers
):
    monkeypatch.setenv("CELESTRA_DSN", "postgresql://postgres@127.0.0.1:1/x")
    monkeypatch.setenv("CELESTRA_SERVER", "auto")
    celestra_pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("n", range(20))
        def test_needs_a_database(celestra_session, n):
            pass
        """
    )
    result = run_inner(*workers)  # fast is what the outcomes show: a stop after one error
    assert result.ret != 0
    outcomes = result.parseoutcomes()
    assert 1 <= outcomes["errors"] <= 2  # the first test of each process, then a stop
    assert "passed" not in outcomes
    output = result.stdout.str()
    assert "cannot connect to PostgreSQL at 127.0.0.1:1 (DSN from env)" in output
    assert "--celestra-dsn, ini celestra_dsn or environment variable CELESTRA_DSN" in output
    assert "Start that server or fix the URL" in output
    assert "pytest-celestra cannot use its database server" in output


def test_a_login_the_server_refuses_is_not_called_a_server_to_start(
    celestra_pytester, run_inner, monkeypatch, admin_dsn
):
    """An unknown role or database: the server answered, so "start that server" was wrong."""
    role = make_url(admin_dsn).set(username=f"celestra_no_role_{secrets.token_hex(4)}")
    monkeypatch.setenv("CELESTRA_DSN", libpq_url(role))
    monkeypatch.setenv("CELESTRA_SERVER", "dsn")
    celestra_pytester.makepyfile("def test_needs_a_database(celestra_session):\n    pass\n")
    result = run_inner()
    assert result.ret != 0
    output = result.stdout.str()
    assert "does not exist" in output
    assert "The server is running and refused this login" in output
    assert "Start that server" not in output


@pytest.fixture
def victim(admin, admin_dsn):
    """A database the plugin did not create, with a row in it, named as the DSN's database."""
    name = f"celestra_victim_{secrets.token_hex(4)}"
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = libpq_url(make_url(admin_dsn).set(database=name))
    with psycopg.connect(url) as connection:
        connection.execute("CREATE TABLE precious (id int PRIMARY KEY, note text)")
        connection.execute("INSERT INTO precious VALUES (1, 'keep me')")
    yield name, url
    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.mark.slow
def test_the_dsns_own_database_is_never_dropped_or_written(
    celestra_pytester, run_inner, monkeypatch, admin, victim
):
    name, url = victim
    monkeypatch.setenv("CELESTRA_DSN", url)
    monkeypatch.setenv("CELESTRA_SERVER", "dsn")
    celestra_pytester.makepyfile(USES_BOTH)
    run_inner("--celestra-rebuild").assert_outcomes(passed=2)
    with psycopg.connect(url) as connection:
        tables = connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
        assert tables == [("precious",)]
        assert connection.execute("SELECT * FROM precious").fetchall() == [(1, "keep me")]
    comment = admin.execute(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
        (name,),
    ).fetchone()
    assert comment == (None,)


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["single", "xdist"])
@pytest.mark.slow
def test_keep_leaves_the_test_databases_and_prints_their_urls(
    celestra_pytester, run_inner, admin, workers
):
    celestra_pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("n", range(4))
        def test_uses_a_database(celestra_session, n):
            pass
        """
    )
    result = run_inner("--celestra-keep", *workers)
    result.assert_outcomes(passed=4)
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if "kept test databases" in line)
    urls = [line for line in lines[start + 1 :] if line.startswith("postgresql://")]
    assert len(urls) == (2 if workers else 1)
    for url in urls:
        name = make_url(url).database
        with psycopg.connect(url) as connection:
            assert connection.execute("SELECT count(*) FROM users").fetchone() == (0,)
        comment = admin.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            (name,),
        ).fetchone()[0]
        assert comment.startswith(f"{MARK} test database ")
        assert '"kept": true' in comment
        drop_database(admin, name)
