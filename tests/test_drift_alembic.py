"""An Alembic project's migrations, step by step, through the schema hooks.

``tests/alembic_app`` creates Celestra's schema (0001), adds ``users.locale TEXT NOT NULL``
(0002), a ``user_status`` label (0003) and a table with a foreign key to ``users`` (0004).
Each step is upgraded to by ``pytest_celestra_create_schema`` in an inner run: first the
drift report, then, with the rules a user would add, a seeded database and factories
that fill the new parts.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from pytest_celestra.schema.tables import TABLES_IN_FK_ORDER
from pytest_celestra.urls import libpq_url

pytest.importorskip("alembic")

PROJECT = Path(__file__).parent / "alembic_app"

CONFTEST = """
import alembic.command
import alembic.config

HEAD = {head!r}


def _alembic(config):
    return alembic.config.Config(str(config.rootpath / "alembic.ini"))


def pytest_celestra_create_schema(connection, config):
    alembic_config = _alembic(config)
    alembic_config.attributes["connection"] = connection
    alembic.command.upgrade(alembic_config, HEAD)
    return True


def pytest_celestra_schema_version(config):
    return HEAD
"""

LOCALE_RULE = """
def pytest_celestra_schema_rules(rules):
    rules.column("users", "locale", values={"en-US": 6, "de-DE": 3, "fr-FR": 1})
"""

DORMANT_RULE = """
    rules.enum_weights("user_status", {"DORMANT": 0.25})
"""

TABLE_RULE = """
    rules.table(
        "user_preferences",
        parents={"user_id": "users"},
        count={"small": 30, "medium": 300, "large": 3000},
        row=lambda context: {"theme": context.rng.choice(["light", "dark", "system"])},
    )
"""

TESTS = """
from sqlalchemy import text
from pytest_celestra.rows.factories import UserFactory

STEP = {step}


def test_seeded(celestra_seeded_db):
    db = celestra_seeded_db
    assert db.execute(text("SELECT count(*) FROM companies")).scalar() == 5
    if STEP >= 2:
        locales = db.execute(text("SELECT DISTINCT locale FROM users")).scalars().all()
        assert set(locales) == {{"en-US", "de-DE", "fr-FR"}}
    if STEP >= 3:
        dormant = db.execute(text("SELECT count(*) FROM users WHERE status = 'DORMANT'"))
        assert dormant.scalar() > 0
    if STEP >= 4:
        rows = db.execute(text(
            "SELECT count(*), count(DISTINCT theme) FROM user_preferences p"
            " JOIN users u ON u.id = p.user_id"
        )).one()
        assert tuple(rows) == (30, 3)


def test_factories(celestra_session):
    user = UserFactory()
    if STEP >= 2:
        assert user.locale in {{"en-US", "de-DE", "fr-FR"}}
        stored = celestra_session.execute(
            text("SELECT locale FROM users WHERE id = :id"), {{"id": user.id}}
        ).scalar()
        assert stored == user.locale
        many = UserFactory.bulk_create(3, company=user.company)
        locales = celestra_session.execute(
            text("SELECT locale FROM users WHERE id = ANY(:ids)"), {{"ids": list(many.ids)}}
        ).scalars().all()
        assert len(locales) == 3
        assert set(locales) <= {{"en-US", "de-DE", "fr-FR"}}
    if STEP >= 4:
        from pytest_celestra.rows.app_factories import factory_for

        row = factory_for("user_preferences")(user=user)
        assert row.theme in {{"light", "dark", "system"}}
"""

HEADER = (
    "*pytest-celestra: the database's schema differs from what pytest-celestra writes "
    "(1 difference to teach it; no row was written):"
)


@pytest.fixture
def alembic_run(celestra_pytester, run_inner):
    """Run the two tests against the project upgraded to ``head``, with ``rules``."""
    shutil.copytree(PROJECT, celestra_pytester.path, dirs_exist_ok=True)

    def run(head: str, step: int, rules: str = "") -> pytest.RunResult:
        celestra_pytester.makeconftest(CONFTEST.format(head=head) + rules)
        celestra_pytester.makepyfile(test_steps=TESTS.format(step=step))
        # Rebuilt: each step reuses the revision names of other runs of this test.
        return run_inner("--celestra-rebuild")

    return run


@pytest.mark.slow
def test_step_1_the_schema_from_the_models_seeds_as_is(alembic_run):
    alembic_run("0001", 1).assert_outcomes(passed=2)


@pytest.mark.slow
def test_step_2_a_not_null_column(alembic_run):
    result = alembic_run("0002", 1)
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            HEADER,
            "  - users.locale (text) is NOT NULL without a default, and no rule fills it",
            "Add to your conftest.py:",
            "",
            "    def pytest_celestra_schema_rules(rules):",
            '        rules.column("users", "locale", values={"VALUE": 1})  # text: your values '
            "and their weights",
            "",
            "See the docs page 'When your schema changes' (docs/schema-changes.md).",
        ],
        consecutive=True,
    )
    alembic_run("0002", 2, LOCALE_RULE).assert_outcomes(passed=2)


@pytest.mark.slow
def test_step_3_a_new_enum_label(alembic_run):
    result = alembic_run("0003", 2, LOCALE_RULE)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "celestra: new label DORMANT of enum user_status is never generated; to have it: "
            'rules.enum_weights("user_status", {"DORMANT": 0.05})'
        ]
    )
    alembic_run("0003", 3, LOCALE_RULE + DORMANT_RULE).assert_outcomes(passed=2)


@pytest.mark.slow
def test_step_4_a_new_table_pointing_at_users(alembic_run):
    result = alembic_run("0004", 3, LOCALE_RULE + DORMANT_RULE)
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            HEADER,
            "  - new table user_preferences references ours (user_id -> users); the seeded "
            "databases would leave it empty",
            # The hook has rules already: its lines go into it (a second one would replace it).
            "Add to your pytest_celestra_schema_rules(rules):",
            "",
            '        rules.table("user_preferences", parents={"user_id": "users"}, '
            'count={"small": 10, "medium": 100, "large": 1000})',
            '        rules.column("user_preferences", "theme", values={"VALUE": 1})  # text: your '
            "values and their weights",
            '        # or: rules.leave_empty("user_preferences")',
            "",
            "See the docs page 'When your schema changes' (docs/schema-changes.md).",
        ],
        consecutive=True,
    )
    alembic_run("0004", 4, LOCALE_RULE + DORMANT_RULE + TABLE_RULE).assert_outcomes(passed=2)


@pytest.fixture
def scratch_url(admin: psycopg.Connection, admin_dsn: str):
    """SQLAlchemy URL of a new, empty database on this suite's server; dropped after."""
    name = f"celestra_alembic_{secrets.token_hex(4)}"
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_url(admin_dsn).set(drivername="postgresql+psycopg", database=name)
    finally:
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_the_project_migrates_from_the_alembic_command_line(scratch_url, tmp_path):
    """Issue 21: the env.py the docs show once failed there with KeyError: 'connection'."""
    project = tmp_path / "myapp"
    shutil.copytree(PROJECT, project)
    url = scratch_url.render_as_string(hide_password=False)
    upgrade = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", "myapp/alembic.ini", "upgrade", "head"],
        cwd=tmp_path,  # not the project's folder: script_location is relative to alembic.ini
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert upgrade.returncode == 0, upgrade.stderr
    with psycopg.connect(libpq_url(scratch_url)) as connection:
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [
            ("0004",)
        ]
        tables = connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
    assert {name for (name,) in tables} == {
        *TABLES_IN_FK_ORDER,
        "user_preferences",
        "alembic_version",
    }


@pytest.mark.slow
def test_the_project_writes_its_sql_offline(scratch_url, tmp_path):
    """`alembic upgrade head --sql` connects to nothing (DATABASE_URL names a database that
    does not exist) and prints a script that makes the same schema as the migrations."""
    project = tmp_path / "myapp"
    shutil.copytree(PROJECT, project)
    offline = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", "myapp/alembic.ini", "upgrade", "head", "--sql"],
        cwd=tmp_path,
        env={**os.environ, "DATABASE_URL": str(scratch_url.set(database="celestra_no_such_db"))},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert offline.returncode == 0, offline.stderr
    with psycopg.connect(libpq_url(scratch_url), autocommit=True) as connection:
        connection.execute(offline.stdout.encode())
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [
            ("0004",)
        ]
        tables = connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
        labels = connection.execute("SELECT enum_range(NULL::user_status)::text[]").fetchone()
    assert {name for (name,) in tables} == {
        *TABLES_IN_FK_ORDER,
        "user_preferences",
        "alembic_version",
    }
    assert labels is not None
    assert "DORMANT" in labels[0]
