"""Issue 17, item 4: ``celestra-seed --sql PATH`` writes to what the user named.

Before, it wrote ``PATH.partial`` and renamed it over PATH whatever PATH was: a FIFO became
a regular file (its reader waited forever), a symlink was replaced by a file, and as root
``--sql /dev/null`` turned the machine's ``/dev/null`` into a regular file. Now a regular
file is still written atomically, while a FIFO, a character device and a symlink are
written through and stay what they were; a directory or a socket is a usage error (exit 2).

Run in process (``cli.main``); nothing is written outside ``tmp_path``. The FIFO's reader is
``psql``, which loads the script into a scratch database of the suite's real server.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess

import pytest
from helpers import ANCHOR_DAY, SMALL, create_database, psql_binary, row_counts

from pytest_celestra import cli

SCENARIO = ["--volume", "small", "--seed", "11", "--anchor-day", ANCHOR_DAY]


def test_a_fifo_is_written_through_to_its_reader_and_stays_a_fifo(scratch, admin_dsn, tmp_path):
    fifo = tmp_path / "script.sql"
    os.mkfifo(fifo)
    loaded = scratch()
    create_database(admin_dsn, loaded)
    reader = subprocess.Popen(
        [psql_binary(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", loaded, "-f", str(fifo)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert cli.main([*SCENARIO, "--sql", str(fifo)]) == 0
        _, errors = reader.communicate(timeout=120)  # a hang means the reader got nothing
    finally:
        reader.kill()
    assert reader.returncode == 0, errors
    assert stat.S_ISFIFO(fifo.lstat().st_mode), "the FIFO was replaced"
    assert not (tmp_path / "script.sql.partial").exists()
    assert row_counts(loaded) == SMALL


def test_a_symlink_is_written_through_and_stays_a_symlink(tmp_path, capsys):
    target = tmp_path / "real.sql"
    target.write_text("old content\n")
    link = tmp_path / "link.sql"
    link.symlink_to(target)
    assert cli.main([*SCENARIO, "--sql", str(link)]) == 0
    assert link.is_symlink(), "the symlink was replaced by a file"
    assert os.readlink(link) == str(target)
    script = target.read_text()
    assert "COPY users" in script
    assert "old content" not in script
    assert "Wrote the SQL script to" in capsys.readouterr().out


def test_a_character_device_is_written_through_and_stays_a_device(tmp_path):
    """A copy of /dev/null's device number in tmp_path: harmless, and never the real one."""
    device = tmp_path / "null"
    null = os.stat("/dev/null").st_rdev
    try:
        os.mknod(device, stat.S_IFCHR | 0o666, null)
    except PermissionError:
        pytest.skip("mknod needs root (CAP_MKNOD)")
    try:
        device.open("w").close()
    except PermissionError:
        pytest.skip(f"{tmp_path} is mounted nodev: a device there cannot be opened")
    assert cli.main([*SCENARIO, "--sql", str(device)]) == 0
    assert stat.S_ISCHR(device.lstat().st_mode), "the device was replaced by a file"
    assert device.lstat().st_rdev == null


def test_a_regular_file_is_still_replaced_whole_keeping_its_permissions(tmp_path):
    target = tmp_path / "celestra.sql"
    target.write_text("old\n")
    target.chmod(0o640)
    assert cli.main([*SCENARIO, "--sql", str(target)]) == 0
    assert stat.S_ISREG(target.lstat().st_mode)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert "COPY users" in target.read_text()
    assert not (tmp_path / "celestra.sql.partial").exists()


def test_a_directory_or_a_socket_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main([*SCENARIO, "--sql", str(tmp_path)])
    assert exited.value.code == cli.EXIT_USAGE
    assert f"--sql {tmp_path}: it is a directory" in capsys.readouterr().err
    assert tmp_path.is_dir()

    path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(path))
        with pytest.raises(SystemExit) as exited:
            cli.main([*SCENARIO, "--sql", str(path)])
    assert exited.value.code == cli.EXIT_USAGE
    assert "it is a socket" in capsys.readouterr().err
    assert stat.S_ISSOCK(path.lstat().st_mode)
