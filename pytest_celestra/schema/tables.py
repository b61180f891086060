"""The 15 tables of the Celestra schema by name, parents first: plain strings, no SQLAlchemy.

For the modules that need the tables' names and order but not their columns (volumes, the
`celestra_<entity>` fixtures), so importing them stays cheap.
[`pytest_celestra.schema.models`][pytest_celestra.schema.models] checks at import that its models
agree.
"""

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
"""(model class name, table name) of each table, in an order that respects every
foreign key (parents first)."""

TABLES_IN_FK_ORDER: tuple[str, ...] = tuple(table for _, table in ENTITIES)
"""Table names in FK order."""
MODEL_NAMES_IN_FK_ORDER: tuple[str, ...] = tuple(model for model, _ in ENTITIES)
"""Model class names in FK order."""
