"""Schema keys, safety and the template cache, against the suite's real server."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from helpers import exists, swept
from psycopg import sql
from sqlalchemy import text

from pytest_celestra.config import ServerMode
from pytest_celestra.db.cache_keys import SchemaSetup, builtin_schema_key, catalog_schema_key
from pytest_celestra.db.database import (
    MARK,
    DatabaseManager,
    _holding,
    _lock_id,
    drop_database,
    template_name,
)
from pytest_celestra.db.seeding import Seeder
from pytest_celestra.db.server import Server
from pytest_celestra.errors import UnsafeDatabaseError
from pytest_celestra.urls import libpq_url

# --- schema keys -----------------------------------------------------------------


@pytest.mark.slow
def test_the_builtin_schema_key_is_the_same_in_every_process():
    """It must not follow str hashing (set order of the enum types)."""
    code = (
        "from pytest_celestra.db.cache_keys import builtin_schema_key; print(builtin_schema_key())"
    )
    keys = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for hash_seed in ("1", "2", "3")
    }
    assert keys == {builtin_schema_key()}


@pytest.fixture
def scratch_databases(admin):
    """Make databases bearing our mark; drop whatever is left of them afterwards.

    The mark says when it was made: a test database of an older version a day old is
    what every run's sweep drops, and other runs on the server sweep at any moment."""
    names: list[str] = []
    ours = f'{MARK} test database {{"created": "{datetime.now(UTC).isoformat()}"}}'

    def make(comment: str | None = ours) -> str:
        name = f"celestra_probe_{secrets.token_hex(4)}"
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        names.append(name)
        if comment is not None:
            admin.execute(
                sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                    sql.Identifier(name), sql.Literal(comment)
                )
            )
        return name

    yield make
    for name in names:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def test_the_catalog_key_follows_the_schema(admin_dsn, scratch_databases):
    def key_after(ddl: str) -> str:
        name = scratch_databases()
        url = psycopg.conninfo.make_conninfo(admin_dsn, dbname=name)
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(ddl)
            return catalog_schema_key(connection)

    table = "CREATE TABLE widgets (id int PRIMARY KEY, name text NOT NULL)"
    assert key_after(table) == key_after(table)
    assert key_after(table) != key_after(table.replace("NOT NULL", "DEFAULT 'x'"))
    assert key_after(table) != key_after(table + "; CREATE INDEX ON widgets (name)")


# --- safety ----------------------------------------------------------------------


def database_exists(admin, name: str) -> bool:
    row = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return row is not None


def test_a_database_without_our_comment_is_never_dropped(admin, scratch_databases):
    theirs = scratch_databases(comment=None)
    commented = scratch_databases(comment="production data, hands off")
    for name in (theirs, commented):
        with pytest.raises(UnsafeDatabaseError, match=f"refusing to drop database '{name}'"):
            drop_database(admin, name)
        assert database_exists(admin, name)


def test_protected_databases_are_never_dropped(admin, scratch_databases):
    ours = scratch_databases()
    with pytest.raises(UnsafeDatabaseError):
        drop_database(admin, ours, protected=frozenset({ours}))
    assert database_exists(admin, ours)
    with pytest.raises(UnsafeDatabaseError):
        drop_database(admin, "postgres")
    drop_database(admin, ours)
    assert not database_exists(admin, ours)


def test_without_force_a_database_in_use_is_left_to_its_user(admin, admin_dsn, scratch_databases):
    """The benchmark's clean-up drops with `force=False`: another run may be connected."""
    ours = scratch_databases()
    with psycopg.connect(psycopg.conninfo.make_conninfo(admin_dsn, dbname=ours)):
        with pytest.raises(psycopg.errors.ObjectInUse):
            drop_database(admin, ours, force=False)
        assert database_exists(admin, ours)
    drop_database(admin, ours, force=False)
    assert not database_exists(admin, ours)


# --- the template cache ----------------------------------------------------------


@pytest.fixture
def manager(suite_databases):
    """A manager with a tiny schema of its own (a key no other test uses)."""
    runs: list[DatabaseManager] = []

    def make(schema_key: str, *, rebuild: bool = False, ddl: str = "") -> DatabaseManager:
        def create(connection) -> None:
            connection.execute(text(ddl or "CREATE TABLE widgets (id int PRIMARY KEY)"))

        made = DatabaseManager(
            suite_databases.server,
            SchemaSetup(create, schema_key),
            Seeder(),
            run_id=secrets.token_hex(8),
            worker="probe",
            rebuild=rebuild,
        )
        runs.append(made)
        return made

    yield make
    for made in runs:
        for name in list(made.created):
            made.release(made.server.url_for(name))
        made.close()


def comment_of(admin, name: str) -> dict:
    comment = admin.execute(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
        (name,),
    ).fetchone()[0]
    return json.loads(comment[comment.index("{") :])


def test_a_template_is_built_once_then_cloned(admin, manager):
    key = secrets.token_hex(32)
    template = template_name("schema", key)
    first = manager(key)
    clone = first.create_empty()
    assert comment_of(admin, template)["run"] == first.run_id
    with psycopg.connect(libpq_url(clone)) as connection:
        assert connection.execute("SELECT count(*) FROM widgets").fetchone() == (0,)
    second = manager(key)
    second.create_empty()
    assert comment_of(admin, template)["run"] == first.run_id  # reused, not rebuilt
    rebuilt = manager(key, rebuild=True)
    rebuilt.create_empty()
    rebuilt.create_empty()
    assert comment_of(admin, template)["run"] == rebuilt.run_id  # rebuilt once for the run
    assert comment_of(admin, clone.database)["worker"] == "probe"


def test_two_rebuilding_runs_at_once_take_each_others_fresh_build(admin, manager):
    """Each rebuilt what the other had just built ("not built by this run"), back and
    forth for every clone: 3 to 6 builds each instead of one."""
    key = secrets.token_hex(32)
    template = template_name("schema", key)
    manager(key).create_empty()  # an older template, from before both runs began
    first, second = manager(key, rebuild=True), manager(key, rebuild=True)
    first.open()  # both runs start (as the plugin opens its manager), then build
    second.open()
    first.create_empty()
    assert comment_of(admin, template)["run"] == first.run_id  # rebuilt: it was older
    second.create_empty()
    assert comment_of(admin, template)["run"] == first.run_id  # built since both began
    first.create_empty()
    assert comment_of(admin, template)["run"] == first.run_id


def test_a_failed_build_leaves_nothing_behind(admin, manager):
    broken = manager(secrets.token_hex(32), ddl="CREATE TABLE oops (")
    with pytest.raises(Exception, match="syntax error"):
        broken.create_empty()
    left = admin.execute(
        "SELECT datname FROM pg_database WHERE shobj_description(oid, 'pg_database') LIKE %s",
        (f"%{broken.run_id}%",),
    ).fetchall()
    assert left == []


def test_sweep_drops_the_leftovers_of_older_versions_and_keeps_the_rest(
    admin, manager, scratch_databases
):
    day_ago = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    leftover_build = scratch_databases(f"{MARK} template build {{}}")
    old_test_db = scratch_databases(f'{MARK} test database {{"created": "{day_ago}"}}')
    recent_test_db = scratch_databases(
        f'{MARK} test database {{"created": "{datetime.now(UTC).isoformat()}"}}'
    )
    kept_test_db = scratch_databases(
        f'{MARK} test database {{"created": "{day_ago}", "kept": true}}'
    )
    foreign = scratch_databases(comment=None)
    with manager("unused")._admin():  # a process's first connection sweeps
        pass
    # Another run's sweep may have taken one first: this one skipped it, and that DROP
    # may still be under way.
    assert swept(admin, leftover_build)
    assert swept(admin, old_test_db)
    assert all(exists(admin, name) for name in (recent_test_db, kept_test_db, foreign))


def test_one_lock_whatever_database_the_dsn_names(suite_databases, admin_dsn, scratch_databases):
    """Runs whose DSNs name different databases still build templates one at a time."""
    other = scratch_databases()
    elsewhere = DatabaseManager(
        Server(ServerMode.DSN, suite_databases.server.url_for(other)),
        SchemaSetup(lambda connection: None, "unused"),
        Seeder(),
        run_id="lock",
        worker="probe",
    )
    name = f"celestra_tpl_{secrets.token_hex(6)}"
    with (
        elsewhere._admin() as locker,
        _holding(locker, name),
        psycopg.connect(admin_dsn, autocommit=True) as connection,
    ):
        taken = connection.execute("SELECT pg_try_advisory_lock(%s)", (_lock_id(name),))
        assert taken.fetchone() == (False,)


def test_times_are_stamped_by_the_servers_clock(admin, manager, monkeypatch):
    """Machines sharing a server stamped built, used and created by their own clocks: one
    whose clock ran ahead made its templates look fresh to every other --celestra-rebuild,
    and one behind made them look old to the budget."""
    from datetime import UTC, datetime, timedelta

    from pytest_celestra.db import database

    class BehindByAYear(datetime):
        @classmethod
        def now(cls, tz=None):  # this machine's clock, a year behind (never ahead: a
            return datetime.now(tz) - timedelta(days=365)  # sweep would evict everything)

    monkeypatch.setattr(database, "datetime", BehindByAYear)
    key = secrets.token_hex(32)
    made = manager(key)
    clone = made.create_empty()
    server_now = admin.execute("SELECT clock_timestamp()").fetchone()[0].astimezone(UTC)
    stamps = comment_of(admin, template_name("schema", key))
    for field in ("built", "used"):
        assert abs(datetime.fromisoformat(stamps[field]) - server_now) < timedelta(minutes=5)
    created = comment_of(admin, clone.database)["created"]
    assert abs(datetime.fromisoformat(created) - server_now) < timedelta(minutes=5)
