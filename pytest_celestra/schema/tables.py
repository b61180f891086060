"""The 15 tables of the Celestra schema by name, parents first, without SQLAlchemy (cheap to
import); [`pytest_celestra.schema.models`][pytest_celestra.schema.models] checks they agree."""

from __future__ import annotations

ENTITIES: tuple[tuple[str, str], ...] = (
    ("Company", "companies"),
    ("KnowledgeType", "knowledge_types"),
    ("User", "users"),
    ("Agent", "agents"),
    ("KnowledgeBase", "knowledge_bases"),
    ("AgentKnowledgeBase", "agent_knowledge_bases"),
    ("KnowledgeSource", "knowledge_sources"),
    ("AuditLog", "audit_logs"),
    ("FailedLogin", "failed_logins"),
    ("Invitation", "invitations"),
    ("Notification", "notifications"),
    ("PasswordHistory", "password_history"),
    ("UserLockout", "user_lockouts"),
    ("UserSession", "user_sessions"),
    ("AuditChangeLog", "audit_change_logs"),
)
"""(model class name, table name) of each table, parents first."""

TABLES_IN_FK_ORDER: tuple[str, ...] = tuple(table for _, table in ENTITIES)
MODEL_NAMES_IN_FK_ORDER: tuple[str, ...] = tuple(model for model, _ in ENTITIES)
