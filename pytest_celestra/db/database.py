"""The databases pytest-celestra makes on a server: templates, clones, and their safety.

Each test process gets clones of *templates* named after a hash (`db.cache_keys`) of what
decides their content: `celestra_schema_<hash>` holds the empty schema, `celestra_tpl_<hash>`
the scenario at one volume, seed and anchor day. Each is built under an advisory lock of
its own, so among processes sharing a server exactly one builds it while the others wait.

Integrity: a finished template is *sealed* (`ALLOW_CONNECTIONS false`, `IS_TEMPLATE true`)
and its comment records a `Fingerprint` of its content, against which every copy is checked;
a template that fails (or was unsealed and opened) is rebuilt, and the run's report says why.

Safety: the plugin drops only databases whose comment starts `created by pytest-celestra`,
and never writes to the DSN's database. Between `CREATE DATABASE` and its comment (which
PostgreSQL will not run in one transaction) a database is marked by its connection limit,
[`BIRTH_MARK`][pytest_celestra.db.database.BIRTH_MARK], and its creator holds its lock.

Ownership: each test process holds, for its whole life, a shared lock keyed by its run id
and a shared "in use" lock on each template it cloned. A database whose run's lock is free
is an orphan, dropped by the next run; a template in use is never evicted by the
[`Budget`][pytest_celestra.db.database.Budget]. The rows come from the manager's
[`Seeder`][pytest_celestra.db.seeding.Seeder]; this module does not import the generator.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import secrets
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from sqlalchemy import create_engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from pytest_celestra.config import (
    DEFAULT_LOCK_TIMEOUT,
    DEFAULT_TEMPLATE_MAX_AGE,
    DEFAULT_TEMPLATE_MAX_SIZE,
    SPECS,
)
from pytest_celestra.db.cache_keys import (
    Fingerprint,
    SchemaSetup,
    catalog_schema_key,
    content_fingerprint,
    digest,
    generator_code_key,
    password_hashing_key,
    scenario_key,
)
from pytest_celestra.db.server import (
    ROOM_MARGIN,
    connect,
    connection_limit_message,
    data_directory,
    disk_free,
    disk_full,
    max_wal_bytes,
    server_version,
    too_many_clients,
)
from pytest_celestra.db.server import (
    check_room as check_disk_room,
)
from pytest_celestra.errors import CelestraError, ServerError, UnsafeDatabaseError
from pytest_celestra.schema.volumes import format_bytes
from pytest_celestra.urls import error_text, host_port, libpq_url

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence
    from pathlib import Path

    from sqlalchemy.engine import URL

    from pytest_celestra.db.seeding import Seeder
    from pytest_celestra.db.server import Server
    from pytest_celestra.schema.volumes import Volume

Admin = psycopg.Connection[Any]
MARK = "created by pytest-celestra"
PROTECTED_DATABASES = frozenset({"postgres", "template0", "template1"})
"""Databases nothing of ours ever drops or seeds."""
STRATEGIES = frozenset({"WAL_LOG", "FILE_COPY"})
"""`CREATE DATABASE ... STRATEGY` values (PostgreSQL 15+), checked before they reach SQL."""
BIRTH_MARK = 9973
"""The connection limit every database of ours is created with: set by CREATE DATABASE
itself, it marks a database whose creator was killed before it could comment it."""
SEALED = "sealed template"
"""Purpose (in the comment) of a finished, sealed template."""
_LEGACY_TEMPLATE = "template"  # before sealing: never used, dropped once unused for max_age
_LEGACY_TEST_DATABASE_AGE = timedelta(days=1)  # runs from before owner locks


class TemplateLayer(Protocol):
    """Data added on top of another template by your code (a scenario of
    [`pytest_celestra.db.user_scenarios`][]): writes into the database at `url` and commits,
    or raises and commits nothing; returns lines for the run's summary. `key` covers what
    decides what it adds (the manager adds its base's key, the seed and the day); `label`
    names it."""

    @property
    def key(self) -> str: ...

    @property
    def label(self) -> str: ...

    def __call__(
        self, url: URL, *, seed: int, anchor: datetime, progress: Callable[[str], None]
    ) -> Sequence[str]: ...


class BuildWatcher(Protocol):
    """Told when a build of the template `label` begins, how far it is (`done`: `users
    1,200 rows`) and when it ended, for progress and the run's summary."""

    def building(self, label: str) -> None: ...

    def progress(self, label: str, done: str) -> None: ...

    def built(self, label: str, rows: int, seconds: float, why: str = "") -> None: ...


@dataclass(frozen=True)
class Budget:
    """Which templates a server keeps: those used within `max_age`, most recently
    used first, up to `max_size` bytes in all."""

    max_age: timedelta = DEFAULT_TEMPLATE_MAX_AGE
    max_size: int = DEFAULT_TEMPLATE_MAX_SIZE


def _comment(purpose: str, **meta: object) -> str:
    return f"{MARK} {purpose} {json.dumps(meta, sort_keys=True)}"


def _parse_comment(comment: str) -> tuple[str, dict[str, Any]]:
    """`(purpose, meta)` of one of our comments."""
    body = comment.removeprefix(MARK).strip()
    purpose, _, meta = body.partition(" {")
    try:
        return purpose, json.loads("{" + meta) if meta else {}
    except ValueError:
        return purpose, {}


def database_comment(admin: Admin, name: str) -> str | None:
    """The comment on database `name` ("" if it has none), or None if it does not exist."""
    row = admin.execute(
        "SELECT coalesce(shobj_description(oid, 'pg_database'), '') "
        "FROM pg_database WHERE datname = %s",
        (name,),
    ).fetchone()
    return None if row is None else str(row[0])


def kept_databases(admin: Admin) -> list[str]:
    """The test databases on this server that a run kept (`--celestra-keep`), by name."""
    listed = DatabaseManager._listing(admin, sizes=False)
    return sorted(db.name for db in listed if db.meta.get("kept") is True)


def refuse_plugin_database(url: URL) -> None:
    """Raise CelestraError if `url` names a database pytest-celestra created (for
    `celestra-seed`). Asks the database itself, else `postgres` (a sealed template takes no
    connections); if neither answers, the caller's own connection error follows."""
    for where in (url, url.set(database="postgres")):
        try:
            with connect(where, autocommit=True) as admin:
                ours = (database_comment(admin, str(url.database)) or "").startswith(MARK)
        except psycopg.OperationalError:
            continue
        if ours:
            raise CelestraError(
                f"refusing to write into database {url.database!r} at {host_port(url)}: "
                "pytest-celestra created it (a template or test database of the plugin; "
                "its comment says so), and only the plugin may change it. Seed another "
                "database with --database NAME; the plugin rebuilds its templates itself"
            )
        return


def _cannot_connect(url: URL, error: BaseException) -> CelestraError:
    return CelestraError(f"cannot connect to PostgreSQL at {host_port(url)}: {error_text(error)}")


def ensure_database(url: URL, comment: str) -> tuple[bool, str]:
    """Make sure `url`'s database exists, creating it (with `comment`) through the
    server's `postgres` database if needed; `(created, "PostgreSQL 18.1")`. For
    `celestra-seed`, which refuses the `PROTECTED_DATABASES` first."""
    try:
        with connect(url) as connection:
            return False, server_version(connection)
    except psycopg.OperationalError as error:
        first = error
    try:
        admin = connect(url.set(database="postgres"), autocommit=True)
    except psycopg.OperationalError:
        raise _cannot_connect(url, first) from None
    name = str(url.database)
    with admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if exists.fetchone() is not None:  # it exists: the first error was not about that
            raise _cannot_connect(url, first)
        try:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.errors.InsufficientPrivilege as error:
            raise CelestraError(
                f"database {name!r} does not exist at {host_port(url)}, and "
                f"{url.username or 'this role'} may not create it: {error_text(error)}. "
                "Create it yourself (createdb), or name an existing one"
            ) from None
        set_comment(admin, name, comment)
        return True, server_version(admin)


def full_disk(url: URL, error: BaseException, data_directory: Path | None) -> str | None:
    """`the disk of the PostgreSQL server at host:port is full: ...` if `error` came of a
    full disk, else None. A server that cannot write its WAL stops (PANIC) instead of
    reporting an error: then the free space under its `data_directory` tells."""
    where = f"the disk of the PostgreSQL server at {host_port(url)}"
    said = error_text(error).strip()
    if disk_full(error):
        return f"{where} is full: {said}"
    # Less than the margin every build asks for: the recovery after the crash may already
    # have freed some (write-ahead log it no longer needs), so not "nothing left".
    free = disk_free(data_directory)
    if free is None or free >= ROOM_MARGIN:
        return None
    return (
        f"{where} is full ({format_bytes(free)} free under {data_directory} after the server "
        f"ended the connection: {said}): a server that cannot write its write-ahead log "
        "stops, and may not start again until there is room"
    )


def drop_database(
    admin: Admin, name: str, *, protected: frozenset[str] = frozenset(), force: bool = True
) -> None:
    """Drop `name` if its comment says pytest-celestra created it, else raise
    UnsafeDatabaseError; never the `PROTECTED_DATABASES` or `protected`. `force` ends other
    sessions on it (the benchmark's clean-up does not: another run may be using it)."""
    comment = database_comment(admin, name)
    if comment is None:
        return
    if name in PROTECTED_DATABASES or name in protected or not comment.startswith(MARK):
        raise UnsafeDatabaseError(
            f"refusing to drop database {name!r}: it does not carry the comment "
            f"'{MARK} ...', so pytest-celestra did not create it. Drop it yourself if you "
            "are sure; the plugin only ever drops its own databases."
        )
    _drop(admin, name, force=force)


def _drop(admin: Admin, name: str, *, force: bool) -> None:
    """Drop database `name`, which the caller has proven ours (PostgreSQL does not drop a
    template: unseal it first)."""
    identifier = sql.Identifier(name)
    is_template = admin.execute(
        "SELECT datistemplate FROM pg_database WHERE datname = %s", (name,)
    ).fetchone()
    if is_template == (True,):
        admin.execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE false").format(identifier))
    end_prepared_work(admin, name)
    statement = "DROP DATABASE IF EXISTS {} WITH (FORCE)" if force else "DROP DATABASE IF EXISTS {}"
    admin.execute(sql.SQL(statement).format(identifier))


def end_prepared_work(admin: Admin, name: str) -> None:
    """Roll back the prepared transactions left in database `name` (which the caller has
    proven ours) and drop its inactive replication slots: either keeps PostgreSQL from
    dropping the database, and holds back the whole server's cleanup (its xmin) and WAL."""
    prepared = admin.execute(
        "SELECT gid FROM pg_prepared_xacts WHERE database = %s", (name,)
    ).fetchall()
    slots = admin.execute(
        "SELECT slot_name FROM pg_replication_slots WHERE database = %s AND NOT active", (name,)
    ).fetchall()
    for (slot,) in slots:
        with contextlib.suppress(psycopg.errors.ObjectInUse, psycopg.errors.UndefinedObject):
            admin.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
    if not prepared:
        return
    # ROLLBACK PREPARED runs in the prepared transaction's own database.
    info = admin.info
    conninfo = make_conninfo(info.dsn, dbname=name, password=info.password or None)
    try:
        inside = psycopg.connect(conninfo, autocommit=True)
    except psycopg.OperationalError:  # e.g. a sealed template: DROP will say it is in use
        return
    with inside:
        for (gid,) in prepared:
            with contextlib.suppress(psycopg.errors.UndefinedObject):  # ended since
                inside.execute(sql.SQL("ROLLBACK PREPARED {}").format(sql.Literal(gid)))


def set_comment(admin: Admin, name: str, comment: str) -> None:
    admin.execute(
        sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name), sql.Literal(comment))
    )


def _describe(admin: Admin, name: str) -> tuple[str, dict[str, Any]]:
    """`(purpose, meta)` from the comment on `name`; purpose "" if it is not ours."""
    return _parse_comment(database_comment(admin, name) or "")


def _lock_id(name: str) -> int:
    """The advisory lock that guards database `name` (a template or a build)."""
    return int.from_bytes(
        hashlib.sha256(f"pytest-celestra {name}".encode()).digest()[:8], "big", signed=True
    )


def run_lock_id(run_id: str) -> int:
    """The lock every process of run `run_id` holds (shared) while it lives."""
    return _lock_id(f"run {run_id}")


def _use_lock_id(template: str) -> int:
    """The lock every process that cloned `template` holds (shared) while it lives."""
    return _lock_id(f"use {template}")


def template_name(kind: str, key: str) -> str:
    """Name of the template of `kind` (`schema` or `seeded`) with cache key `key`; apart
    from the unsealed ones of earlier versions, which those would try (and fail) to replace."""
    prefix = "celestra_schema_" if kind == "schema" else "celestra_tpl_"
    return prefix + digest(SEALED, key)[:12]


@contextlib.contextmanager
def _holding(admin: Admin, name: str) -> Iterator[None]:
    """Hold the lock of database `name`, waiting for it if another process has it."""
    admin.execute("SELECT pg_advisory_lock(%s)", (_lock_id(name),))
    try:
        yield
    finally:
        admin.execute("SELECT pg_advisory_unlock(%s)", (_lock_id(name),))


@contextlib.contextmanager
def _if_free(admin: Admin, locks: list[int]) -> Iterator[bool]:
    """Take each of `locks` if nobody holds it (shared or not), without waiting, until the
    end; True if all were free."""
    taken: list[int] = []
    try:
        for lock in locks:
            if admin.execute("SELECT pg_try_advisory_lock(%s)", (lock,)).fetchone() != (True,):
                break
            taken.append(lock)
        yield len(taken) == len(locks)
    finally:
        for lock in reversed(taken):
            admin.execute("SELECT pg_advisory_unlock(%s)", (lock,))


def _server_now(admin: Admin) -> datetime:
    """The server's clock: every process, on any machine, stamps and compares our
    databases' times (built, used, created) by it, whatever its own clock says."""
    row = admin.execute("SELECT clock_timestamp()").fetchone()
    return datetime.now(UTC) if row is None else row[0].astimezone(UTC)


def _when(text: object) -> datetime:
    """A time recorded in a comment; long ago if unreadable."""
    try:
        return datetime.fromisoformat(str(text))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)


_CHANGES = {
    "day": "",  # said with both days
    "schema": "the schema changed",
    "rules": "your schema rules changed",
    "code": "pytest-celestra's code, Faker or factory_boy changed",
    "passwords": "the password hashing changed",
}
"""What a change of each recorded input of a template means, for the run's summary."""


class TemplateUse(NamedTuple):
    """A sealed template as the budget sees it."""

    name: str
    used: datetime
    size: int
    day: str | None = None
    built: datetime | None = None
    run: str | None = None  # the run that built it


def of_a_past_day(template: TemplateUse, now: datetime) -> bool:
    """Is `template` anchored on a day before `now`'s, a day it was built on (not one fixed
    with `--celestra-anchor-day`)? Then no run can use it any more."""
    built = None if template.built is None else template.built.date().isoformat()
    fixed = built is not None and template.day is not None and template.day < built
    return template.day is not None and template.day < now.date().isoformat() and not fixed


def templates_to_evict(
    templates: Iterable[TemplateUse], budget: Budget, now: datetime, keep: Iterable[str] = ()
) -> list[str]:
    """The templates over `budget`: of an anchor day before `now`'s (one anchored on the day
    it was built, not one whose day was fixed, `--celestra-anchor-day`), unused for longer
    than `max_age`, or beyond `max_size` counting from the most recently used. `keep` (a
    template just built) counts towards the size but is never chosen."""
    kept = set(keep)
    total = 0
    evict = []
    for template in sorted(templates, key=lambda t: (t.name not in kept, -t.used.timestamp())):
        total += template.size
        if template.name not in kept and (
            of_a_past_day(template, now)
            or now - template.used > budget.max_age
            or total > budget.max_size
        ):
            evict.append(template.name)
    return evict


class _Listed(NamedTuple):
    name: str
    purpose: str
    meta: dict[str, Any]
    size: int


_LISTING = r"""
SELECT datname, coalesce(shobj_description(oid, 'pg_database'), ''),
       CASE WHEN %(sizes)s AND shobj_description(oid, 'pg_database') LIKE %(sealed)s
                 AND shobj_description(oid, 'pg_database') NOT LIKE %(sized)s
            THEN pg_database_size(oid) ELSE 0 END
  FROM pg_database
 WHERE shobj_description(oid, 'pg_database') LIKE %(mark)s
    OR (datname LIKE 'celestra\_%%' AND shobj_description(oid, 'pg_database') IS NULL
        AND datconnlimit = %(birth)s)
"""
_LISTING_ATTEMPTS = 3


@dataclass(frozen=True)
class _Spec:
    """How to make a template: kind, key (None: from the built catalog), source (None:
    `template0`), how to fill it, what its comment records, what progress calls it."""

    kind: str
    key: str | None
    source: _Spec | None
    populate: Callable[[URL], None]
    meta: dict[str, object] = field(default_factory=dict)
    label: str = ""


@dataclass
class DatabaseManager:
    """Templates and test databases of one test process on one server.

    Locking: each template and each build has its own advisory lock, held while it is built,
    checked, cloned or dropped, so a build holds up only those that need that template;
    sweeps only try locks. Locks are taken in one order (seeded template, then schema
    template), so they never deadlock. The run's lock and the in-use locks are held on a
    connection kept open until [`close`][pytest_celestra.db.database.DatabaseManager.close].

    `seeder` checks each schema template and fills each seeded one (its `key` is part of
    theirs); `notes` collects lines for the run's report (a template rebuilt, and why).
    """

    server: Server
    schema: SchemaSetup
    seeder: Seeder
    run_id: str
    worker: str
    rebuild: bool = False
    keep: bool = False
    budget: Budget = field(default_factory=Budget)
    notes: list[str] = field(default_factory=list)
    watcher: BuildWatcher | None = None
    created: list[str] = field(default_factory=list)
    processes: int = 1
    """Test processes of the run (xdist workers), for what a connection limit must allow."""
    lock_timeout: timedelta = DEFAULT_LOCK_TIMEOUT
    """How long to wait for a template another process is building before giving up."""
    say: Callable[[str], None] | None = field(default=None, repr=False)
    """Where to say, while waiting, that another run holds a template's lock."""
    connection_limit: str | None = None  # the first "too many clients" of this process
    since: datetime | None = None
    """When this process first reached the server (`open`, at its start), by the server's
    clock: with `rebuild`, a template built since is fresh enough."""
    _schema_key: str | None = None
    _data_directory: Path | None = None  # where this machine can see it
    _max_wal: int | None = None
    _role: str | None = None  # "" for a superuser, else the role's name
    _owner: Admin | None = field(default=None, repr=False)
    _using: set[str] = field(default_factory=set)
    _swept: bool = False

    @property
    def protected(self) -> frozenset[str]:
        """The maintenance database (the one a DSN names) is never dropped."""
        return frozenset({self.server.url.database or "postgres"})

    @property
    def owner_lock(self) -> int:
        """The lock of this run, recorded in the comment of each database it creates."""
        return run_lock_id(self.run_id)

    def _connect_admin(self) -> Admin:
        """An autocommit connection to `postgres`: advisory locks are per database, so all
        processes lock there, whatever database their DSN names (else in the DSN's)."""
        name = f"{APPLICATION} {self.worker} pid {os.getpid()}"
        try:
            return connect(self.server.url_for("postgres"), autocommit=True, application_name=name)
        except psycopg.OperationalError as error:
            if too_many_clients(error):
                raise
            return connect(self.server.url, autocommit=True, application_name=name)

    def _claim(self, template: str | None = None) -> None:
        """Hold this run's lock and the in-use locks, again after a server restart; with
        `template`, its in-use lock too, for the rest of this process (no sweep drops it)."""
        if self._owner is not None:
            try:
                self._owner.execute("SELECT 1")
            except psycopg.OperationalError:  # the server restarted: our locks are gone
                self.close()
        owner = self._owner
        using = [] if template is None or template in self._using else [template]
        if owner is None:
            owner = self._connect_admin()
            owner.execute("SELECT pg_advisory_lock_shared(%s)", (self.owner_lock,))
            using += self._using
        for name in using:
            owner.execute("SELECT pg_advisory_lock_shared(%s)", (_use_lock_id(name),))
        self._owner = owner
        self._using.update(using)

    @contextlib.contextmanager
    def _admin(self) -> Iterator[Admin]:
        """A connection for one piece of work; the first sweeps what gone runs left."""
        self._claim()
        with self._connect_admin() as admin:
            if self.since is None:  # the process's start (open), by the server's clock
                self.since = _server_now(admin)
            if not self._swept:  # where its disk is, to check the room and a full disk
                self._data_directory = data_directory(admin)
                self._max_wal = max_wal_bytes(admin)
                self._swept = True
                self._sweep(admin, evict=False)  # orphans only: eviction waits for a build
            yield admin

    def open(self) -> None:
        """Claim this run's lock and sweep what runs that are gone left behind."""
        with self._server_faults("starting"), self._admin():
            pass

    def close(self) -> None:
        """Release this run's locks (its databases left then count as orphans)."""
        if self._owner is not None:
            self._owner.close()
            self._owner = None

    @contextlib.contextmanager
    def _server_faults(self, doing: str) -> Iterator[None]:
        """Turn a lost or unreachable server into one ServerError line."""
        try:
            yield
        except (psycopg.OperationalError, DBAPIError) as error:
            cause = error.orig if isinstance(error, DBAPIError) else error
            if not isinstance(cause, psycopg.OperationalError):
                raise
            if too_many_clients(cause):
                raise self.connection_limit_error(cause) from None
            full = full_disk(self.server.url, cause, self._data_directory)
            if full is not None:
                raise ServerError(
                    f"{full}, while {doing}. What this run half made is dropped now if the "
                    "server is up, else by the next run once it is back. Free some space "
                    f"on that disk, or use a smaller volume with {SPECS['volume'].channels}."
                ) from None
            raise ServerError(
                f"lost the PostgreSQL server at {host_port(self.server.url)} while {doing}: "
                f"{error_text(cause)}. Was it restarted or stopped? Nothing half-built is "
                "used: the next run removes what this one left behind."
            ) from None

    def connection_limit_error(self, error: BaseException) -> ServerError:
        """The error for a connection refused for want of a slot: the first of this process
        says what the limit is and what to change (and goes into the run's summary), asked
        on the connection this process keeps (there may be no slot for a new one)."""
        if self.connection_limit is not None:
            return ServerError(
                f"no connection left on the PostgreSQL server at {host_port(self.server.url)} "
                "(too many clients already), as this process's first such error explains: "
                "raise the server's max_connections or run fewer processes (-n)"
            )
        row = None
        if self._owner is not None and not self._owner.closed:
            with contextlib.suppress(psycopg.Error):
                row = self._owner.execute(
                    "SELECT current_setting('max_connections')::int, "
                    "current_setting('superuser_reserved_connections')::int, "
                    "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user)"
                ).fetchone()
        limits = None if row is None else (int(row[0]), int(row[1]), bool(row[2]))
        self.connection_limit = connection_limit_message(
            self.server.url, error, limits, self.processes
        )
        self.notes.append(self.connection_limit)
        return ServerError(self.connection_limit)

    @contextlib.contextmanager
    def _waiting_for(self, admin: Admin, name: str, label: str = "") -> Iterator[None]:
        """Hold the lock of template `name` (holding `label`: `volume x200 (seed 32)`),
        waiting while another process builds it: after
        [`WAIT_NOTICE`][pytest_celestra.db.database.WAIT_NOTICE] seconds, say who holds it
        (through `say` and the run's summary); after `lock_timeout`, give up."""
        lock = _lock_id(name)
        if label:
            name = f"{name} ({label})"
        timeout = self.lock_timeout.total_seconds()
        waited = 0.0
        holder = ""
        while True:
            step = max(min(WAIT_NOTICE, timeout) if waited == 0 else timeout - waited, 0.001)
            admin.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(f"{step}s")))
            try:
                admin.execute("SELECT pg_advisory_lock(%s)", (lock,))
                break
            except psycopg.errors.LockNotAvailable:
                waited += step
                holder = _lock_holders(admin, lock)
                if waited >= timeout:
                    raise ServerError(
                        f"gave up after waiting {_seconds(waited)} for template {name} on "
                        f"{host_port(self.server.url)}, which another run is building or "
                        f"checking: {holder} holds its lock. If that run is stopped "
                        "(Ctrl-Z, SIGSTOP, a debugger) resume or end it; if it is only slow, "
                        f"wait longer with {SPECS['lock_timeout'].channels} (now "
                        f"{_seconds(timeout)})"
                    ) from None
                if self.say is not None:
                    self.say(
                        f"waiting for template {name} on {host_port(self.server.url)}, which "
                        f"another run is building: {holder} holds its lock; giving up after "
                        f"{_seconds(timeout)} ({SPECS['lock_timeout'].option})"
                    )
            finally:
                admin.execute("RESET lock_timeout")
        if waited:
            self.notes.append(
                f"waited {_seconds(waited)} or more for template {name}, which {holder} held"
            )
        try:
            yield
        finally:
            admin.execute("SELECT pg_advisory_unlock(%s)", (lock,))

    def _create(
        self, admin: Admin, name: str, template: str, comment: str, strategy: str | None = None
    ) -> None:
        """CREATE DATABASE `name` from `template`, then comment it; until then it is marked
        by `BIRTH_MARK` and by its lock, held here. Raises ObjectInUse if a session is
        connected to `template` (PostgreSQL waits 5 seconds for it to go first)."""
        statement = sql.SQL("CREATE DATABASE {} TEMPLATE {} CONNECTION LIMIT {}").format(
            sql.Identifier(name), sql.Identifier(template), sql.Literal(BIRTH_MARK)
        )
        if strategy is not None:  # PostgreSQL 15+: WAL_LOG (its default) or FILE_COPY
            if strategy not in STRATEGIES:
                raise ValueError(f"strategy {strategy!r}: use one of {sorted(STRATEGIES)}")
            statement += sql.SQL(" STRATEGY {}").format(sql.SQL(strategy))
        with _holding(admin, name):
            try:
                admin.execute(statement)
            except psycopg.errors.InsufficientPrivilege as error:
                role = self.server.url.username or "this role"
                raise ServerError(
                    f"{role} may not create databases on {host_port(self.server.url)}: "
                    f"{error_text(error)}. Grant it with ALTER ROLE {role} CREATEDB, or use "
                    f"another server or role with {SPECS['dsn'].channels}."
                ) from None
            set_comment(admin, name, comment)

    def _copy(
        self,
        admin: Admin,
        spec: _Spec,
        name: str,
        purpose: str,
        *,
        strategy: str | None = None,
        **meta: object,
    ) -> str:
        """Create `name` from the template of `spec`, checked against the template's
        fingerprint (rebuilding the template once if it fails); the template's name."""
        with self._template(admin, spec) as template:
            self._claim(template)
            comment = _comment(purpose, template=template, **meta)
            problem = self._checked_copy(admin, template, name, comment, strategy)
            if problem is not None:
                self.notes.append(f"template {template} was rebuilt: {problem}")
                self._replace(admin, spec, template, "its content had changed")
                problem = self._checked_copy(admin, template, name, comment, strategy)
                if problem is not None:
                    raise ServerError(
                        f"template {template} on {host_port(self.server.url)} failed its "
                        f"check right after it was rebuilt: {problem}. Is something on the "
                        "server changing new databases (a trigger on template0?)"
                    )
            purpose, meta = _describe(admin, template)
            if purpose == SEALED:  # record that it was just used, so sweeps keep it
                now = _server_now(admin).isoformat(timespec="milliseconds")
                with contextlib.suppress(psycopg.errors.InsufficientPrivilege):  # another role's
                    set_comment(admin, template, _comment(SEALED, **{**meta, "used": now}))
            return template

    def _checked_copy(
        self, admin: Admin, template: str, name: str, comment: str, strategy: str | None = None
    ) -> str | None:
        """Create `name` from `template`; None if it matches the template's fingerprint,
        else (having dropped it) what is wrong with the template."""
        try:
            self._create(admin, name, template, comment, strategy)
        except psycopg.errors.ObjectInUse:
            return (
                f"someone unsealed it and was connected to it ({_sessions_on(admin, template)}); "
                "the rebuild ended that session"
            )
        expected = Fingerprint.from_meta(_describe(admin, template)[1])
        with connect(self.server.url_for(name)) as connection:
            found = content_fingerprint(connection)
        problem = "it has no fingerprint" if expected is None else expected.differences(found)
        if problem is None:
            return None
        _drop(admin, name, force=True)
        return f"its content is not what was built ({problem})"

    @contextlib.contextmanager
    def _building(
        self, admin: Admin, spec: _Spec, why: str = ""
    ) -> Iterator[tuple[str, Fingerprint]]:
        """A new database made from `spec`'s source and populated, with its fingerprint;
        dropped at the end unless it has become a template. `why` it is built goes to the
        watcher (the run's summary)."""
        build = f"celestra_build_{secrets.token_hex(6)}"
        meta: dict[str, Any] = {"run": self.run_id, "owner": self.owner_lock}
        label = spec.label or spec.kind
        with _holding(admin, build):
            try:
                started = time.perf_counter()
                if self.watcher is not None:
                    self.watcher.building(label)
                if spec.source is None:
                    self._create(admin, build, "template0", _comment("template build", **meta))
                else:
                    self._copy(admin, spec.source, build, "template build", **meta)
                url = self.server.url_for(build)
                spec.populate(url)
                with connect(url) as connection:
                    fingerprint = content_fingerprint(connection)
                if self.watcher is not None:
                    seconds = time.perf_counter() - started
                    self.watcher.built(label, sum(fingerprint.rows.values()), seconds, why)
                yield build, fingerprint
            finally:
                # A server gone mid-build cannot drop it: the next run's sweep will.
                with contextlib.suppress(psycopg.OperationalError):
                    drop_database(admin, build)  # a no-op once it has become a template

    def _install(
        self, admin: Admin, built: tuple[str, Fingerprint], name: str, spec: _Spec, key: str
    ) -> None:
        """Make the build the sealed template `name` (whose lock the caller holds), then
        sweep. An older template of that name is untrusted: dropped, with its sessions."""
        build, fingerprint = built
        drop_database(admin, name, protected=self.protected)
        target = sql.Identifier(name)
        admin.execute(
            sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(build), target)
        )
        # A sealed template never changes: its size is recorded once, so that sweeps read
        # it from the comment instead of walking every template's files each time.
        size = admin.execute("SELECT pg_database_size(%s)", (name,)).fetchone()
        seal = "ALTER DATABASE {} WITH ALLOW_CONNECTIONS false IS_TEMPLATE true"
        admin.execute(sql.SQL(seal).format(target))
        now = _server_now(admin).isoformat(timespec="milliseconds")
        facts: dict[str, object] = {"run": self.run_id, "built": now, "used": now}
        facts |= {"kind": spec.kind, "key": key, "size": int(size[0]) if size and size[0] else 0}
        facts["label"] = spec.label  # what the next build of it says changed (_why_built)
        set_comment(admin, name, _comment(SEALED, **facts, **spec.meta, **fingerprint.as_meta()))
        self._sweep(admin, keep={name})

    def _replace(self, admin: Admin, spec: _Spec, name: str, why: str = "") -> None:
        """Build template `name` afresh (its lock held by the caller), `why` it is."""
        key = spec.key or str(_describe(admin, name)[1].get("key", ""))
        with self._building(admin, spec, why) as built:
            self._install(admin, built, name, spec, key)

    def _why_built(self, admin: Admin, name: str, spec: _Spec) -> str:
        """Why template `name` of `spec` is (re)built: `--celestra-rebuild`, or what changed
        since the template of the same label last used here (a new anchor day, the schema,
        the package's code ...), or that there is none."""
        if _describe(admin, name)[0] == SEALED:
            return "--celestra-rebuild" if self.rebuild else ""
        earlier = [
            listed.meta
            for listed in self._listing(admin, sizes=False)
            if listed.purpose == SEALED
            and listed.meta.get("kind") == spec.kind
            and listed.meta.get("label") == spec.label
        ]
        if not earlier:
            return "none on this server yet"
        latest = max(earlier, key=lambda meta: _when(meta.get("used")))
        changed = [
            f"new anchor day {spec.meta['day']} (was {latest.get('day')})"
            if field == "day"
            else what
            for field, what in _CHANGES.items()
            if field in spec.meta and latest.get(field) != spec.meta[field]
        ]
        return "; ".join(changed) or "what it is built from changed"

    def _usable(self, admin: Admin, name: str) -> bool:
        """Is `name` a sealed template with a fingerprint (and, with `rebuild`, one
        built by this run or since it began: two rebuilding runs at once each rebuilt what
        the other had just built, back and forth)?"""
        purpose, meta = _describe(admin, name)
        if purpose != SEALED or Fingerprint.from_meta(meta) is None:
            return False
        if not self.rebuild or meta.get("run") == self.run_id:
            return True
        return _when(meta.get("built")) >= (self.since or _server_now(admin))

    @contextlib.contextmanager
    def _template(self, admin: Admin, spec: _Spec) -> Iterator[str]:
        """Hold the lock of an up-to-date template of `spec`, building it if needed
        (`spec.key` None, a user schema's: build first, then name it by its catalog's hash)."""
        if spec.key is not None:
            name = template_name(spec.kind, self._role_key(admin, spec.key))
            with self._waiting_for(admin, name, spec.label):
                if not self._usable(admin, name):
                    self._replace(admin, spec, name, self._why_built(admin, name, spec))
                yield name
            return
        with self._building(admin, spec) as built:
            with connect(self.server.url_for(built[0])) as connection:
                key = catalog_schema_key(connection)
            name = template_name(spec.kind, self._role_key(admin, key))
            with self._waiting_for(admin, name, spec.label):
                if not self._usable(admin, name):
                    self._install(admin, built, name, spec, key)
                self._schema_key = key
                yield name

    def _role_key(self, admin: Admin, key: str) -> str:
        """`key`, or for a role that is not a superuser, `key` and the role's name: a clone's
        tables belong to whoever built its template, so such a role keeps its own."""
        if self._role is None:
            row = admin.execute(
                "SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user"
            ).fetchone()
            self._role = "" if row is None or row[1] else str(row[0])
        return digest(key, "role", self._role) if self._role else key

    @staticmethod
    def _listing(admin: Admin, sizes: bool = True) -> list[_Listed]:
        """Our databases, and unmarked ones with our name and
        [`BIRTH_MARK`][pytest_celestra.db.database.BIRTH_MARK]; with `sizes`, each sealed
        template's size (recorded when sealed; measured for one sealed by an older version)."""
        parameters = {
            "sealed": f"{MARK} {SEALED} %",
            "sized": '%"size": %',
            "mark": f"{MARK}%",
            "birth": BIRTH_MARK,
            "sizes": sizes,
        }
        # A database another run drops while it is listed has no size: NULL for a superuser
        # (counted as 0), an error for another role (PostgreSQL checks its CONNECT
        # privilege first, on a database that is gone): list again.
        for attempt in range(_LISTING_ATTEMPTS):
            try:
                rows = admin.execute(_LISTING, parameters).fetchall()
                break
            except psycopg.errors.InvalidCatalogName:
                if attempt == _LISTING_ATTEMPTS - 1:
                    raise
        listed = []
        for name, comment, size in rows:
            purpose, meta = _parse_comment(comment)
            recorded = meta.get("size")
            size = recorded if isinstance(recorded, int) else size
            listed.append(_Listed(name, purpose, meta, int(size or 0)))
        return listed

    def _sweep(self, admin: Admin, keep: Iterable[str] = (), *, evict: bool = True) -> None:
        """Drop what is ours and nobody needs (never what is kept, or in `keep`): test
        databases and builds of runs that are gone (their run's lock is free), databases
        left unmarked by a run killed before commenting them, older versions' test
        databases a day old; with `evict` (after a build), sealed templates over the
        [`Budget`][pytest_celestra.db.database.Budget] and older versions' unsealed ones
        unused for its age.

        Each one's locks are tried, not awaited; anything in use (but a dead run's leftovers,
        whose backends can outlive it for a moment) or whose comment changed since the
        listing is left to a later sweep.
        """
        now = _server_now(admin)
        kept = set(keep)
        spared = kept | PROTECTED_DATABASES | self.protected
        # (listed, locks to try, force: a dead run's leftovers)
        doomed: list[tuple[_Listed, list[int], bool]] = []
        sealed: list[TemplateUse] = []
        listings = self._listing(admin, sizes=evict)
        for listed in listings:
            name, purpose, meta = listed.name, listed.purpose, listed.meta
            if name in spared or meta.get("kept"):
                continue
            if purpose != SEALED and meta.get("run") == self.run_id:
                continue  # this run's own, alive by definition
            if purpose == SEALED:
                day = meta.get("day")
                used, built = _when(meta.get("used")), _when(meta.get("built"))
                sealed.append(TemplateUse(name, used, listed.size, day, built, meta.get("run")))
            elif "owner" in meta and purpose in ("test database", "template build"):
                doomed.append((listed, [_lock_id(name), int(meta["owner"])], True))
            elif (
                purpose in ("", "template build")
                or (
                    evict
                    and purpose == _LEGACY_TEMPLATE
                    and now - _when(meta.get("used")) > self.budget.max_age
                )
                or (
                    purpose == "test database"
                    and now - _when(meta.get("created")) > _LEGACY_TEST_DATABASE_AGE
                )
            ):
                doomed.append((listed, [_lock_id(name)], purpose == ""))
        others: set[str] = set()  # other runs' templates the budget (not the day) drops
        if evict:
            evicted = set(templates_to_evict(sealed, self.budget, now, kept))
            doomed += [
                (listed, [_lock_id(listed.name), _use_lock_id(listed.name)], False)
                for listed in listings
                if listed.name in evicted
            ]
            others = {
                template.name
                for template in sealed
                if template.name in evicted
                and not of_a_past_day(template, now)
                and template.run != self.run_id
            }
        dropped_others: list[_Listed] = []
        for listed, locks, force in doomed:
            with _if_free(admin, locks) as free:
                if not free:
                    continue
                # What was listed may have changed before its locks were free: a database
                # unmarked then (its creator between CREATE DATABASE and COMMENT, holding
                # its lock) is now a living run's, whose run lock was not among those
                # tried; a template was just used. Only what is still as listed goes.
                if _describe(admin, listed.name) != (listed.purpose, listed.meta):
                    continue
                # In use, or another role's: leave it to a later sweep or its owner.
                with contextlib.suppress(
                    psycopg.errors.ObjectInUse, psycopg.errors.InsufficientPrivilege
                ):
                    _drop(admin, listed.name, force=force)
                    if listed.name in others:
                        dropped_others.append(listed)
        if dropped_others:
            count, size = len(dropped_others), sum(listed.size for listed in dropped_others)
            self.notes.append(
                f"the template budget dropped {count} template{'s' if count != 1 else ''} "
                f"other runs had built ({format_bytes(size)}), over its age or size: on a "
                "server others use, their cache too (--celestra-template-max-age, "
                "--celestra-template-max-size)"
            )

    def _schema_spec(self, admin: Admin | None = None) -> _Spec:
        """The schema template's spec; with `admin`, with its key: a user schema's is learnt
        from its catalog, building (or finding) its template first."""

        def populate(url: URL) -> None:
            engine = create_engine(url, poolclass=NullPool)
            try:
                with engine.begin() as connection:
                    self.schema.create(connection)
                    self.notes.extend(self.seeder.schema_notes(connection))
            finally:
                engine.dispose()

        self._schema_key = self._schema_key or self.schema.key
        spec = _Spec("schema", self._schema_key, None, populate, label="the empty schema")
        if self._schema_key is None and admin is not None:
            with self._template(admin, spec):  # names it, and learns self._schema_key
                pass
            spec = replace(spec, key=self._schema_key)
        return spec

    def _progress(self, label: str, done: str) -> None:
        if self.watcher is not None:
            self.watcher.progress(label, done)

    def _seeded_spec(self, admin: Admin, volume: Volume, seed: int, anchor: datetime) -> _Spec:
        schema = self._schema_spec(admin)
        day = anchor.date().isoformat()
        key = scenario_key(self._schema_key, volume, seed, day)
        if self.seeder.key:
            key = digest(key, self.seeder.key)
        label = f"volume {volume.name} (seed {seed})"

        def populate(url: URL) -> None:
            with connect(url) as connection:
                report = self.seeder.seed(
                    connection,
                    volume,
                    seed=seed,
                    anchor=anchor,
                    progress=lambda table, rows: self._progress(label, f"{table} {rows:,} rows"),
                )
                self.notes.extend(report.notes)
                connection.commit()
                connection.execute("ANALYZE")

        meta: dict[str, object] = {
            "day": day,
            "volume": volume.name,
            "seed": seed,
            "schema": self._schema_key,
            "code": generator_code_key(),
            "passwords": password_hashing_key(),
            "rules": self.seeder.key,
        }
        return _Spec("seeded", key, schema, populate, meta, label)

    def _layered_spec(
        self,
        admin: Admin,
        base: Volume | None,
        layers: Sequence[TemplateLayer],
        seed: int,
        anchor: datetime,
    ) -> _Spec:
        """The spec of `layers` (bottom first) on the scenario of `base`, or on the empty
        schema: each layer's template is a copy of the one below, plus what it adds."""
        if base is not None:
            spec = self._seeded_spec(admin, base, seed, anchor)
        else:
            spec = self._schema_spec(admin)
        day = anchor.date().isoformat()
        code = generator_code_key()
        passwords = password_hashing_key()
        for layer in layers:
            key = digest("layer", spec.key, layer.key, seed, day, self.seeder.key, code, passwords)
            meta: dict[str, object] = {
                "day": day,
                "scenario": layer.label,
                "volume": None if base is None else base.name,
                "seed": seed,
                "schema": self._schema_key,
                "code": code,
            }
            populate = functools.partial(self._fill_layer, layer, seed, anchor)
            spec = _Spec("scenario", key, spec, populate, meta, layer.label)
        return spec

    def _fill_layer(self, layer: TemplateLayer, seed: int, anchor: datetime, url: URL) -> None:
        progress = functools.partial(self._progress, layer.label)
        self.notes.extend(layer(url, seed=seed, anchor=anchor, progress=progress))
        with connect(url, autocommit=True) as connection:
            connection.execute("ANALYZE")

    def _clone(
        self,
        admin: Admin,
        spec: _Spec,
        label: str,
        name: str | None = None,
        strategy: str | None = None,
    ) -> URL:
        """A new test database from the template of `spec`, checked against it."""
        name = name or f"celestra_{label}_{self.worker}_{secrets.token_hex(4)}"
        now = _server_now(admin).isoformat(timespec="milliseconds")
        meta: dict[str, object] = {
            "run": self.run_id,
            "owner": self.owner_lock,
            "worker": self.worker,
            "created": now,
        }
        if self.keep:  # kept even if the run is killed before it ends
            meta["kept"] = True
        self._copy(admin, spec, name, "test database", strategy=strategy, **meta)
        self.created.append(name)
        return self.server.url_for(name)

    def check_room(self, volume: Volume | None, copies: int = 1) -> None:
        """Raise ServerError if `copies` new databases of `volume` (None: the empty schema)
        would not fit on the server's disk; every path that creates a database calls it."""
        disk = (disk_free(self._data_directory), self._max_wal)
        check_disk_room(self.server.url, volume, copies, disk)

    def create_empty(self, *, name: str | None = None) -> URL:
        """A new database holding the empty schema, cloned from its template. `name`: that
        of a test database `discard` dropped, to clone it again."""
        with self._server_faults("making the empty-schema database"), self._admin() as admin:
            self.check_room(None, 2)
            return self._clone(admin, self._schema_spec(), "empty", name)

    def _check_room_for(self, admin: Admin, spec: _Spec, volume: Volume | None) -> None:
        """Room for a clone of `spec`'s template, and for the template where it is not built."""
        assert spec.key is not None
        built = self._usable(admin, template_name(spec.kind, self._role_key(admin, spec.key)))
        self.check_room(volume, 1 if built else 2)

    def create_seeded(
        self,
        volume: Volume,
        seed: int,
        anchor: datetime,
        *,
        name: str | None = None,
        label: str = "seeded",
        strategy: str | None = None,
    ) -> URL:
        """A new database holding the whole scenario, cloned from its template. `name`: as
        for `create_empty`; `label` goes into a new name; `strategy`: that of `CREATE
        DATABASE` (None: the server's default). Other threads may call it too."""
        with (
            self._server_faults(f"building or cloning the {volume.name} scenario's template"),
            self._admin() as admin,
        ):
            spec = self._seeded_spec(admin, volume, seed, anchor)
            self._check_room_for(admin, spec, volume)
            return self._clone(admin, spec, label, name, strategy)

    def create_layered(
        self,
        base: Volume | None,
        layers: Sequence[TemplateLayer],
        seed: int,
        anchor: datetime,
        *,
        name: str | None = None,
        label: str = "scenario",
        strategy: str | None = None,
    ) -> URL:
        """A new database holding `layers` (bottom first) on the scenario of volume `base`
        (None: on the empty schema), cloned from the top layer's template. Each layer is a
        template of its own, so one shared by several scenarios is built once."""
        what = layers[-1].label  # never empty: a scenario is its own top layer
        with (
            self._server_faults(f"building or cloning the template of {what}"),
            self._admin() as admin,
        ):
            spec = self._layered_spec(admin, base, layers, seed, anchor)
            self._check_room_for(admin, spec, base)
            return self._clone(admin, spec, label, name, strategy)

    def prepare_layered(
        self, base: Volume | None, layers: Sequence[TemplateLayer], seed: int, anchor: datetime
    ) -> str:
        """Build (or find up to date) the template of `layers` on `base`, as `create_layered`
        would, without cloning it; its name."""
        what = layers[-1].label
        with self._server_faults(f"building the template of {what}"), self._admin() as admin:
            spec = self._layered_spec(admin, base, layers, seed, anchor)
            with self._template(admin, spec) as template:
                return template

    def discard(self, url: URL) -> None:
        """Drop a test database a test has damaged, even with `keep`."""
        assert url.database in self.created
        with self._admin() as admin:
            drop_database(admin, url.database, protected=self.protected)
        self.created.remove(url.database)  # only once dropped: a failed drop is tried again

    def release(self, url: URL) -> str | None:
        """Drop a test database, or with `keep` leave it and return its URL. A server gone
        by then gets a note ([`undropped_note`][pytest_celestra.db.database.undropped_note])."""
        name = url.database
        assert name in self.created
        self.created.remove(name)
        if self.keep:
            return libpq_url(url)
        try:
            with self._connect_admin() as admin:
                drop_database(admin, name, protected=self.protected)
        except psycopg.OperationalError as error:
            self.notes.append(undropped_note(name, error_text(error)))
        return None


WAIT_NOTICE = 3.0
"""Seconds a process waits for a template's lock before it says who holds it."""
APPLICATION = "pytest-celestra"
"""The `application_name` of our server-wide connections, for whoever waits for a lock."""


def undropped_note(name: str, why: str) -> str:
    """The run's note on a test database `name` it could not drop (`why`, scrubbed)."""
    return f"could not drop test database {name} ({why}); the next run on that server drops it"


def _seconds(seconds: float) -> str:
    """`4 s`, `10 min`: a wait, for messages."""
    if seconds >= 120 and seconds % 60 == 0:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s" if seconds >= 1 else f"{seconds:.1f} s"


def _lock_holders(admin: Admin, lock: int) -> str:
    """`pid 4242 (pytest-celestra gw0 pid 977, postgres, connected since 08:01:02 UTC,
    idle since 08:01:05 UTC)`: who holds the advisory lock `lock`, as the server says."""
    unsigned = lock & 0xFFFFFFFFFFFFFFFF
    rows = admin.execute(
        "SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.usename::text, ''), "
        "       a.backend_start, a.state, a.state_change "
        "  FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
        " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
        "   AND l.classid = %s::bigint::oid AND l.objid = %s::bigint::oid",
        (unsigned >> 32, unsigned & 0xFFFFFFFF),
    ).fetchall()
    if not rows:
        return "nobody any more (it was released a moment ago)"

    def when(moment: datetime | None) -> str:
        return "?" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

    return ", ".join(
        f"pid {pid} ({app or 'no application name'}, {user or 'unknown role'}, connected "
        f"since {when(started)}; the lock's own connection {state or 'state unknown'} since "
        f"{when(changed)})"
        for pid, app, user, started, state, changed in rows
    )


def _sessions_on(admin: Admin, database: str) -> str:
    """`pid 123 of postgres (psql)`, for each session connected to `database`."""
    rows = admin.execute(
        "SELECT pid, usename, application_name FROM pg_stat_activity WHERE datname = %s",
        (database,),
    ).fetchall()
    sessions = (f"pid {pid} of {user} ({app or 'no application name'})" for pid, user, app in rows)
    return ", ".join(sessions) or "gone since"
