"""The database the plugin creates has exactly the schema of the Celestra schema analysis.

Introspects the real database (information_schema / pg_catalog) behind ``celestra_session``
and compares it with the analysis as written down in ``realism_checks``; then shows that
each constraint the database enforces rejects a row that breaks it, naming the constraint.
"""

from __future__ import annotations

import uuid

import pytest
from realism_checks import (
    ENUM_COLUMNS,
    ENUM_TYPES,
    FOREIGN_KEYS,
    INET_COLUMN_NAMES,
    OPTIONAL_COLUMNS,
    PARTIALLY_LISTED_ENUMS,
    REQUIRED_COLUMNS,
    TABLES,
    TABLES_WITH_UPDATED_AT,
    TIME_COLUMN_NAMES,
    columns_of,
    uuid_columns_of,
)
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError


def rows(session, sql: str, **params):
    return list(session.execute(text(sql), params))


def columns(session) -> dict[tuple[str, str], tuple[str, str, str]]:
    """(table, column) -> (is_nullable, data_type, udt_name) of every column of the schema."""
    return {
        (t, c): (nullable, data_type, udt)
        for t, c, nullable, data_type, udt in rows(
            session,
            "SELECT table_name, column_name, is_nullable, data_type, udt_name"
            " FROM information_schema.columns WHERE table_schema = current_schema()",
        )
    }


def test_the_fifteen_tables(celestra_session):
    tables = rows(
        celestra_session,
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
    )
    assert sorted(t for (t,) in tables) == sorted(TABLES)


@pytest.mark.parametrize("table", TABLES)
def test_columns_and_nullability_follow_the_analysis(celestra_session, table):
    found = {
        c: nullable for (t, c), (nullable, _, _) in columns(celestra_session).items() if t == table
    }
    assert set(found) == columns_of(table)
    not_null = sorted(c for c, nullable in found.items() if nullable == "NO")
    assert not_null == sorted(["id", *REQUIRED_COLUMNS[table]])
    nullable = sorted(c for c, nullable in found.items() if nullable == "YES")
    assert nullable == sorted(OPTIONAL_COLUMNS[table])


def test_primary_key_is_id_everywhere(celestra_session):
    keys = rows(
        celestra_session,
        "SELECT con.conrelid::regclass::text, array_agg(a.attname::text)"
        " FROM pg_constraint con JOIN pg_attribute a"
        "   ON a.attrelid = con.conrelid AND a.attnum = ANY(con.conkey)"
        " WHERE con.contype = 'p' AND con.connamespace = current_schema()::regnamespace"
        " GROUP BY con.conrelid",
    )
    assert dict(keys) == {table: ["id"] for table in TABLES}


def test_column_types(celestra_session):
    wrong = []
    for (table, column), (_, data_type, udt) in sorted(columns(celestra_session).items()):
        if column in uuid_columns_of(table):
            expected = "uuid"
        elif column in TIME_COLUMN_NAMES:
            expected = "timestamp with time zone"
        elif column in INET_COLUMN_NAMES:
            expected = "inet"
        elif (table, column) in ENUM_COLUMNS:
            expected = ENUM_COLUMNS[table, column]
            data_type = udt if data_type == "USER-DEFINED" else data_type
        elif column in ("resend_count", "failed_attempts"):
            expected = "integer"
        else:
            expected = "text"
            data_type = "text" if data_type in ("text", "character varying") else data_type
        if data_type != expected:
            wrong.append(f"{table}.{column}: {data_type} (expected {expected})")
    assert not wrong, "\n".join(wrong)


def test_the_thirteen_enum_types(celestra_session):
    enums = dict(
        rows(
            celestra_session,
            "SELECT t.typname::text, array_agg(e.enumlabel::text ORDER BY e.enumsortorder)"
            " FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid"
            " WHERE t.typnamespace = current_schema()::regnamespace GROUP BY t.typname",
        )
    )
    assert sorted(enums) == sorted(ENUM_TYPES)
    for name, labels in ENUM_TYPES.items():
        if name in PARTIALLY_LISTED_ENUMS:
            assert set(labels) < set(enums[name]), name
        else:
            assert tuple(enums[name]) == labels, name


def test_the_seventeen_foreign_keys(celestra_session):
    keys = rows(
        celestra_session,
        "SELECT con.conrelid::regclass::text, a.attname::text,"
        " con.confrelid::regclass::text, fa.attname::text, cardinality(con.conkey)"
        " FROM pg_constraint con"
        " JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = con.conkey[1]"
        " JOIN pg_attribute fa ON fa.attrelid = con.confrelid AND fa.attnum = con.confkey[1]"
        " WHERE con.contype = 'f' AND con.connamespace = current_schema()::regnamespace",
    )
    assert sorted((t, c, p) for t, c, p, _, _ in keys) == sorted(FOREIGN_KEYS)
    assert {(ref, n) for _, _, _, ref, n in keys} == {("id", 1)}


# --- each enforced constraint rejects a bad row -----------------------------------------


@pytest.fixture
def graph(celestra_session) -> dict[str, uuid.UUID]:
    """One valid row in each of the 15 tables; ``graph[table]`` is that row's id."""
    ids = {table: uuid.uuid4() for table in TABLES}
    for statement in (
        "INSERT INTO companies (id, name, size, vertical, status)"
        " VALUES (:companies, 'Acme', 'SMALL', 'TECH', 'ACTIVE')",
        "INSERT INTO knowledge_types (id, name) VALUES (:knowledge_types, 'PDF')",
        "INSERT INTO users (id, company_id, role, email, name, password_hash, status)"
        " VALUES (:users, :companies, 'COMPANY_ADMIN', 'ada@acme.example', 'Ada', 'hash-1',"
        " 'ACTIVE')",
        "INSERT INTO agents (id, company_id, name, status)"
        " VALUES (:agents, :companies, 'Helper', 'ACTIVE')",
        "INSERT INTO knowledge_bases (id, company_id, name, status)"
        " VALUES (:knowledge_bases, :companies, 'Handbook', 'ACTIVE')",
        "INSERT INTO agent_knowledge_bases (id, agent_id, knowledge_base_id)"
        " VALUES (:agent_knowledge_bases, :agents, :knowledge_bases)",
        "INSERT INTO knowledge_sources (id, knowledge_base_id, knowledge_type_id, name)"
        " VALUES (:knowledge_sources, :knowledge_bases, :knowledge_types, 'handbook.pdf')",
        "INSERT INTO audit_logs (id, user_id, signed_by, event_type)"
        " VALUES (:audit_logs, :users, :users, 'OTHER')",
        "INSERT INTO failed_logins (id, user_id) VALUES (:failed_logins, :users)",
        "INSERT INTO invitations (id, user_id, token, status, sent_at, expires_at)"
        " VALUES (:invitations, :users, 'token-1', 'SENT', now(), now() + interval '7 days')",
        "INSERT INTO notifications (id, user_id, company_id, notification_type, title,"
        " message, priority, status, delivery_method) VALUES (:notifications, :users,"
        " :companies, 'SESSION_EXPIRY', 'Title', 'Message', 'LOW', 'PENDING', 'IN_APP')",
        "INSERT INTO password_history (id, user_id, password_hash)"
        " VALUES (:password_history, :users, 'hash-0')",
        "INSERT INTO user_lockouts (id, user_id, lockout_start, lockout_end, failed_attempts)"
        " VALUES (:user_lockouts, :users, now(), now() + interval '1 hour', 5)",
        "INSERT INTO user_sessions (id, user_id, session_token, expires_at)"
        " VALUES (:user_sessions, :users, 'session-1', now() + interval '1 day')",
        "INSERT INTO audit_change_logs (id, audit_log_id, column_name)"
        " VALUES (:audit_change_logs, :audit_logs, 'name')",
    ):
        celestra_session.execute(text(statement), ids)
    return ids


REJECTIONS = [
    pytest.param(
        "INSERT INTO users (company_id, role, email, name, password_hash, status) VALUES"
        " (:companies, 'REGULAR_USER', 'ADA@Acme.Example', 'Ada 2', 'h', 'ACTIVE')",
        "uq_users_email_lower",
        id="email-unique-case-insensitive",
    ),
    pytest.param(
        "INSERT INTO user_sessions (user_id, session_token, expires_at)"
        " VALUES (:users, 'session-1', now() + interval '1 day')",
        "uq_user_sessions_session_token",
        id="session-token-unique",
    ),
    pytest.param(
        "INSERT INTO invitations (user_id, token, status) VALUES (:users, 'token-1', 'PENDING')",
        "uq_invitations_token",
        id="invitation-token-unique",
    ),
    pytest.param(
        "INSERT INTO agent_knowledge_bases (agent_id, knowledge_base_id)"
        " VALUES (:agents, :knowledge_bases)",
        "uq_agent_knowledge_bases_agent_id_knowledge_base_id",
        id="agent-knowledge-base-pair-unique",
    ),
    pytest.param(
        "INSERT INTO password_history (user_id, password_hash) VALUES (:users, 'hash-0')",
        "uq_password_history_user_id_password_hash",
        id="password-history-unique-per-user",
    ),
    pytest.param(
        "INSERT INTO knowledge_types (name) VALUES ('PDF')",
        "uq_knowledge_types_name",
        id="knowledge-type-name-unique",
    ),
    *(
        pytest.param(
            f"UPDATE {table} SET created_at = updated_at + interval '1 second' WHERE id = :{table}",
            f"ck_{table}_created_before_updated",
            id=f"{table}-created-before-updated",
        )
        for table in TABLES_WITH_UPDATED_AT
    ),
    pytest.param(
        "UPDATE user_sessions SET expires_at = created_at WHERE id = :user_sessions",
        "ck_user_sessions_expires_after_created",
        id="session-expires-after-created",
    ),
    pytest.param(
        "UPDATE invitations SET expires_at = sent_at WHERE id = :invitations",
        "ck_invitations_expires_after_sent",
        id="invitation-expires-after-sent",
    ),
    pytest.param(
        "UPDATE user_lockouts SET lockout_end = lockout_start WHERE id = :user_lockouts",
        "ck_user_lockouts_ends_after_start",
        id="lockout-ends-after-start",
    ),
    pytest.param(
        "UPDATE invitations SET resend_count = -1 WHERE id = :invitations",
        "ck_invitations_resend_count_not_negative",
        id="resend-count-not-negative",
    ),
    pytest.param(
        "UPDATE user_lockouts SET failed_attempts = 0 WHERE id = :user_lockouts",
        "ck_user_lockouts_failed_attempts_positive",
        id="failed-attempts-at-least-one",
    ),
    pytest.param(
        "UPDATE users SET role = 'SUPER_ADMIN' WHERE id = :users",
        "ck_users_super_admin_has_no_company",
        id="super-admin-with-company",
    ),
    pytest.param(
        "UPDATE users SET company_id = NULL WHERE id = :users",
        "ck_users_super_admin_has_no_company",
        id="company-user-without-company",
    ),
    *(
        pytest.param(
            f"UPDATE {table} SET {column} = gen_random_uuid() WHERE id = :{table}",
            f"fk_{table}_{column}_{parent}",
            id=f"fk-{table}.{column}",
        )
        for table, column, parent in FOREIGN_KEYS
    ),
]


@pytest.mark.parametrize(("statement", "constraint"), REJECTIONS)
def test_constraint_rejects_bad_row(celestra_session, graph, statement, constraint):
    with pytest.raises(IntegrityError) as caught, celestra_session.begin_nested():
        celestra_session.execute(text(statement), graph)
    assert caught.value.orig.diag.constraint_name == constraint, str(caught.value)
    assert constraint in str(caught.value)


def test_the_schema_ddl_is_the_same_in_every_process() -> None:
    """SQLAlchemy emits a table's indexes in set order, which changed from one process to
    the next, and with it the SQL script of `celestra-seed --sql`."""
    import json
    import os
    import subprocess
    import sys

    from pytest_celestra.schema.catalog import builtin_ddl

    show = "import json; from pytest_celestra.schema.catalog import builtin_ddl as d; "
    show += "print(json.dumps(d()))"
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", show], capture_output=True, text=True, check=True, env=env
        )
        assert json.loads(out.stdout) == builtin_ddl()
