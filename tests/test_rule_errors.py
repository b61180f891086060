"""A schema rule that raises, or makes a value of the wrong type: one message naming the
rule, on every path that makes rows (seeded build, factories, ``bulk_create``,
the factory of a table of yours, ``celestra-seed --rules``), and none of the row's values.

The inner runs share this process: the rules travel with their sessions, never on the
models."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from helpers import ANCHOR_DAY, migrated_database, rules_file
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from pytest_celestra import cli
from pytest_celestra.db.drift import RowRejectedError
from pytest_celestra.errors import ConfigError
from pytest_celestra.rows.factories import UserFactory
from pytest_celestra.schema.app_rules import SchemaRules, builtin_tables, rule_failed, wrong_type

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from sqlalchemy.orm import Session


#: Emails end up in a KeyError's message: they must not reach the report.
IMPORT_BASE = "from pytest_celestra import Base"
RAISING = """
from sqlalchemy import text
from pytest_celestra import Base

LOCALE_OF = {}  # no email in it: every lookup raises KeyError(<the row's email>)


def pytest_celestra_create_schema(connection, config):
    Base.metadata.create_all(connection)
    connection.execute(text("ALTER TABLE users ADD COLUMN locale text NOT NULL"))
    connection.execute(text(
        "CREATE TABLE user_preferences (id uuid PRIMARY KEY,"
        " user_id uuid NOT NULL REFERENCES users (id), theme text NOT NULL)"
    ))
    return True


def locale(row, rng):
    return LOCALE_OF[row["email"]]


def pytest_celestra_schema_rules(rules):
    rules.column("users", "locale", derive=locale)
    rules.table(
        "user_preferences", parents={"user_id": "users"}, count=3,
        row=lambda context: {"theme": THEMES[context.parents["user_id"]]},
    )

THEMES = {}
"""

TESTS = """
import pytest
from pytest_celestra.rows.app_factories import factory_for
from pytest_celestra.rows.factories import UserFactory
from pytest_celestra.errors import RuleError


def test_seeded(celestra_seeded_db):
    pass


def test_factory(celestra_session):
    UserFactory(name="Ada " + "Secret" + "name")


def test_bulk(celestra_session):
    UserFactory.bulk_create(3, name="Ada " + "Secret" + "name")


def test_table_factory(celestra_session):
    user = UserFactory(locale="fr-FR", name="Ada " + "Secret" + "name")
    with pytest.raises(RuleError) as raised:
        factory_for("user_preferences")(user=user)
    assert str(user.id) not in str(raised.value)
    print("TABLE_FACTORY:", raised.value)
"""


def _no_values(output: str) -> None:
    assert "Secretname" not in output
    assert "[parameters:" not in output  # SQLAlchemy's statement text holds no value
    assert "kwargs = {" not in output
    assert "row = {" not in output
    assert "$2b$" not in output


def test_a_raising_rule_is_named_on_every_path_without_the_rows_values(
    celestra_pytester: pytest.Pytester, run_inner: Callable[..., pytest.RunResult]
) -> None:
    celestra_pytester.makeconftest(RAISING)
    celestra_pytester.makepyfile(TESTS)
    result = run_inner("-s", "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=2, errors=1)
    output = result.stdout.str() + result.stderr.str()
    _no_values(output)
    assert not re.search(r"[\w.+-]+@[a-z][\w-]*\.[a-z]+", output)  # no email, in a KeyError either
    assert "The above exception was the direct cause" not in output  # SQLAlchemy's frames
    rule = "rules.column('users', 'locale', derive=...) failed: locale (conftest.py:17) raised "
    raised = (
        "KeyError: '***' at conftest.py:18. The row's values are not shown; no row was written."
    )
    result.stdout.fnmatch_lines(
        [
            # The factory of a table of yours: its row rule.
            "*TABLE_FACTORY: rules.table('user_preferences', row=...) failed: <lambda> "
            "(conftest.py:25) raised KeyError: UUID('***') at conftest.py:25. The row's values "
            "are not shown; no row was written.",
            # The seeded build: one line, the rule named.
            f"pytest-celestra: {rule}{raised}",
            # The factory: the same words, which factory asked, and the test's line only.
            ">       UserFactory(name=*",
            f"E       pytest_celestra.errors.RuleError: {rule}{raised}",
            "E       raised making the users row of UserFactory",
            "",
            "*.py:12: RuleError",
            ">       UserFactory.bulk_create(3, name=*",
            f"E       pytest_celestra.errors.RuleError: {rule}{raised}",
            "E       raised making the rows of UserFactory.bulk_create(3)",
        ],
    )
    # PostgreSQL never saw these rows: nothing says it refused them.
    assert "PostgreSQL refused" not in output


WRONG_TYPES = """
from sqlalchemy import text
from pytest_celestra import Base


def pytest_celestra_create_schema(connection, config):
    Base.metadata.create_all(connection)
    connection.execute(text("ALTER TABLE users ADD COLUMN locale text NOT NULL"))
    connection.execute(text(
        "CREATE TABLE user_preferences (id uuid PRIMARY KEY,"
        " user_id uuid NOT NULL REFERENCES users (id), theme text NOT NULL)"
    ))
    return True


def pytest_celestra_schema_rules(rules):
    rules.column("users", "locale", derive=lambda row, rng: {"lang": row["name"]})
    rules.table(
        "user_preferences", parents={"user_id": "users"}, count=2,
        row=lambda context: {"theme": {"dark": True}},
    )
"""

WRONG_TYPE_TESTS = """
from pytest_celestra.rows.app_factories import factory_for
from pytest_celestra.rows.factories import UserFactory


def test_seeded(celestra_seeded_db):
    pass


def test_factory(celestra_session):
    UserFactory(name="Ada " + "Secret" + "name")


def test_bulk(celestra_session):
    UserFactory.bulk_create(2, name="Ada " + "Secret" + "name")


def test_table_factory(celestra_session):
    user = UserFactory(locale="fr-FR")
    factory_for("user_preferences")(user=user)
"""


def test_a_rule_of_the_wrong_type_is_reported_as_such_not_as_a_refusal(
    celestra_pytester: pytest.Pytester, run_inner: Callable[..., pytest.RunResult]
) -> None:
    celestra_pytester.makeconftest(WRONG_TYPES)
    celestra_pytester.makepyfile(WRONG_TYPE_TESTS)
    result = run_inner("-p", "no:randomly")
    result.assert_outcomes(failed=3, errors=1)
    output = result.stdout.str() + result.stderr.str()
    _no_values(output)
    assert "PostgreSQL refused" not in output
    assert "SQLSTATE" not in output
    result.stdout.fnmatch_lines(
        [
            # Seeded: the catalog says text.
            "*pytest-celestra: rules.column('users', 'locale', derive=...) made a value of the "
            "wrong type for users.locale: a dict, where the column takes str (the column is "
            "text). The value is not shown; PostgreSQL never saw the row.*",
            # Factories: a derive rule's column may be of any type the driver can send.
            "E       pytest_celestra.errors.RuleError: rules.column('users', 'locale', derive=...) "
            "made a value of the wrong type for users.locale: a dict, where the column takes a "
            "value the driver can send (str, int, float, bool, Decimal, UUID, date/time, "
            "bytes). The value is not shown; PostgreSQL never saw the row.",
            # The factory of a table of yours: the catalog says text, as when seeding.
            "E       pytest_celestra.errors.RuleError: rules.table('user_preferences', row=...) "
            "made a value of the wrong type for user_preferences.theme: a dict, where the column "
            "takes str (the column is text). The value is not shown; PostgreSQL never saw the "
            "row.",
        ]
    )


def test_the_cli_names_a_raising_rule(
    scratch: Callable[[], str],
    admin_dsn: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = scratch()
    migrated_database(admin_dsn, url)
    path = rules_file(tmp_path, RAISING.replace(IMPORT_BASE, ""))
    status = cli.main(
        ["--dsn", url, "--volume", "small", "--anchor-day", ANCHOR_DAY, "--rules", str(path)]
    )
    captured = capsys.readouterr()
    assert status == 1
    assert captured.err == (
        "celestra-seed: error: rules.column('users', 'locale', derive=...) failed: locale "
        "(conftest.py:18) raised KeyError: '***' at conftest.py:19. The row's values are not "
        "shown; no row was written.\n"
    )


def test_the_type_check_knows_postgresqls_types() -> None:
    assert wrong_type("x", "text") is None
    assert wrong_type("x", "character varying(20)") is None
    assert wrong_type(None, "integer") is None  # NOT NULL is the server's to say
    assert wrong_type(True, "integer") == "int (the column is integer)"
    assert wrong_type(3, "boolean") == "bool (the column is boolean)"
    assert wrong_type([1, 2], "integer[]") is None
    assert wrong_type({"a": 1}, "jsonb") is None
    assert wrong_type({"a": 1}, None) is not None
    assert wrong_type("ACTIVE", "enum") is None


def test_the_drift_reports_placeholder_is_refused_when_pasted_unchanged() -> None:
    rules = SchemaRules()
    with pytest.raises(ConfigError) as raised:
        rules.column("users", "locale", values={"VALUE": 1})
    assert str(raised.value) == (
        "rules.column('users', 'locale', values={\"VALUE\": 1}): \"VALUE\" is the drift "
        "report's placeholder. Put your own values and their weights in its place, e.g. "
        'values={"en-US": 3, "de-DE": 1}, or compute each value with derive=lambda row, '
        "rng: ..."
    )
    rules.column("users", "locale", values={"VALUE": 1, "other": 1})  # a real value named so


def test_a_table_of_ours_is_not_taken_as_a_table_of_yours() -> None:
    """`rules.table("users", ...)` was accepted, and its rows would have followed ours."""
    rules = SchemaRules()
    with pytest.raises(ConfigError, match=r"rules.table\('users'\): users is one of our tables"):
        rules.table("users", parents={}, count=3)
    with pytest.raises(ConfigError, match=r"rules.column\('agents', \.\.\.\)"):
        rules.leave_empty("user_preferences", "agents")
    assert rules.tables == builtin_tables()  # ours, and none of yours
    assert not rules.empty


def test_a_duplicate_email_does_not_blame_migrations(celestra_session: Session) -> None:
    taken = UserFactory()
    with pytest.raises(IntegrityError) as raised:
        UserFactory(company=taken.company, email=taken.email)
    assert str(raised.value) == (
        "PostgreSQL refused a row made by UserFactory: duplicate key value violates unique "
        'constraint "uq_users_email_lower" [table users, constraint uq_users_email_lower]. '
        "The row's values are not shown."
    )


def test_a_constraint_the_migrations_added_points_to_the_rules(celestra_session: Session) -> None:
    celestra_session.execute(
        text("ALTER TABLE users ADD CONSTRAINT no_names CHECK (name = '')")  # rolled back
    )
    with pytest.raises(IntegrityError) as raised:
        UserFactory()
    assert str(raised.value) == (
        'PostgreSQL refused a row made by UserFactory: new row for relation "users" violates '
        'check constraint "no_names" [table users, constraint no_names]. The row\'s values are '
        "not shown. If your migrations changed this table, teach the plugin the change in "
        "pytest_celestra_schema_rules (docs: 'When your schema changes')."
    )


def test_a_value_the_driver_cannot_send_is_not_called_a_refusal(celestra_session: Session) -> None:
    with pytest.raises(RowRejectedError) as raised:
        UserFactory(password_hash=object())
    assert str(raised.value) == (
        "psycopg could not send a row made by UserFactory to PostgreSQL [table users]: a value "
        "of the row is of a type it cannot send as that column (ProgrammingError). PostgreSQL "
        "never saw the row; its values are not shown."
    )


def test_the_cli_names_a_raising_rule_writing_a_script_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = rules_file(tmp_path, RAISING.replace(IMPORT_BASE, ""))
    script = tmp_path / "celestra.sql"
    status = cli.main(
        [
            "--volume",
            "small",
            "--anchor-day",
            ANCHOR_DAY,
            "--sql",
            str(script),
            "--rules",
            str(path),
        ]
    )
    captured = capsys.readouterr()
    assert status == 1
    assert captured.err == (
        "celestra-seed: error: rules.column('users', 'locale', derive=...) failed: locale "
        "(conftest.py:18) raised KeyError: '***' at conftest.py:19. The row's values are not "
        "shown; no row was written.\n"
    )
    assert not [made for made in tmp_path.iterdir() if made.name.startswith(script.name)]


def test_a_rules_message_hides_the_values_of_the_row_as_str_or_repr_shows_them() -> None:
    when = datetime(2026, 3, 4, 5, 6, tzinfo=UTC)
    row = {"email": "ada@example.com", "created_at": when, "logins": 12345, "admin": True}

    def rule(row: dict[str, Any], rng: Any) -> None:
        raise ValueError(f"no locale for {row['email']} at {row['created_at']!r}, {row['logins']}")

    try:
        rule(row, None)
    except ValueError as error:
        message = str(
            rule_failed("rules.column('users', 'locale', derive=...)", rule, error, row.values())
        )
    assert message.startswith(
        "rules.column('users', 'locale', derive=...) failed: rule (test_rule_errors.py:"
    )
    assert "raised ValueError: no locale for *** at ***, ***" in message


def test_tables_of_yours_in_a_cycle_are_an_error_not_a_recursion() -> None:
    """factory_for of a table whose parent is itself recursed until RecursionError."""
    from datetime import UTC, datetime

    from pytest_celestra.db.app_seed import extended_rows
    from pytest_celestra.schema.volumes import Volume

    rules = SchemaRules()
    rules.table("nodes", parents={"parent_id": "nodes"}, count=3)
    rules.table("a", parents={"b_id": "b"}, count=3)
    rules.table("b", parents={"a_id": "a", "user_id": "users"}, count=3)
    for _ in range(2):  # the same error each time
        with pytest.raises(ConfigError, match=r"in a cycle: nodes\. A row's parents are made"):
            rules.factory("nodes")
    with pytest.raises(ConfigError, match=r"in a cycle: a, b\. .*leave one of these keys out"):
        rules.factory("a")
    anchor = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(ConfigError, match=r"in a cycle: nodes, a, b\. "):
        list(extended_rows(Volume.named("small"), 1, anchor, rules))
