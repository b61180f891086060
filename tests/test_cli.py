"""``celestra-seed`` as a user runs it, against the suite's server (``CELESTRA_DSN``, e.g.
127.0.0.1:5432, or the embedded one), on scratch databases named ``celestra_cli_*`` that
are dropped afterwards. Called in this process (``cli.main``) where its exit status and
output tell all; in a child process where the process is what is tested (the console
script, a terminal, a server that outlives the command)."""

from __future__ import annotations

import json
import os
import pty
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
from helpers import (
    ANCHOR_DAY,
    SMALL,
    checksum,
    create_database,
    psql,
    row_counts,
    run_cli,
    run_cli_process,
    skip_unless_the_embedded_server_can_start,
)
from psycopg import sql
from sqlalchemy.engine import make_url

from pytest_celestra.rows.sqlscript import copy_header, copy_line
from pytest_celestra.schema.volumes import Volume
from pytest_celestra.urls import libpq_url

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


@pytest.fixture(scope="module")
def seeded_template(admin_dsn: str) -> Iterator[str]:
    """Name of a database seeded at volume small by the CLI, once for this module: the
    tests seed copies of it."""
    name = f"celestra_cli_{secrets.token_hex(4)}"
    url = libpq_url(make_url(admin_dsn).set(database=name))
    try:
        result = run_cli("--dsn", url, "--volume", "small", "--anchor-day", ANCHOR_DAY)
        assert result.returncode == 0, result.stderr
        yield name
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def seeded(scratch: Callable[[], str], admin_dsn: str, seeded_template: str) -> str:
    """URL of a scratch database seeded at volume small by the CLI (a copy of the
    module's)."""
    url = scratch()
    create_database(admin_dsn, url, template=seeded_template)
    return url


# --- seeding a server ---------------------------------------------------------------


def test_the_console_script_seeds_the_database_named_in_the_dsn(scratch):
    url = scratch()
    result = run_cli_process("--dsn", url, "--volume", "small", "--seed", "7", script=True)
    assert result.returncode == 0, result.stderr
    assert row_counts(url) == SMALL
    database = make_url(url).database
    assert f"Seeded database {database!r}, created now" in result.stdout
    assert "audit_change_logs" in result.stdout
    assert "total" in result.stdout
    # Not a terminal: nothing but the summary, no progress bars or escape codes.
    assert result.stderr == ""
    assert "\x1b[" not in result.stdout


def test_json_summary_matches_the_database(scratch):
    url = scratch()
    volume = "small,users=33"
    result = run_cli("--dsn", url, "--volume", volume, "--seed", "42", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    expected = dict(Volume.parse(volume).counts)
    assert summary["rows"] == expected == row_counts(url)
    assert summary["total_rows"] == sum(expected.values())
    assert (summary["volume"], summary["seed"], summary["target"]) == (volume, 42, "dsn")
    assert summary["database"] == make_url(url).database
    assert summary["created_database"] is True
    assert summary["seconds"] > 0
    with psycopg.connect(summary["url"]) as connection:
        assert connection.execute("SELECT count(*) FROM users").fetchone() == (33,)


def test_refuses_a_database_whose_celestra_tables_hold_rows(seeded):
    before = checksum(seeded, "users")
    result = run_cli("--dsn", seeded, "--volume", "small", "--seed", "99")
    assert result.returncode == 1
    assert result.stdout == ""  # refused before anything was generated: no summary
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1
    assert "already holds Celestra data" in message
    assert "--reset" in message
    assert "--database" in message
    assert checksum(seeded, "users") == before


def test_reset_empties_only_the_celestra_tables(seeded):
    with psycopg.connect(seeded, autocommit=True) as connection:
        connection.execute("CREATE TABLE keep_me (note text)")
        connection.execute("INSERT INTO keep_me VALUES ('mine')")
        # A table of the same name as a Celestra one, in another schema.
        connection.execute("CREATE SCHEMA other")
        connection.execute("CREATE TABLE other.users (note text)")
        connection.execute("INSERT INTO other.users VALUES ('also mine')")
    reseed = ("--dsn", seeded, "--volume", "small,users=30", "--seed", "5", "--reset")
    result = run_cli(*reseed)
    assert result.returncode == 0, result.stderr
    assert "its Celestra tables were emptied first" in result.stdout
    assert row_counts(seeded) == dict(Volume.parse("small,users=30").counts)
    with psycopg.connect(seeded) as connection:
        assert connection.execute("SELECT note FROM keep_me").fetchall() == [("mine",)]
        assert connection.execute("SELECT note FROM other.users").fetchall() == [("also mine",)]


def test_reset_never_cascades_to_a_table_of_yours(seeded):
    """A table with a foreign key to a Celestra table: TRUNCATE would need CASCADE,
    which would empty it too; --reset refuses instead and writes nothing."""
    with psycopg.connect(seeded, autocommit=True) as connection:
        connection.execute(
            "CREATE TABLE favourites (user_id uuid REFERENCES users (id));"
            "INSERT INTO favourites SELECT id FROM users LIMIT 1"
        )
    before = row_counts(seeded)
    result = run_cli("--dsn", seeded, "--volume", "small", "--reset")
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "favourites" in result.stderr
    assert "never empties other tables" in result.stderr
    assert row_counts(seeded) == before
    with psycopg.connect(seeded) as connection:
        assert connection.execute("SELECT count(*) FROM favourites").fetchone() == (1,)


# --- the SQL script -----------------------------------------------------------------


def test_sql_script_loads_with_psql_and_matches_a_direct_seed(scratch, admin_dsn, tmp_path):
    script = tmp_path / "celestra.sql"
    scenario = ("--volume", "small", "--seed", "11", "--anchor-day", ANCHOR_DAY)
    written = run_cli(*scenario, "--sql", str(script), "--json")
    assert written.returncode == 0, written.stderr
    assert json.loads(written.stdout)["sql_bytes"] == script.stat().st_size
    assert not script.with_name("celestra.sql.partial").exists()

    loaded, direct = scratch(), scratch()
    create_database(admin_dsn, loaded)
    result = psql(loaded, "-f", str(script))
    assert result.returncode == 0, result.stderr
    assert run_cli("--dsn", direct, *scenario).returncode == 0

    assert row_counts(loaded) == row_counts(direct) == SMALL
    for table in ("users", "audit_logs", "audit_change_logs", "notifications"):
        assert checksum(loaded, table) == checksum(direct, table), table


def test_copy_text_escaping_survives_psql(scratch, admin_dsn, tmp_path):
    values = [
        "back\\slash",
        "tab\there",
        "new\nline",
        "carriage\rreturn",
        "\\N",
        "\\.",
        "",
        "ends with a backslash\\",
        "ünïcödé ✓ 'quotes' \"double\"",
        None,
    ]
    script = tmp_path / "escapes.sql"
    script.write_text(
        "CREATE TABLE escapes (id int, value text);\n"
        + copy_header("escapes", ["id", "value"])
        + "".join(copy_line((i, value)) for i, value in enumerate(values))
        + "\\.\n",
        encoding="utf-8",
    )
    url = scratch()
    create_database(admin_dsn, url)
    result = psql(url, "-f", str(script))
    assert result.returncode == 0, result.stderr
    with psycopg.connect(url) as connection:
        rows = connection.execute("SELECT value FROM escapes ORDER BY id").fetchall()
    assert [value for (value,) in rows] == values


# --- failing well -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--volume", "huge"], "small, medium or large"),
        (["--seed", "minus-one"], "integer from 0 to 9223372036854775807"),
        (["--anchor-day", "tomorrow"], "YYYY-MM-DD"),
        (["--sql", "x.sql", "--reset"], "no effect with --sql"),
        (["--data-dir", "/tmp/with space"], "has a space in it"),
    ],
)
def test_a_bad_argument_is_a_usage_error(args, expected):
    result = run_cli(*args)
    assert result.returncode == 2
    assert result.stderr.startswith("usage: celestra-seed")
    assert expected in result.stderr


def test_an_unreachable_server_fails_fast_with_one_line():
    """In a child process, so that a hang shows as its timeout: one attempt, no retries."""
    result = run_cli_process("--dsn", "postgresql://postgres@127.0.0.1:1/x", timeout=30)
    assert result.returncode == 1
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "127.0.0.1:1" in result.stderr


# --- the embedded server ------------------------------------------------------------


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data directory for the embedded server; the server is stopped and the directory
    removed afterwards. Not under pytest's basetemp: as root the server runs as another
    user, and every pytest session that starts meanwhile makes pytest-of-root 0700."""
    skip_unless_the_embedded_server_can_start()
    parent = Path(tempfile.mkdtemp(prefix="celestra-cli-"))
    parent.chmod(0o755)  # as root, the server's user must enter it (mkdtemp makes it 0700)
    path = parent / "pgdata"
    yield path
    if (path / "postmaster.pid").exists():
        run_cli_process("stop", "--data-dir", str(path))
    shutil.rmtree(parent, ignore_errors=True)


@pytest.mark.slow
def test_embedded_server_keeps_running_until_stopped(data_dir):
    result = run_cli_process("--volume", "small", "--data-dir", str(data_dir), script=True)
    assert result.returncode == 0, result.stderr
    (command,) = [line for line in result.stdout.splitlines() if "psql:" in line]
    url = shlex.split(command.split("psql:", 1)[1])[1]
    assert url.startswith("postgresql://")
    assert "/celestra?" in url

    # The CLI has exited; the server has not.
    counted = psql(url, "-At", "-c", "select count(*) from users")
    assert (counted.returncode, counted.stdout.strip()) == (0, str(SMALL["users"]))
    stop_line = next(line for line in result.stdout.splitlines() if "stop it:" in line)
    assert f"celestra-seed stop --data-dir {data_dir}" in stop_line

    # A refused run says that the server keeps running, and how to stop it.
    refused = run_cli_process("--database", "postgres", "--data-dir", str(data_dir))
    assert refused.returncode == 1
    assert "refusing to seed 'postgres'" in refused.stderr
    assert f"The embedded PostgreSQL in {data_dir} is left running" in refused.stderr
    assert f"stop it with: celestra-seed stop --data-dir {data_dir}" in refused.stderr

    stopped = run_cli_process("stop", "--data-dir", str(data_dir), script=True)
    assert stopped.returncode == 0, stopped.stderr
    assert "Stopped" in stopped.stdout
    assert psql(url, "-c", "select 1").returncode != 0
    again = run_cli_process("stop", "--data-dir", str(data_dir))
    assert (again.returncode, "not running" in again.stdout) == (0, True)


# --- on a terminal ------------------------------------------------------------------


def test_progress_bars_on_a_terminal(tmp_path):
    """stdout and stderr on a pseudo-terminal: a bar per table, then the summary."""
    primary, secondary = pty.openpty()
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "100"}
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest_celestra", "--volume", "small", "--sql",
         str(tmp_path / "s.sql")],
        stdout=secondary, stderr=secondary, env=env,
    )  # fmt: skip
    os.close(secondary)
    output = b""
    while True:
        try:
            data = os.read(primary, 65536)
        except OSError:  # EIO: the other side closed
            break
        if not data:
            break
        output += data
    os.close(primary)
    assert process.wait(timeout=60) == 0
    text = output.decode()
    assert "audit_change_logs" in text
    assert f"[{'=' * 10}" in text
    assert f"{SMALL['audit_change_logs']}/{SMALL['audit_change_logs']}" in text
    assert "Wrote the SQL script to" in text
    assert text.index("[") < text.index("Celestra scenario 'small'")
