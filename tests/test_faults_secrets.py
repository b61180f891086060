"""No password is ever printed: by the plugin or by ``celestra-seed``, failing or not.

The masking and scrubbing functions are tested directly; then a battery of real runs
(pytest runs of the plugin, ``celestra-seed`` runs) with sentinel passwords asserts that
no trace of them reaches stdout or stderr. Succeeding runs need a server that lets
``postgres`` in whatever the password (trust authentication, like the test server);
elsewhere they are skipped.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy.engine import URL, make_url

from pytest_celestra import cli
from pytest_celestra.config import parse_dsn, resolve_config
from pytest_celestra.db.database import drop_database
from pytest_celestra.db.server import connect
from pytest_celestra.errors import ConfigError
from pytest_celestra.urls import (
    MASK,
    error_text,
    libpq_url,
    mask_text,
    mask_url,
    render_url,
    scrub,
    secrets_of,
    sqlalchemy_url,
)

if TYPE_CHECKING:
    from collections.abc import Callable

#: Every sentinel starts with this, so a partial leak is caught too.
TAG = "Zq7sentinel"
#: A password with a space, and one with every character a URL must escape.
WITH_SPACE = f"{TAG} with space"
ESCAPED = f"{TAG}@/:?#%&='\\ end"
PASSWORDS = [WITH_SPACE, ESCAPED, f"{TAG}ünï", f"{TAG}+plus"]


def in_url(password: str | None, **parts: Any) -> URL:
    fields = {"drivername": "postgresql", "username": "postgres", "host": "127.0.0.1"}
    return URL.create(**(fields | {"password": password} | parts))


def assert_no_secret(*outputs: str) -> None:
    for output in outputs:
        assert TAG not in output, output
        assert quote(TAG) not in output, output


# --- the functions ------------------------------------------------------------------


@pytest.mark.parametrize("password", PASSWORDS)
def test_libpq_url_is_one_that_libpq_reads_back_to_the_same_password(password):
    url = in_url(password, port=5432, database="my db", query={"host": "/tmp/sock dir"})
    parsed = conninfo_to_dict(libpq_url(url))
    assert parsed["password"] == password
    assert (parsed["dbname"], parsed["host"]) == ("my db", "/tmp/sock dir")


@pytest.mark.parametrize("password", PASSWORDS)
def test_mask_url_hides_the_password_and_keeps_the_rest_usable(password):
    url = in_url(password, port=5433, database="app", query={"sslmode": "prefer"})
    for shown in (mask_url(url), mask_url(libpq_url(url)), render_url(url)):
        assert_no_secret(shown)
        assert shown == f"postgresql://postgres:{MASK}@127.0.0.1:5433/app?sslmode=prefer"
    without = in_url(None, port=5433, database="app")
    assert mask_url(without) == libpq_url(without)  # nothing to hide: usable as it is


@pytest.mark.parametrize(
    "text",
    [
        f"postgresql://postgres:{quote(WITH_SPACE)}@h:not-a-port/db",
        f"postgresql://postgres:{WITH_SPACE}@h:5432/db",
        f"mysql://root:{TAG}@h/db",
        f"postgres://postgres:{ESCAPED}@h/db",  # unencoded: SQLAlchemy misreads the host
        f"postgresql://postgres@h/db?sslmode=require&password={TAG}",
        f"post gres://postgres:{TAG}@h/db",
    ],
)
def test_mask_url_hides_the_password_of_any_text(text):
    shown = mask_url(text)
    assert_no_secret(shown)
    assert MASK in shown
    assert shown.split("://")[0] == text.split("://")[0]


def test_mask_text_masks_every_url_in_a_message_and_leaves_the_rest():
    message = (
        f"unrecognized arguments: postgresql://u:{TAG}@h/db and postgres://v:{TAG}2@[::1]/x "
        f"password={TAG}3 (use postgresql://USER[:PASSWORD]@HOST:PORT/DATABASE)"
    )
    shown = mask_text(message)
    assert_no_secret(shown)
    assert shown.count(MASK) == 3
    assert "postgresql://USER[:PASSWORD]@HOST:PORT/DATABASE" in shown


@pytest.mark.parametrize("password", PASSWORDS)
def test_scrub_removes_a_password_in_every_spelling(password):
    url = in_url(password, query={"password": f"{TAG}q"})
    secrets = secrets_of(libpq_url(url))
    assert secrets == secrets_of(url)
    driver_message = (
        f'failed: "{password}" / {quote(password, safe="")} / {quote_plus(password)}'
        f" / {TAG}q\n  second line."
    )
    shown = error_text(psycopg.OperationalError(driver_message), secrets)
    assert_no_secret(shown)
    assert shown.startswith("failed: ")
    assert "\n" not in shown
    assert scrub("nothing secret", secrets) == "nothing secret"


def test_a_password_that_is_a_common_word_leaves_longer_words_whole():
    url = in_url("postgres", database="app")
    assert mask_url(url) == f"postgresql://postgres:{MASK}@127.0.0.1/app"
    message = 'connection to "postgresql" failed: password "postgres" for user postgres'
    assert scrub(message, secrets_of(url)) == (
        f'connection to "postgresql" failed: password "{MASK}" for user {MASK}'
    )


@pytest.mark.parametrize(
    ("dsn", "reason"),
    [
        (f"mysql://root:{TAG}@localhost/app", "not a PostgreSQL URL"),
        (f"postgresql://postgres:{TAG}@localhost:port/app", "the port is not a number"),
        (f"postgresql://postgres:{quote(WITH_SPACE)}@localhost:99999/app", "not 1 to 65535"),
        (f"postgresql://postgres:{TAG}@x@localhost/app", "must be written %40"),
        (f"no url {TAG}", "use a URL like"),
    ],
)
def test_an_invalid_dsn_is_refused_without_echoing_its_password(dsn, reason):
    with pytest.raises(ConfigError) as refused:
        parse_dsn(dsn)
    assert reason in str(refused.value)
    assert_no_secret(str(refused.value))
    # Through the environment too: a usage error (ConfigError), not an internal error.
    with pytest.raises(ConfigError, match="environment variable CELESTRA_DSN") as refused:
        resolve_config({}, {}, {"CELESTRA_DSN": dsn})
    assert_no_secret(str(refused.value))


def test_postgres_scheme_is_accepted_as_libpq_does():
    dsn = f"postgres://postgres:{quote(WITH_SPACE)}@localhost:5432/app"
    assert parse_dsn(dsn) == dsn
    assert libpq_url(sqlalchemy_url(dsn)).startswith("postgresql://postgres:")


# --- runs against the server ----------------------------------------------------------


@pytest.fixture(scope="module")
def secret_url(admin_dsn: str) -> Callable[[str], URL]:
    """The suite's server as ``postgres`` with a sentinel password (and any database)."""
    server = make_url(admin_dsn)

    def url(password: str, database: str = "postgres") -> URL:
        return server.set(username="postgres", password=password, database=database)

    try:
        connect(url(WITH_SPACE)).close()
    except psycopg.OperationalError:
        pytest.skip("the server checks passwords; these runs need trust authentication")
    return url


def test_a_driver_message_quoting_the_password_is_scrubbed(secret_url):
    # libpq quotes a bad sslmode; with the password as sslmode, it quotes the password.
    url = secret_url(WITH_SPACE).update_query_dict({"sslmode": WITH_SPACE})
    with pytest.raises(psycopg.OperationalError) as failed:
        connect(url)
    assert "sslmode" in str(failed.value)
    assert_no_secret(str(failed.value))
    connect(secret_url(ESCAPED)).close()  # and a password to escape works


PLUGIN_TESTS = """
def test_uses_a_database(celestra_session):
    pass

def test_fails(celestra_session):
    raise AssertionError("an ordinary failure")
"""


def run_plugin(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, str]:
    result = pytester.runpytest_subprocess(*args, timeout=180)
    output = result.stdout.str() + result.stderr.str()
    assert_no_secret(output)
    return result, output


@pytest.mark.slow
def test_plugin_runs_print_no_password(celestra_pytester, monkeypatch, secret_url, admin):
    celestra_pytester.makepyfile(PLUGIN_TESTS)
    monkeypatch.setenv("CELESTRA_SERVER", "dsn")

    # Succeeding: a password with a space, from the environment, with --celestra-keep.
    monkeypatch.setenv("CELESTRA_DSN", libpq_url(secret_url(WITH_SPACE)))
    result, output = run_plugin(celestra_pytester, "--celestra-keep", "-v")
    result.assert_outcomes(passed=1, failed=1)
    assert "server=dsn (env) postgresql://postgres@127.0.0.1:" in output or "host=" in output
    kept = [line for line in result.outlines if line.startswith("postgresql://")]
    assert kept
    assert all(f":{MASK}@" in line for line in kept)
    assert f"{MASK} stands for the password of your DSN" in output
    for line in kept:
        drop_database(admin, str(make_url(line).database))

    # Succeeding: a password with characters to escape, from the ini file.
    monkeypatch.delenv("CELESTRA_DSN")
    celestra_pytester.makeini(f"[pytest]\ncelestra_dsn = {libpq_url(secret_url(ESCAPED))}\n")
    result, _ = run_plugin(celestra_pytester)
    result.assert_outcomes(passed=1, failed=1)

    # Failing: the server rejects the URL with a message that quotes the password.
    refused = secret_url(WITH_SPACE).update_query_dict({"sslmode": WITH_SPACE})
    result, output = run_plugin(celestra_pytester, f"--celestra-dsn={libpq_url(refused)}")
    assert result.ret != 0
    assert "cannot connect to PostgreSQL" in output
    assert f'invalid sslmode value: "{MASK}"' in output


@pytest.mark.parametrize(
    ("channel", "dsn"),
    [
        ("option", f"mysql://root:{quote(WITH_SPACE)}@localhost/app"),
        ("env", f"postgresql://postgres:{quote(ESCAPED, safe='')}@localhost:port/app"),
        ("ini", f"postgresql://postgres:{TAG}@localhost:port/app"),
    ],
)
def test_a_bad_dsn_is_a_usage_error_without_its_password(
    celestra_pytester, monkeypatch, channel, dsn
):
    celestra_pytester.makepyfile("def test_nothing():\n    pass\n")
    monkeypatch.delenv("CELESTRA_DSN", raising=False)
    args = []
    if channel == "option":
        args.append(f"--celestra-dsn={dsn}")
    elif channel == "env":
        monkeypatch.setenv("CELESTRA_DSN", dsn)
    else:
        celestra_pytester.makeini(f"[pytest]\ncelestra_dsn = {dsn}\n")
    result = celestra_pytester.runpytest_inprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    output = result.stdout.str() + result.stderr.str()
    assert "invalid DSN" in output
    assert_no_secret(output)


# --- celestra-seed --------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "pytest_celestra", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert_no_secret(result.stdout, result.stderr)
    return result


@pytest.fixture
def scratch_database(admin: psycopg.Connection[Any]) -> Any:
    """The name of a database (not created) that is dropped afterwards."""
    import secrets

    name = f"celestra_secrets_{secrets.token_hex(4)}"
    yield name
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.slow
def test_cli_runs_print_no_password(secret_url, scratch_database):
    dsn = libpq_url(secret_url(WITH_SPACE, scratch_database))
    seeded = run_cli("--dsn", dsn, "--volume", "small", "--json")
    assert seeded.returncode == 0, seeded.stderr
    summary = json.loads(seeded.stdout)
    assert summary["url"].startswith(f"postgresql://postgres:{MASK}@")
    assert summary["sqlalchemy_url"].startswith(f"postgresql+psycopg://postgres:{MASK}@")

    # Refused (the data is there now); the escaped password, in the text summary path.
    again = run_cli("--dsn", libpq_url(secret_url(ESCAPED, scratch_database)))
    assert (again.returncode, "already holds Celestra data" in again.stderr) == (1, True)

    # The server quotes the password back (as a bad sslmode).
    refused = secret_url(WITH_SPACE).update_query_dict({"sslmode": WITH_SPACE})
    failed = run_cli("--dsn", libpq_url(refused), "--database", scratch_database)
    assert failed.returncode == 1
    assert f'invalid sslmode value: "{MASK}"' in failed.stderr


@pytest.mark.parametrize(
    "args",
    [
        [f"postgresql://postgres:{quote(WITH_SPACE)}@localhost/app"],  # without --dsn
        ["--dsn", f"mysql://root:{TAG}@localhost/app"],
        [f"--dsn=postgresql://postgres:{quote(ESCAPED, safe='')}@localhost:port/app"],
        ["--dsn", f"postgresql://postgres:{TAG}@localhost/app", "--data-dir", "/tmp/x"],
    ],
)
def test_cli_usage_errors_print_no_password(capsys, args):
    with pytest.raises(SystemExit) as exited:
        cli.main(args)
    assert exited.value.code == cli.EXIT_USAGE
    captured = capsys.readouterr()
    assert "usage: celestra-seed" in captured.err
    assert_no_secret(captured.out, captured.err)


def test_cli_unexpected_error_traceback_is_scrubbed(capsys, monkeypatch):
    def broken(options: Any) -> None:
        raise RuntimeError(f"a bug that quotes {options.dsn}")

    monkeypatch.setattr(cli, "run_seed", broken)
    dsn = f"postgresql://postgres:{quote(ESCAPED, safe='')}@localhost/app"
    assert cli.main(["--dsn", dsn]) == cli.EXIT_ERROR
    captured = capsys.readouterr()
    assert "Traceback" in captured.err
    assert "RuntimeError: a bug that quotes" in captured.err
    assert_no_secret(captured.out, captured.err)
