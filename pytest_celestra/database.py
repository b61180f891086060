"""The databases pytest-celestra makes on a server: templates, clones, and their safety.

The plugin keeps *templates*, named after a hash of everything that determines their
content, and gives each test process a clone of one. A schema template
(``celestra_schema_<hash>``) holds the empty schema; a seeded template
(``celestra_tpl_<hash>``) holds the whole scenario at one volume, seed and anchor day.
Each template is built under a PostgreSQL advisory lock of its own, so among processes
sharing a server (xdist workers, concurrent runs) exactly one builds each template while
the others wait and then clone it. The hashes come from :mod:`pytest_celestra.cache_keys`.

Safety: every database the plugin creates carries ``COMMENT ON DATABASE ... IS
'created by pytest-celestra ...'``; the plugin drops only databases bearing that comment
and never writes to the database named in the DSN.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from pytest_celestra.cache_keys import (
    SchemaSetup,
    catalog_schema_key,
    generator_code_key,
    password_hashing_key,
    scenario_key,
)
from pytest_celestra.config import SPECS
from pytest_celestra.errors import ServerError, UnsafeDatabaseError
from pytest_celestra.server import connect, error_text, host_port, libpq_url

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from sqlalchemy.engine import URL

    from pytest_celestra.server import Server
    from pytest_celestra.volumes import Volume

MARK = "created by pytest-celestra"
_PROTECTED = frozenset({"postgres", "template0", "template1"})
#: How many recently used templates of each kind are kept besides the ones a run needs.
KEEP_TEMPLATES = 3
#: ``CREATE DATABASE ... STRATEGY`` values (PostgreSQL 15+), checked before they reach SQL.
STRATEGIES = frozenset({"WAL_LOG", "FILE_COPY"})


# --- our databases ---------------------------------------------------------------


def _comment(purpose: str, **meta: object) -> str:
    return f"{MARK} {purpose} {json.dumps(meta, sort_keys=True)}"


def _parse_comment(comment: str) -> tuple[str, dict[str, Any]]:
    """``(purpose, meta)`` of one of our comments."""
    body = comment.removeprefix(MARK).strip()
    purpose, _, meta = body.partition(" {")
    try:
        return purpose, json.loads("{" + meta) if meta else {}
    except ValueError:
        return purpose, {}


def database_comment(admin: psycopg.Connection[Any], name: str) -> str | None:
    """The comment on database ``name`` ("" if it has none), or None if it does not exist."""
    row = admin.execute(
        "SELECT coalesce(shobj_description(oid, 'pg_database'), '') "
        "FROM pg_database WHERE datname = %s",
        (name,),
    ).fetchone()
    return None if row is None else str(row[0])


def drop_database(
    admin: psycopg.Connection[Any],
    name: str,
    *,
    protected: frozenset[str] = frozenset(),
    force: bool = True,
) -> None:
    """Drop ``name`` if pytest-celestra created it; raise :class:`UnsafeDatabaseError` if not.

    A database is ours only if its comment starts with ``created by pytest-celestra``;
    ``postgres``, ``template0``, ``template1`` and ``protected`` are never dropped.
    ``force`` ends other sessions on it (else dropping a database in use fails).
    """
    comment = database_comment(admin, name)
    if comment is None:
        return
    if name in _PROTECTED or name in protected or not comment.startswith(MARK):
        raise UnsafeDatabaseError(
            f"refusing to drop database {name!r}: it does not carry the comment "
            f"'{MARK} ...', so pytest-celestra did not create it. Drop it yourself if you "
            "are sure; the plugin only ever drops its own databases."
        )
    statement = "DROP DATABASE IF EXISTS {} WITH (FORCE)" if force else "DROP DATABASE IF EXISTS {}"
    admin.execute(sql.SQL(statement).format(sql.Identifier(name)))


def _set_comment(admin: psycopg.Connection[Any], name: str, comment: str) -> None:
    admin.execute(
        sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name), sql.Literal(comment))
    )


def _describe(admin: psycopg.Connection[Any], name: str) -> tuple[str, dict[str, Any]]:
    """``(purpose, meta)`` from the comment on ``name``; purpose "" if it is not ours."""
    return _parse_comment(database_comment(admin, name) or "")


def _update(admin: psycopg.Connection[Any], name: str, **changes: object) -> None:
    """Change fields of the comment on our database ``name``."""
    purpose, meta = _describe(admin, name)
    _set_comment(admin, name, _comment(purpose, **{**meta, **changes}))


def _lock_id(name: str) -> int:
    """The advisory lock that guards database ``name`` (a template or a build)."""
    return int.from_bytes(
        hashlib.sha256(f"pytest-celestra {name}".encode()).digest()[:8], "big", signed=True
    )


@contextlib.contextmanager
def _holding(admin: psycopg.Connection[Any], name: str) -> Iterator[None]:
    """Hold the lock of database ``name``, waiting for it if another process has it."""
    admin.execute("SELECT pg_advisory_lock(%s)", (_lock_id(name),))
    try:
        yield
    finally:
        admin.execute("SELECT pg_advisory_unlock(%s)", (_lock_id(name),))


def _template0() -> contextlib.nullcontext[str]:
    return contextlib.nullcontext("template0")


@dataclass
class DatabaseManager:
    """Templates and test databases of one test process on one server.

    Locking: each template and each build has its own advisory lock, held while it is
    built, checked, cloned or dropped. So a process building one template holds up only
    those that need that template; sweeps only try locks and skip what is busy. Locks
    are taken in one order (seeded template, then schema template), so they never
    deadlock.
    """

    server: Server
    schema: SchemaSetup
    run_id: str
    worker: str
    rebuild: bool = False
    keep: bool = False
    created: list[str] = field(default_factory=list)
    _schema_key: str | None = None

    @property
    def protected(self) -> frozenset[str]:
        """The maintenance database (the one a DSN names) is never dropped."""
        return frozenset({self.server.url.database or "postgres"})

    def _admin(self) -> psycopg.Connection[Any]:
        """An autocommit connection for server-wide work, to the ``postgres`` database.

        Advisory locks are per database, so every process must lock in the same one;
        ``postgres`` is where they meet whatever database their DSN names. Servers
        without it (or without access to it) fall back to the DSN's database.
        """
        try:
            return connect(self.server.url_for("postgres"), autocommit=True)
        except psycopg.OperationalError:
            return connect(self.server.url, autocommit=True)

    def _ours(self, admin: psycopg.Connection[Any]) -> dict[str, tuple[str, dict[str, Any]]]:
        rows = admin.execute(
            "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database "
            "WHERE shobj_description(oid, 'pg_database') LIKE %s",
            (MARK + "%",),
        ).fetchall()
        return {name: _parse_comment(comment) for name, comment in rows}

    def _usable(self, admin: psycopg.Connection[Any], name: str) -> bool:
        """Is ``name`` a finished template (and, with ``rebuild``, one built by this run)?"""
        purpose, meta = _describe(admin, name)
        return purpose == "template" and not (self.rebuild and meta.get("run") != self.run_id)

    def _create(
        self,
        admin: psycopg.Connection[Any],
        name: str,
        template: str,
        comment: str,
        strategy: str | None = None,
    ) -> None:
        statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template)
        )
        if strategy is not None:  # PostgreSQL 15+: WAL_LOG (its default) or FILE_COPY
            if strategy not in STRATEGIES:
                raise ValueError(f"strategy {strategy!r}: use one of {sorted(STRATEGIES)}")
            statement += sql.SQL(" STRATEGY {}").format(sql.SQL(strategy))
        deadline = time.monotonic() + 30
        while True:
            try:
                admin.execute(statement)
                break
            except psycopg.errors.ObjectInUse:
                # "source database is being accessed by other users": a connection closing late.
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
            except psycopg.errors.InsufficientPrivilege as error:
                role = self.server.url.username or "this role"
                raise ServerError(
                    f"{role} may not create databases on {host_port(self.server.url)}: "
                    f"{error_text(error)}. Grant it with ALTER ROLE {role} CREATEDB, or use "
                    f"another server or role with {SPECS['dsn'].channels}."
                ) from None
        _set_comment(admin, name, comment)

    @contextlib.contextmanager
    def _building(
        self,
        admin: psycopg.Connection[Any],
        source: Callable[[], contextlib.AbstractContextManager[str]],
        populate: Callable[[URL], None],
    ) -> Iterator[str]:
        """A new database cloned from ``source`` and populated; dropped unless renamed."""
        build = f"celestra_build_{secrets.token_hex(6)}"
        with _holding(admin, build):
            try:
                with source() as template:
                    self._create(
                        admin, build, template, _comment("template build", run=self.run_id)
                    )
                    self._touch(admin, template)
                populate(self.server.url_for(build))
                yield build
            finally:
                drop_database(admin, build)  # a no-op once it has become a template

    def _install(
        self, admin: psycopg.Connection[Any], build: str, name: str, **meta: object
    ) -> None:
        """Make ``build`` the template ``name`` (whose lock the caller holds)."""
        drop_database(admin, name, protected=self.protected)
        admin.execute(
            sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                sql.Identifier(build), sql.Identifier(name)
            )
        )
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        _set_comment(
            admin, name, _comment("template", run=self.run_id, built=now, used=now, **meta)
        )

    @contextlib.contextmanager
    def _template(
        self,
        admin: psycopg.Connection[Any],
        kind: str,
        key: str | None,
        source: Callable[[], contextlib.AbstractContextManager[str]],
        populate: Callable[[URL], None],
        **meta: object,
    ) -> Iterator[str]:
        """Hold the lock of an up-to-date template of ``kind``, building it if needed.

        ``key`` None means: build first, then name the template by its catalog's hash.
        """
        prefix = "celestra_schema_" if kind == "schema" else "celestra_tpl_"
        if key is not None:
            name = prefix + key[:12]
            with _holding(admin, name):
                if not self._usable(admin, name):
                    with self._building(admin, source, populate) as build:
                        self._install(admin, build, name, kind=kind, key=key, **meta)
                    self._sweep(admin, keep=name)
                yield name
            return
        with self._building(admin, source, populate) as build:
            with connect(self.server.url_for(build)) as connection:
                key = catalog_schema_key(connection)
            name = prefix + key[:12]
            with _holding(admin, name):
                built = not self._usable(admin, name)
                if built:
                    self._install(admin, build, name, kind=kind, key=key, **meta)
                    self._sweep(admin, keep=name)
                if kind == "schema":
                    self._schema_key = key
                yield name

    def _sweep(self, admin: psycopg.Connection[Any], keep: str) -> None:
        """Drop stale databases of ours: leftover builds, templates of an older anchor day,
        templates beyond the most recently used few of each kind, and test databases
        of runs that ended a day ago without dropping them (unless kept).

        Only what nobody holds or uses is dropped: each one's lock is tried, not awaited.
        """
        today = datetime.now(UTC).date().isoformat()
        yesterday = (datetime.now(UTC) - timedelta(days=1)).isoformat()
        by_kind: dict[str, list[tuple[str, str]]] = {}
        stale: list[str] = []
        for name, (purpose, meta) in self._ours(admin).items():
            if name == keep:
                continue
            if purpose == "template" and meta.get("day", today) >= today:
                by_kind.setdefault(str(meta.get("kind")), []).append((meta.get("used", ""), name))
            elif purpose in ("template build", "template") or (
                purpose == "test database"
                and not meta.get("kept")
                and meta.get("created", "") < yesterday
            ):
                stale.append(name)
        for templates in by_kind.values():
            stale += [name for _, name in sorted(templates, reverse=True)[KEEP_TEMPLATES:]]
        for name in stale:
            lock = _lock_id(name)
            if admin.execute("SELECT pg_try_advisory_lock(%s)", (lock,)).fetchone() != (True,):
                continue
            try:
                # In use, or another role's: leave it to a later sweep or its owner.
                with contextlib.suppress(
                    psycopg.errors.ObjectInUse, psycopg.errors.InsufficientPrivilege
                ):
                    drop_database(admin, name, protected=self.protected, force=False)
            finally:
                admin.execute("SELECT pg_advisory_unlock(%s)", (lock,))

    def _schema_template(
        self, admin: psycopg.Connection[Any]
    ) -> contextlib.AbstractContextManager[str]:
        def populate(url: URL) -> None:
            engine = create_engine(url, poolclass=NullPool)
            try:
                with engine.begin() as connection:
                    self.schema.create(connection)
            finally:
                engine.dispose()

        key = self._schema_key or self.schema.key
        if key is not None:
            self._schema_key = key
        return self._template(admin, "schema", key, _template0, populate)

    def _seeded_template(
        self, admin: psycopg.Connection[Any], volume: Volume, seed: int, anchor: datetime
    ) -> contextlib.AbstractContextManager[str]:
        if self._schema_key is None:  # a user schema: learn its key from its catalog
            with self._schema_template(admin):
                pass
        day = anchor.date().isoformat()
        key = scenario_key(self._schema_key, volume, seed, day)

        def populate(url: URL) -> None:
            from pytest_celestra.scenario import seed_scenario

            with connect(url) as connection:
                seed_scenario(connection, volume, seed=seed, anchor=anchor)
                connection.commit()
                connection.execute("ANALYZE")

        return self._template(
            admin,
            "seeded",
            key,
            lambda: self._schema_template(admin),
            populate,
            day=day,
            volume=volume.name,
            seed=seed,
            schema=self._schema_key,
            code=generator_code_key(),
            passwords=password_hashing_key(),
        )

    def _clone(
        self,
        admin: psycopg.Connection[Any],
        template: str,
        label: str,
        name: str | None = None,
        strategy: str | None = None,
    ) -> URL:
        """A new test database from ``template`` (whose lock the caller holds)."""
        name = name or f"celestra_{label}_{self.worker}_{secrets.token_hex(4)}"
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        comment = _comment(
            "test database", run=self.run_id, worker=self.worker, created=now, template=template
        )
        self._create(admin, name, template, comment, strategy)
        self.created.append(name)
        self._touch(admin, template)
        return self.server.url_for(name)

    def _touch(self, admin: psycopg.Connection[Any], template: str) -> None:
        """Record that ``template`` was just used, so sweeps keep it."""
        if _describe(admin, template)[0] == "template":
            now = datetime.now(UTC).isoformat(timespec="milliseconds")
            with contextlib.suppress(psycopg.errors.InsufficientPrivilege):  # another role's
                _update(admin, template, used=now)

    def create_empty(self, *, name: str | None = None) -> URL:
        """A new database holding the empty schema, cloned from its template.

        ``name``: the name of a test database :meth:`discard` dropped, to clone it again.
        """
        with self._admin() as admin, self._schema_template(admin) as template:
            return self._clone(admin, template, "empty", name)

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
        """A new database holding the whole scenario, cloned from its template.

        ``name``: as for :meth:`create_empty`; ``label`` goes into a new name;
        ``strategy`` is that of ``CREATE DATABASE`` (``"WAL_LOG"``, ``"FILE_COPY"``; None:
        the server's default). Each call has its own connection, so other threads may
        call it too.
        """
        with (
            self._admin() as admin,
            self._seeded_template(admin, volume, seed, anchor) as template,
        ):
            return self._clone(admin, template, label, name, strategy)

    def discard(self, url: URL) -> None:
        """Drop a test database a test has damaged, even with ``keep``."""
        assert url.database in self.created
        self.created.remove(url.database)
        with self._admin() as admin:
            drop_database(admin, url.database, protected=self.protected)

    def release(self, url: URL) -> str | None:
        """Drop a test database, or with ``keep`` mark it kept and return its URL."""
        name = url.database
        assert name in self.created
        self.created.remove(name)
        with self._admin() as admin:
            if self.keep:
                _update(admin, name, kept=True)
                return libpq_url(url)
            drop_database(admin, name, protected=self.protected)
        return None
