"""What the Celestra schema analysis asks of the schema and of seeded data, as named checks.

The first half states the schema analysis (tables, columns, enum types, foreign keys) as
data, independently of ``pytest_celestra.schema.models``, so the schema tests compare the real
database with the spec rather than with the models.

The second half is the realism rules: each ``Check`` runs SQL against the rows a scenario
stored and reports every violation with the offending rows, e.g.::

    R04a a row is never older than a row it references: 3 offending row(s) where
    user_sessions.created_at < users.created_at (FK user_sessions.user_id)
      {'id': UUID('...'), 'row_time': datetime(...), 'parent_created_at': datetime(...)}

Rule ids R01..R18 follow the test plan; ``X..`` rules are extra consistency checks that the
plan does not list but realistic data obviously satisfies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from pytest_celestra.rows import story
from pytest_celestra.rows.providers import company_domain

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy import Row
    from sqlalchemy.orm import Session

    from pytest_celestra.schema.volumes import Volume

# --- the schema analysis, as data -------------------------------------------------------

TABLES: tuple[str, ...] = (
    "companies",
    "knowledge_types",
    "users",
    "agents",
    "knowledge_bases",
    "agent_knowledge_bases",
    "knowledge_sources",
    "audit_logs",
    "failed_logins",
    "invitations",
    "notifications",
    "password_history",
    "user_lockouts",
    "user_sessions",
    "audit_change_logs",
)

#: "Required Fields (NOT NULL)" of the analysis; ``id`` is NOT NULL too (primary key).
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "companies": ("name", "size", "vertical", "status"),
    "knowledge_types": ("name",),
    "agents": ("company_id", "name", "status"),
    "knowledge_bases": ("company_id", "name", "status"),
    "users": ("role", "email", "name", "password_hash", "status"),
    "agent_knowledge_bases": ("agent_id", "knowledge_base_id"),
    "knowledge_sources": ("knowledge_base_id", "knowledge_type_id", "name"),
    "audit_logs": ("event_type",),
    "invitations": ("user_id", "token", "status", "resend_count"),
    "notifications": (
        "user_id",
        "notification_type",
        "title",
        "message",
        "priority",
        "status",
        "delivery_method",
    ),
    "password_history": ("user_id", "password_hash"),
    "user_lockouts": ("user_id", "failed_attempts"),
    "user_sessions": ("user_id", "session_token", "expires_at"),
    "audit_change_logs": ("audit_log_id", "column_name"),
    # failed_logins has no required field besides its id.
    "failed_logins": (),
}

#: "Optional Fields (NULL allowed)" of the analysis.
OPTIONAL_COLUMNS: dict[str, tuple[str, ...]] = {
    "companies": ("description", "created_at", "updated_at"),
    "knowledge_types": ("description", "created_at", "updated_at"),
    "agents": ("description", "agent_protocol", "created_at", "updated_at"),
    "knowledge_bases": ("description", "created_at", "updated_at"),
    "users": ("company_id", "created_at", "updated_at"),
    "agent_knowledge_bases": ("created_at",),
    "knowledge_sources": ("created_at", "updated_at"),
    "audit_logs": (
        "user_id",
        "event_description",
        "ip_address",
        "signed_by",
        "digital_signature",
        "reason",
        "table_name",
        "record_id",
        "group_id",
        "created_at",
    ),
    "failed_logins": ("user_id", "ip_address", "attempted_at", "failure_reason"),
    "invitations": ("sent_at", "expires_at", "created_at", "updated_at"),
    "notifications": (
        "company_id",
        "read_at",
        "action_url",
        "expires_at",
        "delivered_at",
        "created_at",
        "updated_at",
    ),
    "password_history": ("created_at",),
    "user_lockouts": ("lockout_start", "lockout_end", "reason", "created_at", "updated_at"),
    "user_sessions": ("ip_address", "user_agent", "created_at"),
    "audit_change_logs": ("old_value", "new_value", "created_at"),
}

#: The 17 foreign keys of the analysis: (table, column, referenced table); all reference ``id``.
FOREIGN_KEYS: tuple[tuple[str, str, str], ...] = (
    ("agents", "company_id", "companies"),
    ("knowledge_bases", "company_id", "companies"),
    ("users", "company_id", "companies"),
    ("agent_knowledge_bases", "agent_id", "agents"),
    ("agent_knowledge_bases", "knowledge_base_id", "knowledge_bases"),
    ("knowledge_sources", "knowledge_base_id", "knowledge_bases"),
    ("knowledge_sources", "knowledge_type_id", "knowledge_types"),
    ("audit_logs", "user_id", "users"),
    ("audit_logs", "signed_by", "users"),
    ("failed_logins", "user_id", "users"),
    ("invitations", "user_id", "users"),
    ("notifications", "user_id", "users"),
    ("notifications", "company_id", "companies"),
    ("password_history", "user_id", "users"),
    ("user_lockouts", "user_id", "users"),
    ("user_sessions", "user_id", "users"),
    ("audit_change_logs", "audit_log_id", "audit_logs"),
)

#: The 13 enum types and their labels, in the analysis' order. notification_type is only
#: partly listed by the analysis ("FAILED_LOGIN_NOTIFICATION, SESSION_EXPIRY, etc.").
ENUM_TYPES: dict[str, tuple[str, ...]] = {
    "agent_status": ("ACTIVE", "DISABLED", "ARCHIVED", "DRAFT"),
    "audit_event_type": (
        "FAILED_LOGIN",
        "SUCCESSFUL_LOGIN",
        "SESSION_STARTED",
        "SESSION_ENDED",
        "ROLE_ASSIGNMENT_CHANGE",
        "CONFIGURATION_UPDATE",
        "DATA_EXPORT",
        "OTHER",
    ),
    "company_size": ("SMALL", "MEDIUM", "LARGE", "ENTERPRISE"),
    "company_status": ("ACTIVE", "SUSPENDED", "ARCHIVED"),
    "company_vertical": ("TECH", "PHARMACEUTICAL", "FINANCE", "RETAIL", "OTHER"),
    "invitation_status": ("PENDING", "SENT", "EXPIRED", "CANCELLED", "ACCEPTED"),
    "knowledge_base_status": ("ACTIVE", "BUILDING", "DISABLED", "ARCHIVED", "DRAFT"),
    "notification_delivery_method": ("IN_APP", "EMAIL", "SMS", "WEBHOOK", "PUSH"),
    "notification_priority": ("LOW", "MEDIUM", "HIGH", "CRITICAL"),
    "notification_status": ("PENDING", "DELIVERED", "FAILED"),
    "notification_type": ("FAILED_LOGIN_NOTIFICATION", "SESSION_EXPIRY"),
    "user_role": ("SUPER_ADMIN", "COMPANY_ADMIN", "SPACE_ADMIN", "REGULAR_USER"),
    "user_status": ("ACTIVE", "SUSPENDED", "BLOCKED", "ARCHIVED"),
}
PARTIALLY_LISTED_ENUMS = frozenset({"notification_type"})

#: Which enum type each enum column has.
ENUM_COLUMNS: dict[tuple[str, str], str] = {
    ("companies", "size"): "company_size",
    ("companies", "vertical"): "company_vertical",
    ("companies", "status"): "company_status",
    ("agents", "status"): "agent_status",
    ("knowledge_bases", "status"): "knowledge_base_status",
    ("users", "role"): "user_role",
    ("users", "status"): "user_status",
    ("audit_logs", "event_type"): "audit_event_type",
    ("invitations", "status"): "invitation_status",
    ("notifications", "notification_type"): "notification_type",
    ("notifications", "priority"): "notification_priority",
    ("notifications", "status"): "notification_status",
    ("notifications", "delivery_method"): "notification_delivery_method",
}

TIME_COLUMN_NAMES = frozenset(
    {
        "created_at",
        "updated_at",
        "attempted_at",
        "sent_at",
        "expires_at",
        "read_at",
        "delivered_at",
        "lockout_start",
        "lockout_end",
    }
)
INET_COLUMN_NAMES = frozenset({"ip_address"})


def columns_of(table: str) -> set[str]:
    """Every column of ``table`` according to the analysis (``id`` included)."""
    return {"id", *REQUIRED_COLUMNS[table], *OPTIONAL_COLUMNS[table]}


def uuid_columns_of(table: str) -> set[str]:
    """The primary key, the foreign keys and the audit log's record/group ids."""
    fks = {column for child, column, _ in FOREIGN_KEYS if child == table}
    extra = {"record_id", "group_id"} if table == "audit_logs" else set()
    return {"id", *fks, *extra}


TABLES_WITH_UPDATED_AT: tuple[str, ...] = tuple(t for t in TABLES if "updated_at" in columns_of(t))

#: When a row came into being: created_at, except failed_logins (attempted_at).
ROW_TIME = dict.fromkeys(TABLES, "created_at") | {"failed_logins": "attempted_at"}

# Scenario times are anchor (midnight UTC of the test day) + offsets, so now() lies in
# [anchor, anchor + 1 day): a case > 8 days after the anchor (a "remember me" session, a
# 30-day invitation, a long lockout) is beyond FAR_FUTURE all day long, and one > 2 days
# after it (design.md's "future") beyond FUTURE.
FAR_FUTURE = "now() + interval '7 days'"
FUTURE = "now() + interval '1 day'"

BCRYPT_HASH = r"^\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}$"

# --- running checks ---------------------------------------------------------------------


@dataclass
class Seeded:
    """A scenario stored in the database: what the checks look at."""

    session: Session
    volume: Volume
    summary: Any = None

    def rows(self, sql: str, **params: Any) -> list[Row[Any]]:
        return list(self.session.execute(text(sql), params))

    def scalar(self, sql: str, **params: Any) -> Any:
        return self.session.execute(text(sql), params).scalar()


def _show(row: Row[Any]) -> str:
    values = {key: _short(value) for key, value in row._mapping.items()}
    return f"  {values}"


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > 80:
        return value[:77] + "..."
    return value


@dataclass
class Findings:
    """Collects every violation of one rule, so a failure lists them all at once."""

    seeded: Seeded
    problems: list[str] = field(default_factory=list)
    shown_rows: int = 8

    def no_rows(self, what: str, sql: str, **params: Any) -> None:
        """``sql`` selects violations of ``what``; there must be none."""
        rows = self.seeded.rows(sql, **params)
        if rows:
            shown = "\n".join(_show(r) for r in rows[: self.shown_rows])
            hidden = len(rows) - self.shown_rows
            more = f"\n  ... and {hidden} more" if hidden > 0 else ""
            self.problems.append(f"{len(rows)} offending row(s): {what}\n{shown}{more}")

    def some_rows(self, what: str, sql: str, **params: Any) -> None:
        """``sql`` selects examples of ``what``; there must be at least one."""
        if not self.seeded.rows(sql, **params):
            self.problems.append(f"no row at all: {what}\n  query: {' '.join(sql.split())}")

    def expect(self, ok: bool, message: str) -> None:
        if not ok:
            self.problems.append(message)

    def raise_if_any(self, rule: str) -> None:
        if self.problems:
            raise AssertionError(f"{rule} violated:\n" + "\n".join(self.problems))


@dataclass(frozen=True)
class Check:
    rule: str
    run: Callable[[Findings], None]

    def __call__(self, seeded: Seeded) -> None:
        findings = Findings(seeded)
        self.run(findings)
        findings.raise_if_any(self.rule)


CHECKS: list[Check] = []


def check(rule: str) -> Callable[[Callable[[Findings], None]], Callable[[Findings], None]]:
    def register(run: Callable[[Findings], None]) -> Callable[[Findings], None]:
        CHECKS.append(Check(rule, run))
        return run

    return register


# --- the rules --------------------------------------------------------------------------


@check("R01 rows per table equal the volume's counts")
def _rows_per_table(f: Findings) -> None:
    counts = f.seeded.volume.counts
    for table in TABLES:
        stored = f.seeded.scalar(f"SELECT count(*) FROM {table}")
        f.expect(
            stored == counts[table], f"{table}: {stored} rows stored, volume says {counts[table]}"
        )
    summary_rows = getattr(f.seeded.summary, "rows", None)
    if summary_rows is not None:
        f.expect(
            dict(summary_rows) == dict(counts),
            f"ScenarioSummary.rows {dict(summary_rows)} != volume counts {dict(counts)}",
        )


#: Time columns every seeded row of the table carries, although the schema allows NULL.
SEEDED_TIMESTAMPS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(TABLES, ("created_at",)),
    **dict.fromkeys(TABLES_WITH_UPDATED_AT, ("created_at", "updated_at")),
    "failed_logins": ("attempted_at",),
    "invitations": ("created_at", "updated_at", "expires_at"),
    "user_lockouts": ("created_at", "updated_at", "lockout_start", "lockout_end"),
    "user_sessions": ("created_at", "expires_at"),
}


@check("R02 every seeded row carries its timestamps")
def _timestamps_set(f: Findings) -> None:
    for table, columns in SEEDED_TIMESTAMPS.items():
        for column in columns:
            f.no_rows(
                f"{table}.{column} IS NULL",
                f"SELECT id FROM {table} WHERE {column} IS NULL",
            )
    f.no_rows(
        "invitations in status SENT/EXPIRED/ACCEPTED without sent_at",
        "SELECT id, status FROM invitations"
        " WHERE status IN ('SENT', 'EXPIRED', 'ACCEPTED') AND sent_at IS NULL",
    )


@check("R03 created_at <= updated_at")
def _created_before_updated(f: Findings) -> None:
    for table in TABLES_WITH_UPDATED_AT:
        f.no_rows(
            f"{table}.created_at > updated_at",
            f"SELECT id, created_at, updated_at FROM {table} WHERE created_at > updated_at",
        )


@check("R04a a row is never older than a row it references")
def _children_after_parents(f: Findings) -> None:
    for table, column, parent in FOREIGN_KEYS:
        row_time = ROW_TIME[table]
        f.no_rows(
            f"{table}.{row_time} < {parent}.created_at (FK {table}.{column})",
            f"SELECT c.id, c.{row_time} AS row_time, p.id AS parent_id,"
            f" p.created_at AS parent_created_at"
            f" FROM {table} c JOIN {parent} p ON p.id = c.{column}"
            f" WHERE c.{row_time} < p.created_at",
        )


@check("R04b no row is created in the future")
def _not_created_in_future(f: Findings) -> None:
    for table in TABLES:
        row_time = ROW_TIME[table]
        f.no_rows(
            f"{table}.{row_time} > now()",
            f"SELECT id, {row_time}, now() AS now FROM {table} WHERE {row_time} > now()",
        )


#: Times at which something already happened (beyond created_at), per table.
PAST_EVENT_COLUMNS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(TABLES_WITH_UPDATED_AT, ("updated_at",)),
    "invitations": ("updated_at", "sent_at"),
    "notifications": ("updated_at", "delivered_at", "read_at"),
    "user_lockouts": ("updated_at", "lockout_start"),
}


@check("X04c updates, sends, deliveries, reads and lockout starts are not in the future")
def _past_events_not_in_future(f: Findings) -> None:
    for table, columns in PAST_EVENT_COLUMNS.items():
        for column in columns:
            f.no_rows(
                f"{table}.{column} > now()",
                f"SELECT id, {column}, now() AS now FROM {table} WHERE {column} > now()",
            )


@check("R05a user_sessions: expired, current and far-future cases")
def _sessions_past_current_future(f: Findings) -> None:
    f.some_rows("expired session", "SELECT id FROM user_sessions WHERE expires_at < now()")
    f.some_rows(
        "session valid now",
        "SELECT id FROM user_sessions WHERE created_at <= now() AND now() < expires_at",
    )
    f.some_rows(
        "session expiring more than 7 days from now",
        f"SELECT id FROM user_sessions WHERE expires_at > {FAR_FUTURE}",
    )


@check("R05b invitations: expired, open and far-future cases")
def _invitations_past_current_future(f: Findings) -> None:
    f.some_rows("expired invitation", "SELECT id FROM invitations WHERE expires_at < now()")
    f.some_rows(
        "invitation open now",
        "SELECT id FROM invitations WHERE sent_at <= now() AND now() < expires_at",
    )
    f.some_rows(
        "invitation expiring more than 7 days from now",
        f"SELECT id FROM invitations WHERE expires_at > {FAR_FUTURE}",
    )


@check("R05c user_lockouts: ended, active and far-future cases")
def _lockouts_past_current_future(f: Findings) -> None:
    f.some_rows("ended lockout", "SELECT id FROM user_lockouts WHERE lockout_end < now()")
    f.some_rows(
        "lockout active now",
        "SELECT id FROM user_lockouts WHERE lockout_start <= now() AND now() < lockout_end",
    )
    f.some_rows(
        "lockout ending more than 7 days from now",
        f"SELECT id FROM user_lockouts WHERE lockout_end > {FAR_FUTURE}",
    )


@check("R05d notifications: expired and unexpired, read and unread")
def _notifications_past_future(f: Findings) -> None:
    f.some_rows("expired notification", "SELECT id FROM notifications WHERE expires_at < now()")
    f.some_rows(
        "notification expiring more than a day from now",
        f"SELECT id FROM notifications WHERE expires_at > {FUTURE}",
    )
    f.some_rows("read notification", "SELECT id FROM notifications WHERE read_at IS NOT NULL")
    f.some_rows("unread notification", "SELECT id FROM notifications WHERE read_at IS NULL")


@check("R06 most users ACTIVE, every other status present")
def _user_statuses(f: Findings) -> None:
    by_status = dict(f.seeded.rows("SELECT status, count(*) FROM users GROUP BY status"))
    total = sum(by_status.values())
    f.expect(
        by_status.get("ACTIVE", 0) * 2 > total,
        f"only {by_status.get('ACTIVE', 0)} of {total} users are ACTIVE: {by_status}",
    )
    for status in ("SUSPENDED", "BLOCKED", "ARCHIVED"):
        f.expect(by_status.get(status, 0) >= 1, f"no {status} user: {by_status}")


@check("R07 company admins in every company, super admins without a company")
def _roles(f: Findings) -> None:
    f.no_rows(
        "company without a COMPANY_ADMIN",
        "SELECT c.id, c.name FROM companies c WHERE NOT EXISTS"
        " (SELECT 1 FROM users u WHERE u.company_id = c.id AND u.role = 'COMPANY_ADMIN')",
    )
    f.some_rows("SUPER_ADMIN user", "SELECT id FROM users WHERE role = 'SUPER_ADMIN'")
    f.no_rows(
        "SUPER_ADMIN iff company_id IS NULL",
        "SELECT id, role, company_id FROM users"
        " WHERE (role = 'SUPER_ADMIN') <> (company_id IS NULL)",
    )


@check("R08 users, agents and knowledge bases spread over every company")
def _spread_over_companies(f: Findings) -> None:
    for table in ("users", "agents", "knowledge_bases"):
        f.no_rows(
            f"company without {table}",
            f"SELECT c.id, c.name FROM companies c"
            f" WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE t.company_id = c.id)",
        )
    f.some_rows(
        "company with several agents",
        "SELECT company_id FROM agents GROUP BY company_id HAVING count(*) >= 2",
    )
    f.some_rows(
        "knowledge base with several sources of several types",
        "SELECT knowledge_base_id FROM knowledge_sources GROUP BY knowledge_base_id"
        " HAVING count(*) >= 2 AND count(DISTINCT knowledge_type_id) >= 2",
    )


@check("R09 failed logins include unknown emails; lockouts follow failed logins")
def _failed_logins_and_lockouts(f: Findings) -> None:
    f.some_rows(
        "failed login of an unknown email (user_id NULL)",
        "SELECT id FROM failed_logins WHERE user_id IS NULL",
    )
    f.some_rows(
        "failed login of a known user", "SELECT id FROM failed_logins WHERE user_id IS NOT NULL"
    )
    f.no_rows(
        "lockout without a failed login of its user in the 30 minutes before lockout_start",
        "SELECT l.id, l.user_id, l.lockout_start,"
        " (SELECT max(fl.attempted_at) FROM failed_logins fl"
        "   WHERE fl.user_id = l.user_id AND fl.attempted_at <= l.lockout_start)"
        "   AS last_failed_login_before"
        " FROM user_lockouts l WHERE NOT EXISTS (SELECT 1 FROM failed_logins fl"
        "   WHERE fl.user_id = l.user_id"
        "   AND fl.attempted_at BETWEEN l.lockout_start - interval '30 minutes'"
        "   AND l.lockout_start)",
    )


@check("R10 audit logs of one action share a group_id")
def _audit_groups(f: Findings) -> None:
    f.some_rows(
        "group_id shared by several audit logs",
        "SELECT group_id FROM audit_logs WHERE group_id IS NOT NULL"
        " GROUP BY group_id HAVING count(*) >= 2",
    )
    f.no_rows(
        "audit log group with several users or spread over more than 60 s",
        "SELECT group_id, count(*) AS logs,"
        " array_agg(DISTINCT coalesce(user_id::text, 'NULL')) AS users,"
        " max(created_at) - min(created_at) AS spread"
        " FROM audit_logs WHERE group_id IS NOT NULL GROUP BY group_id"
        " HAVING count(DISTINCT coalesce(user_id::text, 'NULL')) > 1"
        " OR max(created_at) - min(created_at) > interval '60 seconds'",
    )


@check("R11 change logs only on audit logs that changed an existing row")
def _change_logs(f: Findings) -> None:
    f.no_rows(
        "audit change log whose audit log has no table_name or record_id",
        "SELECT ch.id, a.id AS audit_log_id, a.table_name, a.record_id"
        " FROM audit_change_logs ch JOIN audit_logs a ON a.id = ch.audit_log_id"
        " WHERE a.table_name IS NULL OR a.record_id IS NULL",
    )
    f.no_rows(
        "audit log with only one of table_name and record_id",
        "SELECT id, table_name, record_id FROM audit_logs"
        " WHERE (table_name IS NULL) <> (record_id IS NULL)",
    )
    f.no_rows(
        "audit log naming a table that is not a Celestra table",
        "SELECT id, table_name FROM audit_logs"
        " WHERE table_name IS NOT NULL AND NOT (table_name = ANY(:tables))",
        tables=list(TABLES),
    )
    for table in TABLES:
        f.no_rows(
            f"audit log whose record_id is not a row of {table}",
            f"SELECT a.id, a.record_id FROM audit_logs a WHERE a.table_name = :table"
            f" AND NOT EXISTS (SELECT 1 FROM {table} r WHERE r.id = a.record_id)",
            table=table,
        )
    f.no_rows(
        "change log whose old_value equals new_value",
        "SELECT id, column_name, old_value, new_value FROM audit_change_logs"
        " WHERE old_value IS NOT DISTINCT FROM new_value",
    )
    f.some_rows("audit log with change logs", "SELECT audit_log_id FROM audit_change_logs LIMIT 1")


@check("X11a a change log names a real column, once per audit log, of a row that existed")
def _change_log_columns(f: Findings) -> None:
    f.no_rows(
        "change log whose column_name is not a column of its audit log's table_name",
        "SELECT ch.id, a.table_name, ch.column_name"
        " FROM audit_change_logs ch JOIN audit_logs a ON a.id = ch.audit_log_id"
        " WHERE NOT EXISTS (SELECT 1 FROM information_schema.columns col"
        "   WHERE col.table_schema = current_schema() AND col.table_name = a.table_name"
        "   AND col.column_name = ch.column_name)",
    )
    f.no_rows(
        "audit log changing the same column several times (one before/after per column)",
        "SELECT ch.audit_log_id, a.table_name, ch.column_name,"
        " array_agg(ch.old_value || ' -> ' || ch.new_value) AS changes"
        " FROM audit_change_logs ch JOIN audit_logs a ON a.id = ch.audit_log_id"
        " GROUP BY ch.audit_log_id, a.table_name, ch.column_name HAVING count(*) > 1",
    )
    for table in TABLES:
        f.no_rows(
            f"audit log older than the {table} row it changed",
            f"SELECT a.id, a.created_at, r.{ROW_TIME[table]} AS row_created_at"
            f" FROM audit_logs a JOIN {table} r ON r.id = a.record_id"
            f" WHERE a.table_name = :table AND a.created_at < r.{ROW_TIME[table]}",
            table=table,
        )


#: How to find the company a row belongs to, for the tables that belong to one.
ROW_COMPANY = {
    "companies": "r.id",
    "users": "r.company_id",
    "agents": "r.company_id",
    "knowledge_bases": "r.company_id",
    "notifications": "r.company_id",
}


@check("X11b only super admins change rows of another company than their own")
def _change_tenancy(f: Findings) -> None:
    for table, company in ROW_COMPANY.items():
        f.no_rows(
            f"{table} row changed by a user of another company",
            f"SELECT a.id, a.event_type, u.role, u.company_id AS user_company,"
            f" {company} AS row_company"
            f" FROM audit_logs a JOIN users u ON u.id = a.user_id"
            f" JOIN {table} r ON r.id = a.record_id"
            f" WHERE a.table_name = :table AND u.role <> 'SUPER_ADMIN'"
            f" AND u.company_id IS DISTINCT FROM {company}",
            table=table,
        )
    f.no_rows(
        "ROLE_ASSIGNMENT_CHANGE that does not change users.role",
        "SELECT a.id, a.table_name, array_agg(ch.column_name) AS columns"
        " FROM audit_logs a LEFT JOIN audit_change_logs ch ON ch.audit_log_id = a.id"
        " WHERE a.event_type = 'ROLE_ASSIGNMENT_CHANGE' GROUP BY a.id, a.table_name"
        " HAVING a.table_name IS DISTINCT FROM 'users'"
        " OR NOT coalesce(bool_or(ch.column_name = 'role'), false)",
    )


_CHANGES = (
    "SELECT ch.id, a.record_id, ch.column_name, ch.old_value, ch.new_value, a.created_at"
    " FROM audit_change_logs ch JOIN audit_logs a ON a.id = ch.audit_log_id"
)


@check("X11c the audit history of a row agrees with the row")
def _change_history(f: Findings) -> None:
    f.no_rows(
        "change whose old_value is not the new_value of the previous change of that column",
        f"SELECT id, record_id, column_name, created_at, old_value, previous_new_value"
        f" FROM (SELECT ch.*,"
        f"   lag(new_value) OVER w AS previous_new_value,"
        f"   lag(created_at) OVER w AS previous_created_at"
        f"   FROM ({_CHANGES}) ch"
        f"   WINDOW w AS (PARTITION BY record_id, column_name ORDER BY created_at, id)) h"
        f" WHERE previous_created_at < created_at"
        f" AND old_value IS DISTINCT FROM previous_new_value",
    )
    for table in ROW_COMPANY:
        f.no_rows(
            f"latest change of a {table} column whose new_value is not the row's value",
            f"SELECT h.record_id, h.column_name, array_agg(h.new_value) AS latest_new_values,"
            f" h.row_value"
            f" FROM (SELECT ch.*, to_jsonb(r) ->> ch.column_name AS row_value,"
            f"   max(ch.created_at) OVER (PARTITION BY ch.record_id, ch.column_name) AS latest"
            f"   FROM ({_CHANGES} WHERE a.table_name = :table) ch"
            f"   JOIN {table} r ON r.id = ch.record_id) h"
            f" WHERE h.created_at = h.latest"
            f" GROUP BY h.record_id, h.column_name, h.row_value"
            f" HAVING NOT bool_or(h.new_value IS NOT DISTINCT FROM h.row_value)",
            table=table,
        )


def _domain(column: str) -> str:
    return f"lower(split_part({column}, '@', 2))"


@check("R12 emails unique and on their company's domain")
def _emails(f: Findings) -> None:
    f.no_rows(
        "email used more than once (case-insensitive)",
        "SELECT lower(email) AS email, count(*) FROM users GROUP BY lower(email)"
        " HAVING count(*) > 1",
    )
    f.no_rows(
        "email that does not look like local@domain.tld",
        "SELECT id, email FROM users WHERE email !~ '^[^@\\s]+@[a-z0-9-]+(\\.[a-z0-9-]+)+$'",
    )
    f.no_rows(
        "company whose users have several email domains",
        f"SELECT company_id, array_agg(DISTINCT {_domain('email')}) AS domains FROM users"
        f" WHERE company_id IS NOT NULL GROUP BY company_id"
        f" HAVING count(DISTINCT {_domain('email')}) > 1",
    )
    f.no_rows(
        "email domain shared by several companies",
        f"SELECT {_domain('email')} AS domain, array_agg(DISTINCT company_id) AS companies"
        f" FROM users WHERE company_id IS NOT NULL GROUP BY 1"
        f" HAVING count(DISTINCT company_id) > 1",
    )
    f.no_rows(
        "super admin on a company's email domain",
        f"SELECT s.id, s.email FROM users s WHERE s.role = 'SUPER_ADMIN'"
        f" AND {_domain('s.email')} IN"
        f" (SELECT {_domain('u.email')} FROM users u WHERE u.company_id IS NOT NULL)",
    )
    for company_id, name, domain in f.seeded.rows(
        f"SELECT c.id, c.name, min({_domain('u.email')}) FROM companies c"
        f" JOIN users u ON u.company_id = c.id GROUP BY c.id, c.name"
    ):
        f.expect(
            domain == company_domain(name),
            f"company {name!r} ({company_id}): users on {domain!r},"
            f" company_domain() says {company_domain(name)!r}",
        )


@check("R13 tokens unique, URL-safe and at least 32 characters")
def _tokens(f: Findings) -> None:
    for table, column in (("user_sessions", "session_token"), ("invitations", "token")):
        f.no_rows(
            f"{table}.{column} used more than once",
            f"SELECT {column}, count(*) FROM {table} GROUP BY {column} HAVING count(*) > 1",
        )
        f.no_rows(
            f"{table}.{column} not URL-safe or shorter than 32 characters",
            f"SELECT id, {column} FROM {table} WHERE {column} !~ '^[A-Za-z0-9_-]{{32,}}$'",
        )


@check("R14 audit logs are signed by their user's company admin or a super admin")
def _signers(f: Findings) -> None:
    f.some_rows("signed audit log", "SELECT id FROM audit_logs WHERE signed_by IS NOT NULL")
    f.no_rows(
        "signer neither a COMPANY_ADMIN of the user's company nor a SUPER_ADMIN",
        "SELECT a.id, a.user_id, u.company_id AS user_company, s.id AS signer,"
        " s.role AS signer_role, s.company_id AS signer_company"
        " FROM audit_logs a JOIN users s ON s.id = a.signed_by"
        " LEFT JOIN users u ON u.id = a.user_id"
        " WHERE NOT coalesce(s.role = 'SUPER_ADMIN'"
        "   OR (s.role = 'COMPANY_ADMIN' AND s.company_id = u.company_id), false)",
    )


@check("R15 a notification's company is its user's company or NULL")
def _notification_company(f: Findings) -> None:
    f.no_rows(
        "notification for another company than its user's",
        "SELECT n.id, n.company_id, u.company_id AS user_company, u.role"
        " FROM notifications n JOIN users u ON u.id = n.user_id"
        " WHERE n.company_id IS NOT NULL AND n.company_id IS DISTINCT FROM u.company_id",
    )


@check("R16 agent/knowledge base links stay within one company and are unique")
def _agent_links(f: Findings) -> None:
    f.no_rows(
        "agent linked to another company's knowledge base",
        "SELECT l.id, a.company_id AS agent_company, k.company_id AS kb_company"
        " FROM agent_knowledge_bases l JOIN agents a ON a.id = l.agent_id"
        " JOIN knowledge_bases k ON k.id = l.knowledge_base_id"
        " WHERE a.company_id <> k.company_id",
    )
    f.no_rows(
        "agent/knowledge base pair linked twice",
        "SELECT agent_id, knowledge_base_id, count(*) FROM agent_knowledge_bases"
        " GROUP BY 1, 2 HAVING count(*) > 1",
    )


@check("R17a password history unique and distinct from the current hash; bcrypt hashes")
def _password_history(f: Findings) -> None:
    f.no_rows(
        "password_history hash repeated for one user",
        "SELECT user_id, password_hash, count(*) FROM password_history"
        " GROUP BY 1, 2 HAVING count(*) > 1",
    )
    f.no_rows(
        "password_history entry equal to the user's current password_hash",
        "SELECT h.id, h.user_id FROM password_history h JOIN users u ON u.id = h.user_id"
        " WHERE h.password_hash = u.password_hash",
    )
    for table in ("users", "password_history"):
        f.no_rows(
            f"{table}.password_hash not a bcrypt hash",
            f"SELECT id, password_hash FROM {table} WHERE password_hash !~ :pattern",
            pattern=BCRYPT_HASH,
        )


@check("R17b the documented default password verifies against seeded users' hashes")
def _default_password(f: Findings) -> None:
    from passlib.hash import bcrypt

    from pytest_celestra.rows.passwords import DEFAULT_PASSWORD

    # One user per role, plus a password_history entry of each: a sample, bcrypt is slow.
    sample = f.seeded.rows(
        "SELECT DISTINCT ON (u.role) u.email, u.role, u.password_hash,"
        " (SELECT h.password_hash FROM password_history h WHERE h.user_id = u.id"
        "   ORDER BY h.created_at LIMIT 1) AS old_hash"
        " FROM users u ORDER BY u.role, u.email"
    )
    f.expect(len(sample) >= 2, f"expected users of several roles, got {len(sample)}")
    for email, role, current, old in sample:
        f.expect(
            bcrypt.verify(DEFAULT_PASSWORD, current),
            f"{role} {email}: DEFAULT_PASSWORD does not verify against password_hash",
        )
        if old is not None:
            f.expect(
                not bcrypt.verify(DEFAULT_PASSWORD, old),
                f"{role} {email}: a password_history entry is the current password",
            )


@check("R18 every enum column uses several values")
def _enum_variety(f: Findings) -> None:
    for (table, column), type_name in ENUM_COLUMNS.items():
        values = [v for (v,) in f.seeded.rows(f"SELECT DISTINCT {column}::text FROM {table}")]
        f.expect(
            len(values) >= 2,
            f"{table}.{column} ({type_name}) uses only {values}",
        )


@check("X19 notification and invitation statuses agree with their timestamps")
def _status_times(f: Findings) -> None:
    f.no_rows(
        "notification DELIVERED without delivered_at, or not DELIVERED with delivered_at",
        "SELECT id, status, delivered_at FROM notifications"
        " WHERE (status = 'DELIVERED') <> (delivered_at IS NOT NULL)",
    )
    f.no_rows(
        "notification read but never delivered",
        "SELECT id, status, delivered_at, read_at FROM notifications"
        " WHERE read_at IS NOT NULL AND delivered_at IS NULL",
    )
    f.no_rows(
        "notification delivered before created or read before delivered",
        "SELECT id, created_at, delivered_at, read_at FROM notifications"
        " WHERE delivered_at < created_at OR read_at < delivered_at",
    )
    f.no_rows(
        "invitation sent before it was created",
        "SELECT id, created_at, sent_at FROM invitations WHERE sent_at < created_at",
    )
    f.no_rows(
        "EXPIRED invitation that has not expired, or SENT/PENDING one that has",
        "SELECT id, status, expires_at, now() AS now FROM invitations"
        " WHERE (status = 'EXPIRED' AND expires_at > now())"
        " OR (status IN ('SENT', 'PENDING') AND expires_at <= now())",
    )


#: Rules about a whole scenario's counts and coverage, which rows made by factories need not
#: meet.
SCENARIO_RULES = frozenset(
    {"R01", "R05a", "R05b", "R05c", "R05d", "R06", "R07", "R08", "R10", "R18", "S10"}
)


def check_row_rules(session: Any) -> None:
    """Check every rule about single rows (all but :data:`SCENARIO_RULES`) in ``session``."""
    seeded = Seeded(session, volume=None)
    checks = [c for c in CHECKS if c.rule.split()[0] not in SCENARIO_RULES]
    assert len(checks) >= 15
    for rule_check in checks:
        rule_check(seeded)


# --- one story across tables (pytest_celestra.rows.story) -----------------------------------

#: A user, agent or knowledge base of a company that is not ACTIVE, in a status it cannot
#: have there (docs/realism.md, "Tenant lifecycle").
CLOSED_COMPANY_LIVE_ROWS = {
    "users": "r.status = 'ACTIVE'",
    "agents": "r.status = 'ACTIVE'",
    "knowledge_bases": "r.status IN ('ACTIVE', 'BUILDING')",
}


@check("S01 a closed company has no live members, none changed after it closed")
def _closed_companies(f: Findings) -> None:
    for table, live in CLOSED_COMPANY_LIVE_ROWS.items():
        f.no_rows(
            f"{table} row still live in a SUSPENDED or ARCHIVED company",
            f"SELECT r.id, r.status, c.status AS company_status FROM {table} r"
            f" JOIN companies c ON c.id = r.company_id WHERE c.status <> 'ACTIVE' AND {live}",
        )
        f.no_rows(
            f"{table} row of a closed company updated after the company closed (updated_at)",
            f"SELECT r.id, r.updated_at, c.updated_at AS company_closed FROM {table} r"
            f" JOIN companies c ON c.id = r.company_id"
            f" WHERE c.status <> 'ACTIVE' AND r.updated_at > c.updated_at",
        )


@check("S02 a user who is not ACTIVE holds no live session and started none after leaving ACTIVE")
def _inactive_sessions(f: Findings) -> None:
    f.no_rows(
        "session of a user who is not ACTIVE, live now or started after the status change",
        "SELECT s.id, u.status, u.updated_at AS status_changed, s.created_at, s.expires_at"
        " FROM user_sessions s JOIN users u ON u.id = s.user_id WHERE u.status <> 'ACTIVE'"
        " AND (s.expires_at > now() OR s.created_at > u.updated_at)",
    )


@check("S03 a user who is not ACTIVE acts, signs and is invited only before leaving ACTIVE")
def _inactive_activity(f: Findings) -> None:
    f.no_rows(
        "audit log (other than a failed login) by a user after they left ACTIVE",
        "SELECT a.id, a.event_type, u.status, u.updated_at AS status_changed, a.created_at"
        " FROM audit_logs a JOIN users u ON u.id = a.user_id WHERE u.status <> 'ACTIVE'"
        " AND a.event_type <> 'FAILED_LOGIN' AND a.created_at > u.updated_at",
    )
    f.no_rows(
        "audit log signed by a user after they left ACTIVE",
        "SELECT a.id, s.status, s.updated_at AS status_changed, a.created_at"
        " FROM audit_logs a JOIN users s ON s.id = a.signed_by WHERE s.status <> 'ACTIVE'"
        " AND a.created_at > s.updated_at",
    )
    f.no_rows(
        "invitation of a user who is not ACTIVE, open now or sent after the status change",
        "SELECT i.id, i.status, u.status AS user_status, u.updated_at AS status_changed,"
        " i.sent_at, i.expires_at FROM invitations i JOIN users u ON u.id = i.user_id"
        " WHERE u.status <> 'ACTIVE' AND (i.sent_at > u.updated_at"
        "   OR (i.status IN ('PENDING', 'SENT') AND i.expires_at > now()))",
    )


@check("S04 nothing is added to a DISABLED or ARCHIVED agent or knowledge base later")
def _retired_rows(f: Findings) -> None:
    for table, column in (("agents", "agent_id"), ("knowledge_bases", "knowledge_base_id")):
        f.no_rows(
            f"agent/knowledge base link made after its {table} row was switched off",
            f"SELECT l.id, r.status, r.updated_at AS switched_off, l.created_at"
            f" FROM agent_knowledge_bases l JOIN {table} r ON r.id = l.{column}"
            f" WHERE r.status IN ('DISABLED', 'ARCHIVED') AND l.created_at > r.updated_at",
        )
    f.no_rows(
        "knowledge source added after its knowledge base was switched off",
        "SELECT s.id, k.status, k.updated_at AS switched_off, s.created_at"
        " FROM knowledge_sources s JOIN knowledge_bases k ON k.id = s.knowledge_base_id"
        " WHERE k.status IN ('DISABLED', 'ARCHIVED') AND s.created_at > k.updated_at",
    )


#: When a row is closed (story): its status change is its updated_at, and it changes no more.
CLOSED_ROWS = {
    "companies": "r.status <> 'ACTIVE'",
    "users": "r.status <> 'ACTIVE'",
    "agents": "r.status IN ('DISABLED', 'ARCHIVED')",
    "knowledge_bases": "r.status IN ('DISABLED', 'ARCHIVED')",
}


@check("S11 the audit trail changes a closed row only before its status change (updated_at)")
def _closed_rows_audit(f: Findings) -> None:
    for table, closed in CLOSED_ROWS.items():
        f.no_rows(
            f"audit log changing a closed {table} row after its updated_at",
            f"SELECT a.id, a.event_type, r.status, r.updated_at AS status_changed, a.created_at"
            f" FROM audit_logs a JOIN {table} r ON r.id = a.record_id"
            f" WHERE a.table_name = :table AND {closed} AND a.created_at > r.updated_at",
            table=table,
        )


#: An event is reported within this long (10 minutes).
DELAY = f"interval '{story.NOTIFICATION_DELAY[1]} seconds'"
#: A password is this old when its expiry is announced (76 days).
NOTICE_AGE = f"interval '{story.PASSWORD_EXPIRY_NOTICE[0]} seconds'"
#: ... and at most this old (90 days).
NOTICE_OLDEST = f"interval '{story.PASSWORD_EXPIRY_NOTICE[1]} seconds'"


def _within(column: str) -> str:
    """``column`` (an event's time) lies in the delay before the notification n."""
    return f"{column} BETWEEN n.created_at - {DELAY} AND n.created_at"


#: For each notification type that reports an event, the event that must exist, in terms
#: of the notification ``n`` and its user ``u`` (docs/realism.md).
NOTIFICATION_EVENT_SQL: dict[str, dict[str, str]] = {
    "S05 notifications of sign-ins, lockouts and passwords report real events of their user": {
        "FAILED_LOGIN_NOTIFICATION": "SELECT 1 FROM failed_logins e WHERE e.user_id = n.user_id"
        f" AND {_within('e.attempted_at')}",
        "ACCOUNT_LOCKED": "SELECT 1 FROM user_lockouts e WHERE e.user_id = n.user_id"
        f" AND {_within('e.lockout_start')}",
        "ACCOUNT_UNLOCKED": "SELECT 1 FROM user_lockouts e WHERE e.user_id = n.user_id"
        f" AND {_within('e.lockout_end')}",
        "PASSWORD_CHANGED": "SELECT 1 FROM password_history e WHERE e.user_id = n.user_id"
        f" AND {_within('e.created_at')}",
        # The password in use then (set at the user's creation or last change) is 76 to 90
        # days old.
        "PASSWORD_EXPIRY": "SELECT 1 WHERE greatest(u.created_at, (SELECT max(e.created_at)"
        " FROM password_history e WHERE e.user_id = n.user_id AND e.created_at <= n.created_at))"
        f" BETWEEN n.created_at - {NOTICE_OLDEST} AND n.created_at - {NOTICE_AGE}",
        "NEW_DEVICE_LOGIN": "SELECT 1 FROM user_sessions e WHERE e.user_id = n.user_id"
        f" AND {_within('e.created_at')}",
    },
    "S06 notifications of roles, invitations and exports report real events of their user": {
        "ROLE_CHANGED": "SELECT 1 FROM audit_logs e WHERE e.record_id = n.user_id"
        f" AND e.event_type = 'ROLE_ASSIGNMENT_CHANGE' AND {_within('e.created_at')}",
        "INVITATION_SENT": "SELECT 1 FROM invitations e WHERE e.user_id = n.user_id"
        f" AND {_within('e.sent_at')}",
        "INVITATION_ACCEPTED": "SELECT 1 FROM invitations e WHERE e.user_id = n.user_id"
        f" AND e.status = 'ACCEPTED' AND {_within('e.updated_at')}",
        "DATA_EXPORT_READY": "SELECT 1 FROM audit_logs e WHERE e.user_id = n.user_id"
        f" AND e.event_type = 'DATA_EXPORT' AND {_within('e.created_at')}",
    },
    "S07 notifications of knowledge bases and agents report real events of their company": {
        "KNOWLEDGE_BASE_READY": "SELECT 1 FROM knowledge_bases e WHERE e.company_id ="
        f" u.company_id AND e.status = 'ACTIVE' AND {_within('e.updated_at')}",
        "KNOWLEDGE_BASE_FAILED": "SELECT 1 FROM knowledge_bases e WHERE e.company_id ="
        f" u.company_id AND e.status IN ('BUILDING', 'DISABLED') AND {_within('e.updated_at')}",
        "AGENT_STATUS_CHANGED": "SELECT 1 FROM audit_logs e"
        " JOIN audit_change_logs ch ON ch.audit_log_id = e.id AND ch.column_name = 'status'"
        " JOIN agents g ON g.id = e.record_id AND e.table_name = 'agents'"
        f" WHERE g.company_id = u.company_id AND {_within('e.created_at')}",
    },
}


def _notification_rule(rule: str, events: dict[str, str]) -> None:
    def run(f: Findings) -> None:
        for notification_type, event in events.items():
            f.no_rows(
                f"{notification_type} notification without the event it reports",
                "SELECT n.id, n.user_id, n.created_at FROM notifications n"
                " JOIN users u ON u.id = n.user_id"
                f" WHERE n.notification_type = '{notification_type}'"
                f" AND NOT EXISTS ({event})",
            )

    check(rule)(run)


for _rule, _events in NOTIFICATION_EVENT_SQL.items():
    _notification_rule(_rule, _events)


@check("S08 sign-ins start a session of their user, sign-outs lie within one")
def _audit_sessions(f: Findings) -> None:
    f.no_rows(
        "SUCCESSFUL_LOGIN or SESSION_STARTED without a session of its user started in the"
        " next 60 seconds",
        "SELECT a.id, a.event_type, a.user_id, a.created_at FROM audit_logs a"
        " WHERE a.event_type IN ('SUCCESSFUL_LOGIN', 'SESSION_STARTED') AND NOT EXISTS"
        " (SELECT 1 FROM user_sessions s WHERE s.user_id = a.user_id"
        "   AND s.created_at BETWEEN a.created_at AND a.created_at + interval '60 seconds')",
    )
    f.no_rows(
        "SESSION_ENDED outside every session of its user",
        "SELECT a.id, a.user_id, a.created_at FROM audit_logs a"
        " WHERE a.event_type = 'SESSION_ENDED' AND NOT EXISTS"
        " (SELECT 1 FROM user_sessions s WHERE s.user_id = a.user_id"
        "   AND a.created_at BETWEEN s.created_at AND s.expires_at)",
    )


@check("S09 a FAILED_LOGIN audit log is a failed login of the same user at that moment")
def _audit_failed_logins(f: Findings) -> None:
    f.no_rows(
        "FAILED_LOGIN audit log without a failed login of its user (or unknown email) within"
        " 60 seconds",
        "SELECT a.id, a.user_id, a.created_at FROM audit_logs a"
        " WHERE a.event_type = 'FAILED_LOGIN' AND NOT EXISTS (SELECT 1 FROM failed_logins fl"
        "   WHERE fl.user_id IS NOT DISTINCT FROM a.user_id"
        "   AND fl.attempted_at BETWEEN a.created_at - interval '60 seconds'"
        "   AND a.created_at + interval '60 seconds')",
    )


@check("S10 a scenario has a case of every story rule to check")
def _story_cases(f: Findings) -> None:
    f.some_rows(
        "member of a closed company",
        "SELECT u.id FROM users u JOIN companies c ON c.id = u.company_id"
        " WHERE c.status <> 'ACTIVE'",
    )
    f.some_rows(
        "session of a user who is not ACTIVE (from before the change)",
        "SELECT s.id FROM user_sessions s JOIN users u ON u.id = s.user_id"
        " WHERE u.status <> 'ACTIVE'",
    )
    for rule, events in NOTIFICATION_EVENT_SQL.items():
        types = ", ".join(f"'{t}'" for t in events)
        f.some_rows(
            f"notification of one of {types} ({rule.split()[0]})",
            f"SELECT id FROM notifications WHERE notification_type IN ({types})",
        )
    for event in ("SESSION_STARTED", "SESSION_ENDED", "FAILED_LOGIN"):
        f.some_rows(f"{event} audit log", f"SELECT id FROM audit_logs WHERE event_type = '{event}'")
