"""The two data paths cannot drift apart: rows the factories build and rows the bulk
scenario generates fill the same columns, from the same weighted domains, with strings of
the same shapes and vocabularies, and obey the same cross-row rules (email domains,
notification companies, knowledge source names per type, change columns per table).

Roles and statuses of users, companies, agents and knowledge bases are the one place the
paths differ on purpose: a factory's default is the happy path (the weights' favourite)
and its traits give every other value of the domain, while the bulk path draws from the
weights.

Every column of every table is covered: a new column fails ``test_every_column_is_checked``
until it gets a rule here.
"""

from __future__ import annotations

import base64
import enum
import ipaddress
import math
import re
import uuid
from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any

import factory.random
import pytest
from sqlalchemy import func, inspect, select

from pytest_celestra.errors import FactoryArgumentError
from pytest_celestra.rows import factories, loader, passwords, providers, story
from pytest_celestra.rows.providers import (
    AGENT_PROTOCOL_WEIGHTS,
    AGENT_STATUS_WEIGHTS,
    AUDIT_ACTIONS,
    AUDIT_EVENT_WEIGHTS,
    CHANGE_EVENT_TYPES,
    CHANGEABLE_COLUMNS,
    COMPANY_SIZE_WEIGHTS,
    COMPANY_STATUS_WEIGHTS,
    COMPANY_VERTICAL_WEIGHTS,
    INVITATION_STATUS_FOR_STATE,
    KNOWLEDGE_BASE_STATUS_WEIGHTS,
    KNOWLEDGE_TYPES,
    KNOWN_USER_FAILURE_WEIGHTS,
    LOCKOUT_THRESHOLD_WEIGHTS,
    NOTIFICATION_DELIVERY_WEIGHTS,
    NOTIFICATION_STATUS_WEIGHTS,
    NOTIFICATION_TYPE_WEIGHTS,
    NOTIFICATIONS,
    PLATFORM_DOMAIN,
    UNKNOWN_EMAIL_REASON,
    USER_ROLE_WEIGHTS,
    USER_STATUS_WEIGHTS,
    company_domain,
)
from pytest_celestra.rows.scenario import anchor_for, generate_scenario
from pytest_celestra.schema import spec
from pytest_celestra.schema import vocabulary as words
from pytest_celestra.schema.models import (
    MODELS_IN_FK_ORDER,
    AuditEventType,
    AuditLog,
    InvitationStatus,
    NotificationType,
    UserRole,
    UserSession,
    UserStatus,
)
from pytest_celestra.schema.volumes import Volume

FACTORY_ROWS = 200
TRAIT_ROWS = 8
TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")
BCRYPT = re.compile(r"^\$2b\$04\$[./A-Za-z0-9]{53}$")
LOCAL_PART = re.compile(r"^[a-z]+([._][a-z]+)?[0-9]*$")
TICKET = re.compile(rf"^Requested in ticket ({'|'.join(words.TICKET_KEYS)})-[0-9]{{3,4}}$")
MODELS = {model.__tablename__: model for model in MODELS_IN_FK_ORDER}

Row = dict[str, Any]


def plain(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


# --- the two samples --------------------------------------------------------------------


def factory_variants() -> dict[str, list[Any]]:
    """Built (unsaved) objects of every factory: defaults, every trait, and the cases the
    scenario has that no trait names (platform users, signed events)."""
    factory.random.reseed_random(7)
    built: dict[str, list[Any]] = {}
    for factory_class in factories.ALL_FACTORIES:
        objects = factory_class.build_batch(FACTORY_ROWS)
        for trait in factories.traits_of(factory_class):
            objects += factory_class.build_batch(TRAIT_ROWS, **{trait: True})
        built[factory_class._meta.model.__tablename__] = objects
    platform_user = factories.UserFactory.build(super_admin=True)
    built["notifications"] += factories.NotificationFactory.build_batch(
        TRAIT_ROWS, user=platform_user
    )
    built["audit_logs"] += factories.AuditLogFactory.build_batch(
        TRAIT_ROWS, event_type=AuditEventType.DATA_EXPORT
    )
    built["audit_logs"] += factories.AuditLogFactory.build_batch(
        TRAIT_ROWS, event_type=AuditEventType.DATA_EXPORT, user=platform_user
    )
    return built


def as_row(obj: Any) -> Row:
    """The column values of a built object; a foreign key counts as set when its parent
    object is (build() leaves the id columns to the database's flush)."""
    row = {column.name: plain(getattr(obj, column.key)) for column in obj.__table__.columns}
    for relationship in inspect(type(obj)).relationships:
        parent = getattr(obj, relationship.key)
        if relationship.direction.name == "MANYTOONE" and parent is not None:
            for column in relationship.local_columns:
                row[column.name] = parent.id
    return row


@pytest.fixture(scope="module")
def factory_sample() -> dict[str, tuple[list[Row], list[Any]]]:
    return {table: ([as_row(o) for o in objs], objs) for table, objs in factory_variants().items()}


@pytest.fixture(scope="module")
def bulk_sample() -> dict[str, list[Row]]:
    tables: dict[str, list[Row]] = {}
    for table, rows in generate_scenario("x3", seed=99, anchor=anchor_for(date(2025, 6, 1))):
        columns = loader.COLUMNS[table]
        tables.setdefault(table, []).extend(dict(zip(columns, row, strict=True)) for row in rows)
    return tables


def both(factory_sample, bulk_sample, table: str) -> dict[str, list[Row]]:
    return {"factories": factory_sample[table][0], "bulk": bulk_sample[table]}


# --- which columns are filled ------------------------------------------------------------

#: Columns one path fills and the other does not, on purpose.
ONE_PATH_ONLY = {
    # The scenario groups the audit logs of one action; a factory makes one log per call
    # (pass group_id= to group several).
    ("audit_logs", "group_id"): "bulk",
}


def filled(rows: list[Row]) -> tuple[set[str], set[str]]:
    """(columns set in some row, columns set in every row)."""
    some = {c for c in rows[0] if any(r[c] is not None for r in rows)}
    every = {c for c in rows[0] if all(r[c] is not None for r in rows)}
    return some, every


@pytest.mark.parametrize("table", loader.COLUMNS)
def test_both_paths_fill_the_same_columns(factory_sample, bulk_sample, table):
    f_some, f_every = filled(factory_sample[table][0])
    b_some, b_every = filled(bulk_sample[table])
    only_bulk = {c for (t, c), path in ONE_PATH_ONLY.items() if t == table and path == "bulk"}
    assert f_some | only_bulk == b_some, "columns set in some row differ"
    assert f_every == b_every | {c for c in only_bulk if c in f_every}, (
        "columns set in every row differ"
    )


# --- enum columns: the same weighted domains ----------------------------------------------

ROLE_DOMAIN = {r.value for r in USER_ROLE_WEIGHTS} | {UserRole.SUPER_ADMIN.value}
EVENT_DOMAIN = (
    {e.value for e in AUDIT_EVENT_WEIGHTS}
    | {e.value for events in AUDIT_ACTIONS.values() for e in events}
    | {e.value for e in CHANGE_EVENT_TYPES}
)
ENUM_DOMAINS: dict[tuple[str, str], set[str]] = {
    ("companies", "size"): {v.value for v in COMPANY_SIZE_WEIGHTS},
    ("companies", "vertical"): {v.value for v in COMPANY_VERTICAL_WEIGHTS},
    ("companies", "status"): {v.value for v in COMPANY_STATUS_WEIGHTS},
    ("users", "role"): ROLE_DOMAIN,
    ("users", "status"): {v.value for v in USER_STATUS_WEIGHTS},
    ("agents", "status"): {v.value for v in AGENT_STATUS_WEIGHTS},
    ("knowledge_bases", "status"): {v.value for v in KNOWLEDGE_BASE_STATUS_WEIGHTS},
    ("audit_logs", "event_type"): EVENT_DOMAIN,
    ("invitations", "status"): {
        s.value for statuses in INVITATION_STATUS_FOR_STATE.values() for s in statuses
    },
    ("notifications", "notification_type"): {v.value for v in NOTIFICATION_TYPE_WEIGHTS},
    ("notifications", "priority"): {p.value for entry in NOTIFICATIONS.values() for p in entry[2]},
    ("notifications", "status"): {v.value for v in NOTIFICATION_STATUS_WEIGHTS},
    ("notifications", "delivery_method"): {v.value for v in NOTIFICATION_DELIVERY_WEIGHTS},
}
#: Columns the bulk path draws from one weights constant: value shares must match it.
WEIGHTED = {
    ("companies", "size"): COMPANY_SIZE_WEIGHTS,
    ("users", "status"): USER_STATUS_WEIGHTS,
    ("agents", "status"): AGENT_STATUS_WEIGHTS,
    ("knowledge_bases", "status"): KNOWLEDGE_BASE_STATUS_WEIGHTS,
    ("notifications", "status"): NOTIFICATION_STATUS_WEIGHTS,
    ("notifications", "delivery_method"): NOTIFICATION_DELIVERY_WEIGHTS,
}
#: Columns whose factory default is the happy path: the favourite of the weights the bulk
#: path draws from, every other value of the domain coming from a trait.
HAPPY_PATH = {
    (factories.CompanyFactory, "status"): COMPANY_STATUS_WEIGHTS,
    (factories.UserFactory, "role"): USER_ROLE_WEIGHTS,
    (factories.UserFactory, "status"): USER_STATUS_WEIGHTS,
    (factories.AgentFactory, "status"): AGENT_STATUS_WEIGHTS,
    (factories.KnowledgeBaseFactory, "status"): KNOWLEDGE_BASE_STATUS_WEIGHTS,
}


@pytest.mark.parametrize(("table", "column"), ENUM_DOMAINS)
def test_enum_values_come_from_the_same_domain(factory_sample, bulk_sample, table, column):
    for path, rows in both(factory_sample, bulk_sample, table).items():
        values = {r[column] for r in rows}
        assert values <= ENUM_DOMAINS[table, column], f"{path}: {values}"
        assert len(values) >= 2, f"{path} uses only {values}"


def favourite_of(weights: dict[Any, int]) -> Any:
    """The most common value of ``weights`` (and the only one: no tie)."""
    best = max(weights.values())
    (favourite,) = [value for value, weight in weights.items() if weight == best]
    return favourite


@pytest.mark.parametrize(("table", "column"), WEIGHTED)
def test_enum_shares_follow_the_shared_weights(factory_sample, bulk_sample, table, column):
    weights = WEIGHTED[table, column]
    favourite = favourite_of(weights)
    expected = weights[favourite] / sum(weights.values())
    samples = {"bulk": bulk_sample[table]}
    if not any(f._meta.model.__tablename__ == table and c == column for f, c in HAPPY_PATH):
        # Factory objects made with their defaults only: traits pick values on purpose.
        samples["factories"] = factory_sample[table][0][:FACTORY_ROWS]
    for path, rows in samples.items():
        share = sum(r[column] == favourite.value for r in rows) / len(rows)
        # Four standard errors, plus a little for the scenario's forced cases (admins ...).
        tolerance = 4 * math.sqrt(expected * (1 - expected) / len(rows)) + 0.05
        assert abs(share - expected) < tolerance, f"{path}: {favourite.value} {share:.2f}"


HAPPY_PATH_IDS = [f"{f.__name__}-{column}" for f, column in HAPPY_PATH]


@pytest.mark.parametrize(("factory_class", "column"), HAPPY_PATH, ids=HAPPY_PATH_IDS)
def test_factory_default_is_the_bulk_favourite(factory_sample, bulk_sample, factory_class, column):
    weights = HAPPY_PATH[factory_class, column]
    table = factory_class._meta.model.__tablename__
    favourite = favourite_of(weights).value
    assert favourite in ENUM_DOMAINS[table, column]
    defaults = {r[column] for r in factory_sample[table][0][:FACTORY_ROWS]}
    assert defaults == {favourite}, f"{table}.{column} defaults: {defaults}"
    # ... and the bulk path's most common value, drawn from those weights.
    shares = Counter(r[column] for r in bulk_sample[table])
    assert shares.most_common(1)[0][0] == favourite, shares


@pytest.mark.parametrize(("factory_class", "column"), HAPPY_PATH, ids=HAPPY_PATH_IDS)
def test_traits_give_the_rest_of_the_bulk_domain(factory_class, column):
    table = factory_class._meta.model.__tablename__
    domain = ENUM_DOMAINS[table, column]
    default = plain(getattr(factory_class.build(), column))
    by_trait = {}
    for trait in factories.traits_of(factory_class):
        value = plain(getattr(factory_class.build(**{trait: True}), column))
        assert value in domain, f"{factory_class.__name__}({trait}=True).{column} = {value}"
        if value != default:
            by_trait[value] = trait
    # Every value the bulk path can write, a test can ask a factory for by name.
    assert {default, *by_trait} == domain, f"no trait gives {domain - {default, *by_trait}}"


# --- strings: shapes and vocabularies -------------------------------------------------------

SUFFIXES = {s for suffixes in words.VERTICAL_SUFFIXES.values() for s in suffixes}
OFFERINGS = {o for offerings in words.VERTICAL_OFFERINGS.values() for o in offerings}
AGENT_NAMES = {f"{f} {k}" for f in words.AGENT_FUNCTIONS for k in words.AGENT_KINDS}
KB_NAMES = {f"{d} {c}" for d in words.DEPARTMENTS for c in words.COLLECTIONS}
DESCRIPTIONS = (
    {d for pool in words.AUDIT_DESCRIPTIONS.values() for d in pool}
    | set(words.CHANGE_DESCRIPTIONS.values())
    | {words.ROLE_CHANGE_DESCRIPTION, words.UNKNOWN_EMAIL_DESCRIPTION}
)
LOCKOUT_REASONS = {r for pool in words.LOCKOUT_REASONS.values() for r in pool}
SOURCE_NAMES = {
    "PDF document": r"^[a-z]+/[a-z0-9-]+\.pdf$",
    "Web page": r"^https://[a-z]+\.[a-z0-9.]+/[a-z]+/[a-z0-9-]+$",
    "Confluence space": r"^[A-Z]+ space$",
    "Git repository": r"^github\.com/[a-z0-9]+/[a-z0-9-]+$",
    "Google Drive folder": r"^Shared drives/[A-Za-z ]+/[A-Za-z ]+$",
    "Notion workspace": r"^[A-Za-z ]+ wiki$",
    "SharePoint site": r"^sites/[A-Za-z]+/Shared Documents$",
    "Jira project": r"^[A-Z]+ project$",
    "Slack channel": r"^#[a-z-]+$",
    "Zendesk help center": r"^[a-z0-9]+\.zendesk\.com/hc/en-us$",
    "Markdown file": r"^[a-z-]+/docs/[a-z0-9-]+\.md$",
    "CSV dataset": r"^exports/[a-z0-9-]+\.csv$",
}


def is_company_name(name: str) -> bool:
    words_ = name.split()
    if "&" in words_:
        return len(words_) == 3 and words_[0] in providers.LAST_NAMES
    if words_[-1] in words.LEGAL_SUFFIXES:
        words_ = words_[:-1]
    if words_[-1].isdigit():  # the scenario's last resort for a taken domain
        words_ = words_[:-1]
    return words_[-1] in SUFFIXES


def is_company_description(text: str) -> bool:
    offering, _, rest = text.partition(" for ")
    return offering in OFFERINGS and any(rest.startswith(a + ".") for a in words.AUDIENCES)


def is_person_name(name: str) -> bool:
    first, _, last = name.partition(" ")
    return first in providers.FIRST_NAMES and last in providers.LAST_NAMES


def is_ip(value: str) -> bool:
    return ipaddress.ip_address(value) is not None


def is_signature(value: str) -> bool:
    return len(base64.b64decode(value, validate=True)) == 64


def is_reason(value: str) -> bool:
    return value in words.SIGNED_REASONS or bool(TICKET.match(value))


def any_uuid(value: Any) -> bool:
    return isinstance(value, uuid.UUID)


def any_time(value: Any) -> bool:
    return isinstance(value, datetime) and value.tzinfo is not None


#: (table, column) -> predicate on a non-NULL value. Ids and times are checked by type here
#: and for their meaning by the realism and factory tests.
VALUE_RULES: dict[tuple[str, str], Any] = {
    ("companies", "name"): is_company_name,
    ("companies", "description"): is_company_description,
    ("knowledge_types", "name"): lambda v: v in KNOWLEDGE_TYPES,
    ("knowledge_types", "description"): lambda v: v in {d for d, _ in KNOWLEDGE_TYPES.values()},
    ("users", "email"): lambda v: bool(LOCAL_PART.match(v.split("@")[0])) and v == v.lower(),
    ("users", "name"): is_person_name,
    ("users", "password_hash"): lambda v: bool(BCRYPT.match(v)),
    ("agents", "name"): lambda v: v in AGENT_NAMES,
    ("agents", "description"): lambda v: v.split(" for ")[0].startswith(words.AGENT_VERBS),
    ("agents", "agent_protocol"): lambda v: v in AGENT_PROTOCOL_WEIGHTS,
    ("knowledge_bases", "name"): lambda v: v in KB_NAMES,
    ("knowledge_bases", "description"): lambda v: v.startswith("Curated ") and "re-indexed" in v,
    ("knowledge_sources", "name"): lambda v: bool(v),
    ("audit_logs", "event_description"): lambda v: v in DESCRIPTIONS,
    ("audit_logs", "ip_address"): is_ip,
    ("audit_logs", "digital_signature"): is_signature,
    ("audit_logs", "reason"): is_reason,
    ("audit_logs", "table_name"): lambda v: v in CHANGEABLE_COLUMNS,
    ("failed_logins", "ip_address"): is_ip,
    ("failed_logins", "failure_reason"): lambda v: (
        v in KNOWN_USER_FAILURE_WEIGHTS or v == UNKNOWN_EMAIL_REASON
    ),
    ("invitations", "token"): lambda v: bool(TOKEN.match(v)),
    ("invitations", "resend_count"): lambda v: 0 <= v <= 3,
    ("notifications", "title"): lambda v: v in {entry[0] for entry in NOTIFICATIONS.values()},
    ("notifications", "message"): lambda v: v in {m for e in NOTIFICATIONS.values() for m in e[1]},
    ("notifications", "action_url"): lambda v: v in {e[3] for e in NOTIFICATIONS.values()},
    ("password_history", "password_hash"): lambda v: bool(BCRYPT.match(v)),
    ("user_lockouts", "reason"): lambda v: v in LOCKOUT_REASONS,
    ("user_lockouts", "failed_attempts"): lambda v: v in LOCKOUT_THRESHOLD_WEIGHTS,
    ("user_sessions", "session_token"): lambda v: bool(TOKEN.match(v)),
    ("user_sessions", "ip_address"): is_ip,
    ("user_sessions", "user_agent"): lambda v: v in words.USER_AGENTS,
    ("audit_change_logs", "column_name"): lambda v: any(
        v in columns for columns in CHANGEABLE_COLUMNS.values()
    ),
    ("audit_change_logs", "old_value"): lambda v: bool(v),
    ("audit_change_logs", "new_value"): lambda v: bool(v),
}
for (_table, _column), _domain in ENUM_DOMAINS.items():
    VALUE_RULES[_table, _column] = _domain.__contains__
for _table, _types in loader.COPY_TYPES.items():
    for _column, _kind in _types.items():
        if _kind == "uuid":
            VALUE_RULES[_table, _column] = any_uuid
        elif _kind == "timestamptz":
            VALUE_RULES[_table, _column] = any_time


def test_every_column_is_checked():
    every = {(table, column) for table, columns in loader.COLUMNS.items() for column in columns}
    assert every - set(VALUE_RULES) == set()


@pytest.mark.parametrize("table", loader.COLUMNS)
def test_values_have_the_same_shapes_and_vocabularies(factory_sample, bulk_sample, table):
    for path, rows in both(factory_sample, bulk_sample, table).items():
        for column in loader.COLUMNS[table]:
            rule = VALUE_RULES[table, column]
            bad = [r[column] for r in rows if r[column] is not None and not rule(r[column])]
            assert not bad, f"{path}: {table}.{column} values off the shared domain: {bad[:5]}"


# --- rules across rows --------------------------------------------------------------------


def by_id(rows: list[Row]) -> dict[Any, Row]:
    return {r["id"]: r for r in rows}


def test_emails_are_on_the_company_domain(factory_sample, bulk_sample):
    for user in factory_sample["users"][1]:
        domain = PLATFORM_DOMAIN if user.company is None else company_domain(user.company.name)
        assert user.email.endswith("@" + domain)
    companies = by_id(bulk_sample["companies"])
    for user in bulk_sample["users"]:
        company = companies.get(user["company_id"])
        domain = PLATFORM_DOMAIN if company is None else company_domain(company["name"])
        assert user["email"].endswith("@" + domain)


def test_default_password_in_both_paths(factory_sample, bulk_sample):
    for digest in (
        factory_sample["users"][0][0]["password_hash"],
        bulk_sample["users"][0]["password_hash"],
    ):
        assert passwords.verify(passwords.DEFAULT_PASSWORD, digest)


def test_knowledge_source_names_fit_their_type(factory_sample, bulk_sample):
    pairs = [(s.knowledge_type.name, s.name) for s in factory_sample["knowledge_sources"][1]]
    types = by_id(bulk_sample["knowledge_types"])
    pairs += [
        (types[s["knowledge_type_id"]]["name"], s["name"]) for s in bulk_sample["knowledge_sources"]
    ]
    for type_name, name in pairs:
        assert re.match(SOURCE_NAMES[type_name], name), (type_name, name)
    assert set(SOURCE_NAMES) == set(KNOWLEDGE_TYPES)


def test_notifications_carry_their_type_and_their_users_company(factory_sample, bulk_sample):
    rows = [(n, n.user.company) for n in factory_sample["notifications"][1]]
    users = by_id(bulk_sample["users"])
    for obj, company in rows:
        title, messages, priorities, url = NOTIFICATIONS[obj.notification_type]
        assert (obj.title, obj.action_url) == (title, url)
        assert obj.message in messages
        assert obj.priority in priorities
        assert obj.company is company
    for row in bulk_sample["notifications"]:
        kind = next(t for t in NOTIFICATIONS if t.value == row["notification_type"])
        assert (row["title"], row["action_url"]) == (NOTIFICATIONS[kind][0], NOTIFICATIONS[kind][3])
        assert row["company_id"] == users[row["user_id"]]["company_id"]


def test_failed_logins_of_unknown_emails(factory_sample, bulk_sample):
    for path, rows in both(factory_sample, bulk_sample, "failed_logins").items():
        for row in rows:
            unknown = row["failure_reason"] == UNKNOWN_EMAIL_REASON
            assert unknown == (row["user_id"] is None), path


def test_signed_events_and_row_changes(factory_sample, bulk_sample):
    from pytest_celestra.rows.providers import SIGNED_EVENT_TYPES

    signed_types = {e.value for e in SIGNED_EVENT_TYPES}
    changing = {e.value for e in CHANGE_EVENT_TYPES}
    for path, rows in both(factory_sample, bulk_sample, "audit_logs").items():
        for row in rows:
            signed = row["signed_by"] is not None
            assert signed == (row["digital_signature"] is not None) == (row["reason"] is not None)
            if signed:
                assert row["event_type"] in signed_types, path
            if row["table_name"] is not None:
                assert row["event_type"] in changing, path


def test_change_logs_name_a_column_of_their_audit_logs_table(factory_sample, bulk_sample):
    pairs = [
        (c.audit_log.table_name, c.column_name) for c in factory_sample["audit_change_logs"][1]
    ]
    logs = by_id(bulk_sample["audit_logs"])
    pairs += [
        (logs[c["audit_log_id"]]["table_name"], c["column_name"])
        for c in bulk_sample["audit_change_logs"]
    ]
    for table, column in pairs:
        assert column in CHANGEABLE_COLUMNS[table], (table, column)


def test_invitation_statuses_follow_the_same_states(factory_sample, bulk_sample):
    for path, rows in both(factory_sample, bulk_sample, "invitations").items():
        statuses = Counter(r["status"] for r in rows)
        assert set(statuses) == {s.value for s in InvitationStatus}, path


# --- one definition, both paths ---------------------------------------------------------


def bulk_tables(volume: str | Volume = "small") -> dict[str, list[Row]]:
    tables: dict[str, list[Row]] = {}
    for table, rows in generate_scenario(volume, seed=3, anchor=anchor_for(date(2025, 6, 1))):
        columns = loader.COLUMNS[table]
        tables.setdefault(table, []).extend(dict(zip(columns, row, strict=True)) for row in rows)
    return tables


def test_a_signer_rule_changed_in_the_spec_shows_in_both_paths(monkeypatch):
    """Every signed log signed by a super admin, by one edit of the spec's data."""
    monkeypatch.setattr(spec, "SIGNER_SUPER_ADMIN_SHARE", 1.0)
    factory.random.reseed_random(11)
    logs = factories.AuditLogFactory.build_batch(20, event_type=AuditEventType.DATA_EXPORT)
    assert {log.signer.role for log in logs} == {UserRole.SUPER_ADMIN}
    tables = bulk_tables()
    roles = {user["id"]: user["role"] for user in tables["users"]}
    signers = {roles[log["signed_by"]] for log in tables["audit_logs"] if log["signed_by"]}
    assert signers == {UserRole.SUPER_ADMIN.value}


def test_an_actor_rule_changed_in_the_spec_shows_in_both_paths(celestra_session, monkeypatch):
    """Every row change and data export done by a super admin, by one edit of the spec's
    data: the audit logs a notification's event brings too (story.super_admin_acts)."""
    monkeypatch.setattr(spec, "ACTOR_SUPER_ADMIN_SHARE", 1.0)
    factory.random.reseed_random(11)
    reported = []
    for trait in ("role_changed", "agent_status_changed"):
        user = factories.NotificationFactory(**{trait: True}).user
        reported += celestra_session.scalars(
            select(AuditLog).where(
                AuditLog.record_id.in_([user.id, *(a.id for a in user.company.agents)])
            )
        ).all()
    exporter = factories.NotificationFactory(data_export_ready=True).user
    assert len(reported) == 2
    assert {log.user.role for log in reported} | {exporter.role} == {UserRole.SUPER_ADMIN}
    tables = bulk_tables()
    roles = {user["id"]: user["role"] for user in tables["users"]}
    actors = {
        roles[log["user_id"]]
        for log in tables["audit_logs"]
        if log["table_name"] is not None or log["event_type"] == AuditEventType.DATA_EXPORT.value
    }
    assert actors == {UserRole.SUPER_ADMIN.value}


def test_the_margin_before_a_row_closed_is_one_rule_in_both_paths(monkeypatch):
    """Nothing changes a row in the last stretch (spec.ACTIVITY_MARGIN) before it closed,
    in the factories and in the scenario alike: a margin of a day shows in both."""
    margin = spec.DAY
    monkeypatch.setattr(spec, "ACTIVITY_MARGIN", margin)
    factory.random.reseed_random(11)
    for _ in range(20):
        agent = factories.AgentFactory.build(disabled=True)
        log = factories.AuditLogFactory.build(config_change=True, record=agent)
        assert (agent.updated_at - log.created_at).total_seconds() >= margin
    tables = bulk_tables()
    rows = {row["id"]: (table, row) for table in CHANGEABLE_COLUMNS for row in tables[table]}
    closed = 0
    for log in tables["audit_logs"]:
        if log["table_name"] is not None:
            table, row = rows[log["record_id"]]
            if story.is_closed(table, row["status"]):
                closed += 1
                assert (row["updated_at"] - log["created_at"]).total_seconds() >= margin
    assert closed


def test_a_first_column_rule_added_to_the_spec_shows_in_both_paths(monkeypatch):
    """A configuration update changes ``status`` first once the spec says so, with no
    other edit: the factories and the bulk path both read the one definition."""
    first = {**spec.FIRST_CHANGED_COLUMN, AuditEventType.CONFIGURATION_UPDATE: "status"}
    monkeypatch.setattr(spec, "FIRST_CHANGED_COLUMN", first)
    factory.random.reseed_random(11)
    changes = [
        factories.AuditChangeLogFactory.build(
            audit_log=factories.AuditLogFactory.build(config_change=True)
        )
        for _ in range(20)
    ]
    assert {change.column_name for change in changes} == {"status"}
    tables = bulk_tables()
    updates = {
        log["id"]
        for log in tables["audit_logs"]
        if log["event_type"] == AuditEventType.CONFIGURATION_UPDATE.value
    }
    firsts: dict[Any, str] = {}
    for change in tables["audit_change_logs"]:
        firsts.setdefault(change["audit_log_id"], change["column_name"])
    assert updates & set(firsts)
    assert {firsts[log] for log in updates & set(firsts)} == {"status"}


def test_the_event_free_notification_type_is_one_rule_in_both_paths(monkeypatch):
    """The factories' default notification type and the scenario's fallback (a drawn type
    whose event the scenario lacks) both come from story.EVENT_FREE_NOTIFICATION_TYPES."""
    maintenance = NotificationType.MAINTENANCE_SCHEDULED
    monkeypatch.setattr(story, "EVENT_FREE_NOTIFICATION_TYPES", (maintenance,))
    factory.random.reseed_random(11)
    built = factories.NotificationFactory.build_batch(20)
    assert {n.notification_type for n in built} == {maintenance}
    # No sessions, failed logins, lockouts, invitations, password changes or audit logs:
    # most drawn types (60 of the weights' 100) have no event and fall back.
    eventless = Volume.custom(
        "eventless",
        notifications=400,
        **dict.fromkeys(("user_sessions", "failed_logins", "user_lockouts", "invitations"), 0),
        **dict.fromkeys(("password_history", "audit_logs", "audit_change_logs"), 0),
    )
    types = Counter(n["notification_type"] for n in bulk_tables(eventless)["notifications"])
    assert types[maintenance.value] > 200, types
    assert types[NotificationType.FAILED_LOGIN_NOTIFICATION.value] == 0


def test_the_invitation_state_of_a_user_who_left_is_one_rule_in_both_paths():
    """A user who is not ACTIVE has no open invitation, and their invitations take the
    other states of the spec's state table (story.state_of_user): accepted, expired and
    cancelled alike, in the factories (not "expired" only) as in the scenario."""
    closed = {s.value for s in InvitationStatus} - {"SENT", "PENDING"}
    factory.random.reseed_random(11)
    user = factories.UserFactory.build(suspended=True)
    built = factories.InvitationFactory.build_batch(60, user=user)
    assert {i.status.value for i in built} == closed
    tables = bulk_tables("x2")
    left = {u["id"] for u in tables["users"] if u["status"] != "ACTIVE"}
    statuses = {i["status"] for i in tables["invitations"] if i["user_id"] in left}
    assert statuses == closed


def test_a_sign_out_ends_a_session_in_progress_in_both_paths(celestra_session):
    """A sign-out (SESSION_ENDED) ends a session in progress then (created at or before
    it, expiring at or after it), of one of the spec's session states whose session can
    hold that moment (story.states_holding over providers.session_held_window), with that
    state's times: in the factories (not a session of an hour at most that ends at the
    sign-out) as in the scenario. Live ones only for ACTIVE users."""
    factory.random.reseed_random(11)
    now = celestra_session.scalar(select(func.now()))
    users = [factories.UserFactory() for _ in range(30)]
    users += [factories.UserFactory(suspended=True) for _ in range(20)]
    logs = [
        factories.AuditLogFactory(user=user, event_type=AuditEventType.SESSION_ENDED)
        for user in users
    ]
    old = factories.UserFactory(created_at=now - timedelta(days=400))
    for days in (0.1, 2, 20, 100, 300):
        moment = now - timedelta(days=days)
        logs.append(
            factories.AuditLogFactory(
                user=old, event_type=AuditEventType.SESSION_ENDED, created_at=moment
            )
        )
    celestra_session.flush()
    ended = []
    for log in logs:
        sessions = celestra_session.scalars(
            select(UserSession).where(UserSession.user_id == log.user_id)
        ).all()
        holding = [s for s in sessions if s.created_at <= log.created_at <= s.expires_at]
        assert holding, (log.user.status, log.created_at)
        ended += holding
    lengths = [s.expires_at - s.created_at for s in ended]
    assert max(lengths) > timedelta(days=2)
    assert sum(length > timedelta(hours=1) for length in lengths) > len(lengths) / 2
    assert {s.expires_at > now for s in ended} == {True, False}
    assert all(s.expires_at < now for s in ended if s.user.status is not UserStatus.ACTIVE)
    tables = bulk_tables()
    of_user: dict[Any, list[Row]] = {}
    for row in tables["user_sessions"]:
        of_user.setdefault(row["user_id"], []).append(row)
    sign_outs = [
        log
        for log in tables["audit_logs"]
        if log["event_type"] == AuditEventType.SESSION_ENDED.value
    ]
    assert sign_outs
    for log in sign_outs:
        assert any(
            s["created_at"] <= log["created_at"] <= s["expires_at"] for s in of_user[log["user_id"]]
        )


def test_who_can_be_locked_out_is_one_rule_in_both_paths():
    """Only ACTIVE users are locked out (story.lockable): the scenario locks no one else,
    and the factory refuses a user who is not ACTIVE, naming the rule."""
    factory.random.reseed_random(11)
    assert {lock.user.status for lock in factories.UserLockoutFactory.build_batch(10)} == {
        UserStatus.ACTIVE
    }
    suspended = factories.UserFactory.build(suspended=True)
    with pytest.raises(FactoryArgumentError, match=r"SUSPENDED cannot be locked out.*lockable"):
        factories.UserLockoutFactory.build(user=suspended)
    tables = bulk_tables("x2")
    status = {u["id"]: u["status"] for u in tables["users"]}
    assert "SUSPENDED" in status.values()
    assert {status[lock["user_id"]] for lock in tables["user_lockouts"]} == {"ACTIVE"}


def test_the_scenario_locks_no_one_else_when_rules_leave_no_active_member():
    """story.lockable holds even when your rules suspend every company member: the
    scenario then locks out platform staff, not members who cannot sign in."""
    from pytest_celestra.schema.app_rules import SchemaRules

    rules = SchemaRules()
    rules.column(
        "users",
        "status",
        derive=lambda row, rng: row["status"] if row["company_id"] is None else "SUSPENDED",
    )
    tables: dict[str, list[Row]] = {}
    anchor = anchor_for(date(2025, 6, 1))
    for table, rows in generate_scenario("small", seed=3, anchor=anchor, rules=rules):
        columns = loader.COLUMNS[table]
        tables.setdefault(table, []).extend(dict(zip(columns, row, strict=True)) for row in rows)
    status = {u["id"]: u["status"] for u in tables["users"]}
    assert Counter(status.values())["SUSPENDED"] == len(status) - 1
    assert {status[lock["user_id"]] for lock in tables["user_lockouts"]} == {"ACTIVE"}


def test_the_lockout_reason_is_one_catalogue_in_both_paths(monkeypatch):
    """Both paths take a lockout's reason from vocabulary.LOCKOUT_REASONS by its state
    (providers.lockout_reason): one edit of the catalogue shows in both."""
    reasons = {state: (f"Reason of this test ({state})",) for state in words.LOCKOUT_REASONS}
    monkeypatch.setattr(words, "LOCKOUT_REASONS", reasons)
    factory.random.reseed_random(11)
    built = factories.UserLockoutFactory.build(long=True)
    assert built.reason == "Reason of this test (long)"
    made = {lock["reason"] for lock in bulk_tables()["user_lockouts"]}
    assert made == {reason for (reason,) in reasons.values()}
