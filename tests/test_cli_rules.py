"""``celestra-seed --rules FILE``: the user's schema rules (their ``conftest.py``) used by
the command as by the plugin. Against the suite's server, on scratch databases of this
module (``celestra_cli_*``, dropped afterwards): the built-in schema plus what a migration
of the app added (``users.locale TEXT NOT NULL``, a ``user_preferences`` table)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg
from helpers import (
    ANCHOR_DAY,
    SMALL,
    migrated_database,
    psql,
    row_counts,
    rules_file,
    run_cli,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

LOCALES = {"en-US", "de-DE", "fr-FR"}


def locales_and_preferences(url: str) -> tuple[list[str], int, int]:
    with psycopg.connect(url) as connection:
        locales = [row[0] for row in connection.execute("SELECT locale FROM users")]
        preferences, orphans = connection.execute(
            "SELECT count(*), count(*) FILTER (WHERE u.id IS NULL) FROM user_preferences p "
            "LEFT JOIN users u ON u.id = p.user_id"
        ).fetchone()  # type: ignore[misc]
    return locales, preferences, orphans


def test_without_rules_the_drift_report_says_what_to_add(
    scratch: Callable[[], str], admin_dsn: str
) -> None:
    url = scratch()
    migrated_database(admin_dsn, url)
    result = run_cli("--dsn", url, "--volume", "small", "--anchor-day", ANCHOR_DAY)
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    message = result.stderr
    assert "no row was written" in message
    assert "users.locale (text) is NOT NULL without a default, and no rule fills it" in message
    assert 'rules.column("users", "locale", values=' in message
    assert "new table user_preferences references ours" in message
    assert "--rules FILE" in message
    assert set(row_counts(url).values()) == {0}


def test_with_rules_the_rule_columns_and_tables_are_filled(
    scratch: Callable[[], str], admin_dsn: str, tmp_path: Path
) -> None:
    url = scratch()
    migrated_database(admin_dsn, url)
    result = run_cli(
        "--dsn", url, "--volume", "small", "--anchor-day", ANCHOR_DAY,
        "--rules", str(rules_file(tmp_path)), "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert row_counts(url) == SMALL
    locales, preferences, orphans = locales_and_preferences(url)
    assert len(locales) == SMALL["users"]
    assert set(locales) <= LOCALES
    assert len(set(locales)) > 1
    assert (preferences, orphans) == (7, 0)
    assert '"user_preferences": 7' in result.stdout
    assert '"rules_file": ' in result.stdout


def test_rules_on_a_database_without_the_migrations_say_to_migrate_it_first(
    scratch: Callable[[], str], tmp_path: Path
) -> None:
    """The command makes missing tables from the built-in schema, not the file's
    pytest_celestra_create_schema: its refusal said "remove the rule" and "pass --rules",
    which had been passed, instead of "migrate the database first"."""
    url = scratch()  # a new database: the command creates it, then the built-in tables
    result = run_cli(
        "--dsn", url, "--volume", "small", "--anchor-day", ANCHOR_DAY,
        "--rules", str(rules_file(tmp_path)),
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    message = result.stderr
    assert "without your migrations" in message
    assert "Migrate the database first (e.g. alembic upgrade head)" in message
    assert "--rules FILE" not in message
    with psycopg.connect(url) as connection:  # the built-in tables were rolled back
        assert connection.execute("SELECT to_regclass('users')").fetchone() == (None,)


def test_rules_of_a_file_without_the_hook_are_refused(
    scratch: Callable[[], str], tmp_path: Path
) -> None:
    url = scratch()
    path = rules_file(tmp_path, "def something_else(rules):\n    pass\n")
    result = run_cli("--dsn", url, "--volume", "small", "--rules", str(path))
    assert result.returncode == 1
    assert "defines no pytest_celestra_schema_rules function" in result.stderr


def test_sql_with_rules_is_a_data_only_script_that_follows_them(
    scratch: Callable[[], str], admin_dsn: str, tmp_path: Path
) -> None:
    script = tmp_path / "celestra.sql"
    rules = str(rules_file(tmp_path))
    result = run_cli(
        "--volume", "small", "--anchor-day", ANCHOR_DAY, "--sql", str(script), "--rules", rules
    )
    assert result.returncode == 0, result.stderr
    assert "data-only" in result.stdout
    text = script.read_text()
    assert "CREATE TABLE" not in text
    assert "CREATE INDEX" not in text
    header = next(line for line in text.splitlines() if line.startswith("COPY users ("))
    assert header.endswith(", locale) FROM stdin;")
    assert "COPY user_preferences (user_id, theme) FROM stdin;" in text
    url = scratch()
    migrated_database(admin_dsn, url)
    loaded = psql(url, "-f", str(script))
    assert loaded.returncode == 0, loaded.stderr
    assert row_counts(url) == SMALL
    locales, preferences, orphans = locales_and_preferences(url)
    assert set(locales) <= LOCALES
    assert len(set(locales)) > 1
    assert (preferences, orphans) == (7, 0)
    # The same rules with a server give the same rows: one rule, one place.
    seeded = scratch()
    migrated_database(admin_dsn, seeded)
    direct = run_cli(
        "--dsn", seeded, "--volume", "small", "--anchor-day", ANCHOR_DAY, "--rules", rules
    )
    assert direct.returncode == 0, direct.stderr
    assert sorted(locales_and_preferences(seeded)[0]) == sorted(locales)


def test_a_table_the_rules_seeded_is_not_called_untouched(
    scratch: Callable[[], str], admin_dsn: str, tmp_path: Path
) -> None:
    """Issue 21: the summary said "beside 2 other tables (untouched)" of these two."""
    url = scratch()
    migrated_database(admin_dsn, url)
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("CREATE TABLE orders (id serial PRIMARY KEY)")
    result = run_cli(
        "--dsn", url, "--volume", "small", "--anchor-day", ANCHOR_DAY,
        "--rules", str(rules_file(tmp_path)),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (
        "  Created there: nothing, the Celestra schema was there already, beside "
        "user_preferences (seeded by your rules) and 1 other table (untouched).\n"
    ) in result.stdout


def test_a_row_refused_while_seeding_is_reported_as_the_plugin_reports_it(
    scratch: Callable[[], str], admin_dsn: str, tmp_path: Path
) -> None:
    """The rules accept a constraint the generator's rows break (and add no column): the
    command seeds as the plugin does, and names the table and constraint, no value."""
    url = scratch()
    migrated_database(admin_dsn, url)
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("ALTER TABLE users DROP COLUMN locale")
        connection.execute("DROP TABLE user_preferences")
        connection.execute(
            "ALTER TABLE users ADD CONSTRAINT users_hash_short CHECK (length(password_hash) < 8)"
        )
    accepting = 'def pytest_celestra_schema_rules(rules):\n    rules.accept("users_hash_short")\n'
    path = rules_file(tmp_path, accepting)
    result = run_cli("--dsn", url, "--volume", "small", "--rules", str(path))
    assert result.returncode == 1
    assert result.stderr == (
        "celestra-seed: error: PostgreSQL refused a row made by the generator's users rows: "
        'new row for relation "users" violates check constraint "users_hash_short" [table '
        "users, constraint users_hash_short]. The row's values are not shown. If your "
        "migrations changed this table, teach the plugin the change in "
        "pytest_celestra_schema_rules (docs: 'When your schema changes').\n"
    )
    assert set(row_counts(url).values()) == {0}
