"""Rules that reshape our own columns: the seeded data's stories follow them (a user a rule
makes SUSPENDED holds no live session), and the factories write the enum labels the
application added."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

import pytest

from pytest_celestra.db.app_seed import extended_rows
from pytest_celestra.rows import loader
from pytest_celestra.rows.scenario import anchor_for
from pytest_celestra.schema.app_rules import SchemaRules
from pytest_celestra.schema.volumes import Volume

if TYPE_CHECKING:
    from collections.abc import Callable

CONFTEST = """
from sqlalchemy import text
from pytest_celestra import Base


def pytest_celestra_create_schema(connection, config):
    Base.metadata.create_all(connection)
    connection.execute(text("ALTER TYPE user_status ADD VALUE 'DORMANT'"))
    return True


def suspend_half(row, rng):
    if row["role"] == "REGULAR_USER" and rng.random() < 0.5:
        return "SUSPENDED"
    return row["status"]


def pytest_celestra_schema_rules(rules):
    rules.enum_weights("user_status", {"DORMANT": 0.3})
    rules.column("users", "status", derive=suspend_half)
    rules.column("companies", "vertical", values={"FINANCE": 1})
"""

TESTS = """
import pytest
from sqlalchemy import text
from pytest_celestra.errors import FactoryArgumentError
from pytest_celestra.rows.factories import UserFactory
from pytest_celestra.schema.models import UserStatus


def test_seeded(celestra_seeded_db):
    db = celestra_seeded_db
    assert db.execute(text("SELECT DISTINCT vertical FROM companies")).scalars().all() == [
        "FINANCE"
    ]
    shares = dict(db.execute(text(
        "SELECT status, count(*)::float / sum(count(*)) OVER () FROM users"
        " WHERE role = 'REGULAR_USER' GROUP BY status"
    )).all())
    assert shares["SUSPENDED"] > 0.35  # about half, where the spec has a few per cent
    assert shares.get("DORMANT", 0) > 0
    # The stories followed: a user who is not ACTIVE holds no live session (realism S02) ...
    live = db.execute(text(
        "SELECT count(*) FROM user_sessions s JOIN users u ON u.id = s.user_id"
        " WHERE u.status <> 'ACTIVE' AND (s.expires_at > now() OR s.created_at > u.updated_at)"
    )).scalar()
    assert live == 0
    # ... and the ACTIVE ones still have theirs.
    assert db.execute(text(
        "SELECT count(*) FROM user_sessions WHERE expires_at > now()"
    )).scalar() > 0


def test_factories_write_the_applications_labels(celestra_session):
    user = UserFactory(status="DORMANT")
    assert user.status == "DORMANT"
    stored = celestra_session.execute(
        text("SELECT status::text FROM users WHERE id = :id"), {"id": user.id}
    ).scalar()
    assert stored == "DORMANT"
    many = UserFactory.bulk_create(3, company=user.company, status="DORMANT")
    statuses = celestra_session.execute(
        text("SELECT status::text FROM users WHERE id = ANY(:ids)"), {"ids": list(many.ids)}
    ).scalars().all()
    assert statuses == ["DORMANT"] * 3
    assert UserFactory().status is UserStatus.ACTIVE  # the factory's own default
    with pytest.raises(FactoryArgumentError, match="not a label"):
        UserFactory(status="HIBERNATING")
"""


def test_rules_reshape_our_columns_before_the_stories(
    celestra_pytester: pytest.Pytester, run_inner: Callable[..., pytest.RunResult]
) -> None:
    celestra_pytester.makeconftest(CONFTEST)
    celestra_pytester.makepyfile(TESTS)
    run_inner("-p", "no:randomly").assert_outcomes(passed=2)


def test_rules_on_users_and_companies_columns_are_applied_each_in_its_turn():
    """A user's name is reshaped before its email is made of it; a rule on a column the
    generator does not plan (a company's description) applies as its recipe makes the row.
    Both were silently dropped once."""
    from collections import Counter

    rules = SchemaRules()
    rules.column("users", "name", values={"Sam Same": 1})
    rules.column("users", "status", values={"SUSPENDED": 1})
    rules.column("companies", "description", values={"One description": 1})
    found: Counter[tuple[str, str]] = Counter()
    anchor = anchor_for(date(2025, 6, 1))
    for table, columns, rows in extended_rows(Volume.parse("small"), 1, anchor, rules):
        for column in {"users": ("name", "status"), "companies": ("description",)}.get(table, ()):
            found.update((column, row[columns.index(column)]) for row in rows)
        if table == "users":
            emails = [row[columns.index("email")].split("@")[0] for row in rows]
            local_parts = {email.rstrip("0123456789") for email in emails}
            assert local_parts <= {"ssame", "sam.same", "sam_same"}
    assert found == Counter(
        {
            ("name", "Sam Same"): 20,
            ("status", "SUSPENDED"): 20,
            ("description", "One description"): 5,
        }
    )


def test_the_stories_follow_a_rule_on_the_status_of_agents():
    """An agent's status is reshaped as the generator makes it: nothing is linked to a
    DISABLED agent after it was disabled, and its audit history ends in the status the
    rule gave (with the status reshaped after the rows, 15 of 40 links and 15 of 18
    histories said otherwise)."""
    rules = SchemaRules()
    rules.column("agents", "status", values={"DISABLED": 1})
    tables = _tables(rules, "medium")
    agents = {agent["id"]: agent for agent in tables["agents"]}
    assert {agent["status"] for agent in agents.values()} == {"DISABLED"}
    for link in tables["agent_knowledge_bases"]:
        assert link["created_at"] <= agents[link["agent_id"]]["updated_at"]
    last = _last_audited(tables, "agents", "status")
    assert last
    assert all(agents[agent]["status"] == status for agent, status in last.items())


def test_the_stories_follow_a_rule_on_a_column_the_plan_leaves_to_the_recipe():
    """A company's name and description are its recipe's, not its plan's: a rule on them is
    applied as the recipe makes the row, so its users' email domains follow the new name and
    the audit history of its description ends in the value the rule gave (applied to the
    finished rows, neither did)."""
    from pytest_celestra.rows.providers import company_domain

    def renamed(row, rng):
        return f"Zeta {row['vertical'].title()} {rng.randrange(10**6)}"

    rules = SchemaRules()
    rules.column("companies", "name", derive=renamed)
    rules.column("companies", "description", derive=lambda row, rng: f"About {row['name']}")
    rules.enum_weights("notification_status", {"BOUNCED": 0.3})  # a value the step gives
    tables = _tables(rules, "medium")
    companies = {company["id"]: company for company in tables["companies"]}
    for company in companies.values():
        assert company["name"].startswith(f"Zeta {company['vertical'].title()} ")
        assert company["description"] == f"About {company['name']}"
    for user in tables["users"]:
        if user["company_id"] is not None:
            domain = company_domain(companies[user["company_id"]]["name"])
            assert user["email"].endswith(f"@{domain}")
    last = _last_audited(tables, "companies", "description")
    assert last
    assert all(companies[company]["description"] == value for company, value in last.items())
    statuses = [notification["status"] for notification in tables["notifications"]]
    assert 0.2 < statuses.count("BOUNCED") / len(statuses) < 0.4


def _tables(rules: SchemaRules, volume: str) -> dict[str, list[dict]]:
    """Every row the scenario of `volume` (seed 1) extended by `rules` makes, by table."""
    tables: dict[str, list[dict]] = {}
    anchor = anchor_for(date(2025, 6, 1))
    for table, columns, rows in extended_rows(Volume.parse(volume), 1, anchor, rules):
        tables.setdefault(table, []).extend(dict(zip(columns, row, strict=True)) for row in rows)
    return tables


def _last_audited(tables: dict[str, list[dict]], table: str, column: str) -> dict:
    """Row id -> the value of `column` its audit history ends in."""
    logs = {log["id"]: log for log in tables["audit_logs"]}
    last: dict = {}
    for change in sorted(
        tables["audit_change_logs"], key=lambda c: logs[c["audit_log_id"]]["created_at"]
    ):
        log = logs[change["audit_log_id"]]
        if log["table_name"] == table and change["column_name"] == column:
            last[log["record_id"]] = change["new_value"]
    return last


def test_a_rule_on_a_foreign_key_of_ours_reshapes_the_rows_made():
    """A foreign key is its parent's, so the recipe applies a rule on it to the row it made
    (it raised KeyError when the rules first went into the recipes)."""
    rules = SchemaRules()
    rules.column("notifications", "company_id", derive=lambda row, rng: None)
    tables = _tables(rules, "small")
    assert tables["notifications"]
    assert {notification["company_id"] for notification in tables["notifications"]} == {None}


@pytest.mark.parametrize("table", list(loader.COLUMNS))
def test_rules_that_keep_every_value_of_a_table_change_nothing(table):
    """A rule on each column of `table` that keeps the value it is given: the scenario is
    the one without rules, row for row (each column's value reaches its rule, enums as
    labels and back, a foreign key included)."""
    rules = SchemaRules()
    for column in loader.COLUMNS[table]:
        rules.column(table, column, derive=lambda row, rng, column=column: row[column])
    assert _tables(rules, "small") == _tables(SchemaRules(), "small")
