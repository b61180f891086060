"""The drift report and the user's schema rules, through inner pytest runs."""

from __future__ import annotations

import pytest
from helpers import schema_hook
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from pytest_celestra.db.drift import RowRejectedError
from pytest_celestra.rows.batches import BulkWriteError
from pytest_celestra.rows.factories import UserFactory
from pytest_celestra.schema.app_rules import SchemaRules

#: The schema of an app whose migrations changed Celestra's in every way the report knows.
CHANGED_SCHEMA = schema_hook(
    "ALTER TABLE users ADD COLUMN locale text NOT NULL",
    "ALTER TYPE user_status ADD VALUE 'DORMANT'",
    "CREATE TABLE user_preferences (id uuid PRIMARY KEY,"
    " user_id uuid NOT NULL REFERENCES users (id), theme text NOT NULL)",
    "ALTER TABLE users ADD CONSTRAINT users_email_ascii CHECK (email ~ '^[ -~]*$')",
    "ALTER TABLE companies ADD COLUMN motto text",
    "CREATE TABLE app_settings (key text PRIMARY KEY, value text)",
)

RULES = """
def pytest_celestra_schema_rules(rules):
    rules.column(
        "users", "locale",
        derive=lambda row, rng: "de-DE" if row["status"] == "SUSPENDED"
        else rng.choice(["en-US", "fr-FR"]),
    )
    rules.enum_weights("user_status", {"DORMANT": 0.2})
    rules.table(
        "user_preferences",
        parents={"user_id": "users"},
        count={"small": 12, "default": 100},
        row=lambda context: {"theme": context.rng.choice(["light", "dark"])},
    )
    rules.accept("users_email_ascii")
"""

TESTS = """
import pytest
from sqlalchemy import text
from pytest_celestra.errors import ConfigError
from pytest_celestra.rows.app_factories import factory_for
from pytest_celestra.rows.factories import UserFactory

def test_seeded(celestra_seeded_db):
    db = celestra_seeded_db
    assert db.execute(text("SELECT count(*) FROM companies")).scalar() == 5
    rows = db.execute(text("SELECT locale, status FROM users")).all()
    assert {locale for locale, _ in rows} <= {"de-DE", "en-US", "fr-FR"}
    assert all(locale == "de-DE" for locale, status in rows if status == "SUSPENDED")
    assert "DORMANT" in {status for _, status in rows}
    assert db.execute(text("SELECT count(*) FROM user_preferences")).scalar() == 12
    orphans = db.execute(text(
        "SELECT count(*) FROM user_preferences p LEFT JOIN users u ON u.id = p.user_id"
        " WHERE u.id IS NULL"
    )).scalar()
    assert orphans == 0

def test_factories(celestra_session):
    user = UserFactory()
    stored = celestra_session.execute(
        text("SELECT locale FROM users WHERE id = :id"), {"id": user.id}
    ).scalar()
    assert stored == user.locale
    assert stored in {"en-US", "fr-FR"}
    assert UserFactory(locale="it-IT").locale == "it-IT"
    preferences = factory_for("user_preferences")(user=user)
    assert preferences.user_id == user.id
    assert preferences.theme in {"light", "dark"}
    made = factory_for("user_preferences")()  # its parent: a UserFactory user
    assert made.user.locale in {"en-US", "fr-FR", "de-DE"}
    many = factory_for("user_preferences").bulk_create(3, user_id=user.id)
    assert {row.user_id for row in many} == {user.id}
    stored = celestra_session.execute(text("SELECT count(*) FROM user_preferences")).scalar()
    assert stored == 5
    assert factory_for("users") is UserFactory  # ours too, by the table's name
    with pytest.raises(ConfigError, match=r"no table 'user_prefs'.*users.*rules.table"):
        factory_for("user_prefs")
"""

REPORT = """\
*pytest-celestra: the database's schema differs from what pytest-celestra writes (3 differences to teach it; no row was written):
  - users.locale (text) is NOT NULL without a default, and no rule fills it
  - new table user_preferences references ours (user_id -> users); the seeded databases would leave it empty
  - new CHECK constraint users_email_ascii on users (email): the generator was not written for it
Add to your conftest.py:

    def pytest_celestra_schema_rules(rules):
        rules.column("users", "locale", values={"VALUE": 1})  # text: your values and their weights
        rules.table("user_preferences", parents={"user_id": "users"}, count={"small": 10, "medium": 100, "large": 1000})
        rules.column("user_preferences", "theme", values={"VALUE": 1})  # text: your values and their weights
        # or: rules.leave_empty("user_preferences")
        rules.accept("users_email_ascii")  # if the generated rows satisfy it

Not breaking:
  - new column companies.motto (text) is left to its default
  - new label DORMANT of enum user_status is never generated; to have it: rules.enum_weights("user_status", {"DORMANT": 0.05})
  - new table app_settings stays empty (no rule fills it)
See the docs page 'When your schema changes' (docs/schema-changes.md).
"""  # noqa: E501


def test_the_drift_report_lists_every_difference_before_any_row(celestra_pytester, run_inner):
    celestra_pytester.makeconftest(CHANGED_SCHEMA)
    celestra_pytester.makepyfile(TESTS)
    result = run_inner()
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(REPORT.splitlines(), consecutive=True)
    assert "COPY" not in result.stdout.str()


def test_with_the_rules_the_seeded_data_and_the_factories_follow_the_schema(
    celestra_pytester, run_inner
):
    celestra_pytester.makeconftest(CHANGED_SCHEMA + RULES)
    celestra_pytester.makepyfile(TESTS)
    result = run_inner()
    result.assert_outcomes(passed=2)
    # The differences that do not break seeding: one line each in the summary.
    result.stdout.fnmatch_lines(
        [
            "celestra: new column companies.motto (text) is left to its default",
            "celestra: new table app_settings stays empty (no rule fills it)",
        ]
    )


def test_lint_shows_the_report_then_the_differences_that_do_not_break(celestra_pytester, run_inner):
    celestra_pytester.makeconftest(CHANGED_SCHEMA)
    result = run_inner("--celestra-lint")
    assert result.ret == 1
    result.stdout.fnmatch_lines(REPORT.splitlines(), consecutive=True)
    celestra_pytester.makeconftest(CHANGED_SCHEMA + RULES)
    result = run_inner("--celestra-lint")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "celestra lint: * 0 FAIL",
            "celestra: new column companies.motto (text) is left to its default",
            "celestra: new table app_settings stays empty (no rule fills it)",
        ]
    )


REFUSED_BY_COPY = """
from sqlalchemy import text
from pytest_celestra import Base

def pytest_celestra_create_schema(connection, config):
    Base.metadata.create_all(connection)
    connection.execute(text(
        "ALTER TABLE users ADD CONSTRAINT users_hash_short CHECK (length(password_hash) < 8)"
    ))
    return True

def pytest_celestra_schema_rules(rules):
    rules.accept("users_hash_short")  # wrongly: the generator's hashes are longer
"""

SEEDED_TEST = """
def test_seeded(celestra_seeded_db):
    pass
"""


def test_a_row_refused_while_seeding_names_its_table_and_rule_not_its_values(
    celestra_pytester, run_inner
):
    celestra_pytester.makeconftest(REFUSED_BY_COPY)
    celestra_pytester.makepyfile(SEEDED_TEST)
    result = run_inner()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*pytest-celestra: PostgreSQL refused a row made by the generator's users rows: new "
            'row for relation "users" violates check constraint "users_hash_short" '
            "[[]table users, constraint users_hash_short]. The row's values are not shown.*"
        ]
    )
    output = result.stdout.str() + result.stderr.str()
    assert "$2b$" not in output  # no password hash
    # No email address (the header's server URL has an @, whichever server it is).
    assert "@" not in output.replace(header_line(result), "")
    assert "Failing row" not in output


def header_line(result: pytest.RunResult) -> str:
    return next(line for line in result.outlines if line.startswith("celestra: "))


NULL_LOCALE = (
    schema_hook("ALTER TABLE users ADD COLUMN locale text NOT NULL")
    + """
def pytest_celestra_schema_rules(rules):
    rules.column("users", "locale", derive=lambda row, rng: None)  # a rule that fails
"""
)

FACTORY_TEST = """
from pytest_celestra.rows.factories import UserFactory

def test_factory(celestra_session):
    UserFactory()
"""


def test_a_rule_that_leaves_a_not_null_column_empty_is_named(celestra_pytester, run_inner):
    celestra_pytester.makeconftest(NULL_LOCALE)
    celestra_pytester.makepyfile(SEEDED_TEST + FACTORY_TEST)
    result = run_inner()
    result.assert_outcomes(failed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*PostgreSQL refused a row made by rules.column('users', 'locale'): null value in "
            'column "locale" of relation "users" violates not-null constraint [[]table users, '
            "column locale]*",
            "*PostgreSQL refused a row made by UserFactory (its locale from rules.column('users', "
            "'locale')): null value in column \"locale\" of "
            'relation "users" violates not-null constraint [[]table users, column locale*',
        ]
    )
    output = result.stdout.str()
    assert "$2b$" not in output
    assert "kwargs = {" not in output  # pytest's frame arguments: the row's values
    assert "[SQL:" not in output
    assert "parameters" not in output


def test_a_refused_factory_row_shows_no_values_and_is_still_an_integrity_error(
    celestra_session,
):
    taken = UserFactory()
    with pytest.raises(IntegrityError) as raised:
        UserFactory(company=taken.company, email=taken.email.upper())
    message = str(raised.value)
    assert isinstance(raised.value, RowRejectedError)
    assert message.startswith(
        "PostgreSQL refused a row made by UserFactory: duplicate key value violates unique "
        'constraint "uq_users_email_lower" [table users, constraint uq_users_email_lower].'
    )
    assert taken.email.upper() not in message
    assert taken.email not in message
    assert "$2b$" not in message
    assert raised.value.orig.diag.constraint_name == "uq_users_email_lower"


def test_a_refused_check_shows_no_row(celestra_session):
    celestra_session.execute(
        text("ALTER TABLE users ADD CONSTRAINT no_names CHECK (name = '')")  # rolled back
    )
    with pytest.raises(IntegrityError) as raised:
        UserFactory(name="Ada Secretname")
    message = str(raised.value)
    assert "constraint no_names" in message
    assert "Secretname" not in message
    assert "Failing row" not in message


def test_a_refused_bulk_create_shows_no_row(celestra_session):
    company = UserFactory().company
    with pytest.raises(BulkWriteError) as raised:
        UserFactory.bulk_create(2, company=company, email="twice@example.com")
    message = str(raised.value)
    assert (
        "failed writing its 2 users rows: duplicate key value violates unique constraint "
        '"uq_users_email_lower" [table users, constraint uq_users_email_lower].'
    ) in message
    assert "Key (" not in message  # the server's detail, which quotes the values
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__


def test_the_template_key_covers_the_rules():
    def described(**changes: object) -> str:
        rules = SchemaRules()
        rules.column("users", "locale", values=changes.get("values", {"en-US": 1}))
        rules.enum_weights("user_status", {"DORMANT": changes.get("share", 0.1)})
        rules.table("prefs", parents={"user_id": "users"}, count=changes.get("count", 5))
        return rules.key()

    assert described() == described()
    assert described(values={"en-US": 2}) != described()
    assert described(share=0.2) != described()
    assert described(count=6) != described()
    assert not SchemaRules()


#: A table your migrations fill (plans, keyed by its code) and a table of yours pointing at
#: it and at one of ours: the rules describe only the second.
LOOKUP_SCHEMA = (
    schema_hook(
        "CREATE TABLE plans (code text PRIMARY KEY, seats int NOT NULL)",
        "INSERT INTO plans VALUES ('free', 1), ('team', 10), ('enterprise', 500)",
        "CREATE TABLE subscriptions (id uuid PRIMARY KEY,"
        " company_id uuid NOT NULL REFERENCES companies (id),"
        " plan_code text NOT NULL REFERENCES plans (code))",
    )
    + """
def pytest_celestra_schema_rules(rules):
    rules.table(
        "subscriptions",
        parents={"company_id": "companies", "plan_code": "plans"},
        count={"default": 40},
    )
"""
)

LOOKUP_TESTS = r"""
import pytest
from sqlalchemy import text
from pytest_celestra import CompanyFactory, factory_for
from pytest_celestra.errors import ConfigError, FactoryArgumentError

def test_seeded(celestra_seeded_db):
    plans = celestra_seeded_db.execute(
        text("SELECT plan_code, count(*) FROM subscriptions GROUP BY 1")
    ).all()
    assert sum(count for _, count in plans) == 40
    assert {code for code, _ in plans} == {"free", "team", "enterprise"}

def test_factories(celestra_session):
    subscriptions = factory_for("subscriptions")
    one = subscriptions()
    assert one.plan_code in {"free", "team", "enterprise"}
    many = subscriptions.bulk_create(30, company=CompanyFactory())
    assert {row.plan_code for row in many} == {"free", "team", "enterprise"}
    assert subscriptions(plan_code="team").plan_code == "team"
    enterprise = type("Plan", (), {"code": "enterprise"})()  # a row of your own model
    made = {subscriptions(plan_code_row=enterprise).plan_code for _ in range(5)}
    assert made == {"enterprise"}
    with pytest.raises(FactoryArgumentError, match=r"\(plan=...\): subscriptions has no colu"):
        subscriptions(plan=enterprise)
    celestra_session.execute(text("DELETE FROM subscriptions"))
    celestra_session.execute(text("DELETE FROM plans"))
    with pytest.raises(ConfigError, match="which no rule fills and which has no rows: pass"):
        subscriptions()
"""


def test_a_parent_table_your_migrations_fill_lends_its_rows(celestra_pytester, run_inner):
    """Before, the seeded template left such a table's children empty, and its factory
    raised "no table 'plans'"."""
    celestra_pytester.makeconftest(LOOKUP_SCHEMA)
    celestra_pytester.makepyfile(LOOKUP_TESTS)
    run_inner().assert_outcomes(passed=2)


def test_a_script_cannot_read_a_parent_table_your_migrations_fill():
    from datetime import UTC, datetime

    from pytest_celestra.db.app_seed import extended_rows
    from pytest_celestra.errors import ConfigError
    from pytest_celestra.schema.volumes import Volume

    rules = SchemaRules()
    rules.table("subscriptions", parents={"plan_code": "plans"}, count=5)
    rows = extended_rows(Volume.named("small"), 1, datetime(2026, 1, 1, tzinfo=UTC), rules)
    # Before the first row: a script to stdout had streamed all of ours first.
    with pytest.raises(ConfigError, match=r"points plan_code at plans, a table no rule fills"):
        next(rows)
    counted = SchemaRules()
    counted.table("notes", parents={"company_id": "companies"}, count={"large": 5})
    rows = extended_rows(Volume.named("small"), 1, datetime(2026, 1, 1, tzinfo=UTC), counted)
    with pytest.raises(ConfigError, match=r"gives no count for the volume 'small'"):
        next(rows)


def test_an_enum_the_database_lacks_is_reported_once():
    """It was reported once for each label its weights gave."""
    from pytest_celestra.db.drift import compare
    from pytest_celestra.schema.catalog import Catalog

    rules = SchemaRules()
    rules.enum_weights("mood", {"HAPPY": 0.1, "SAD": 0.1, "BORED": 0.1})
    report = compare(Catalog({}, {}, ()), rules)
    about = [line for line in report.breaking if "mood" in line]
    assert about == ['rules.enum_weights("mood", ...) names an enum the database lacks']


def test_with_a_rules_hook_the_report_adds_to_it_rather_than_define_another(
    celestra_session,
):
    """It always said to add `def pytest_celestra_schema_rules(rules):`; pasted into a
    conftest.py that had one, the second definition replaced the first and its rules."""
    from sqlalchemy import text

    from pytest_celestra.db.drift import compare
    from pytest_celestra.schema.catalog import read_catalog

    celestra_session.execute(text("ALTER TABLE users ADD COLUMN locale text NOT NULL"))
    pg_conn = celestra_session.connection().connection.driver_connection
    catalog = read_catalog(pg_conn)
    without = compare(catalog, SchemaRules()).message()
    assert "Add to your conftest.py:\n\n    def pytest_celestra_schema_rules(rules):" in without
    # A hook that gives nothing yet is a hook all the same (the plugin and --rules say so).
    assert (
        "def pytest_celestra_schema_rules"
        not in compare(catalog, SchemaRules(hooked=True)).message()
    )
    rules = SchemaRules()
    rules.accept("some_constraint_of_yours")
    message = compare(catalog, rules).message()
    assert "def pytest_celestra_schema_rules" not in message
    assert 'Add to your pytest_celestra_schema_rules(rules):\n\n        rules.column("users"' in (
        message
    )


EMPTY_HOOK = (
    schema_hook("ALTER TABLE users ADD COLUMN locale text NOT NULL")
    + """
def pytest_celestra_schema_rules(rules):
    pass  # begun, nothing in it yet
"""
)


def test_a_rules_hook_that_gives_nothing_yet_is_told_to_take_the_lines(
    celestra_pytester, run_inner
):
    celestra_pytester.makeconftest(EMPTY_HOOK)
    celestra_pytester.makepyfile("def test_seeded(celestra_seeded_db):\n    pass\n")
    result = run_inner()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["Add to your pytest_celestra_schema_rules(rules):"])
    assert "    def pytest_celestra_schema_rules(rules):" not in result.stdout.str()
