"""The Celestra schema as SQLAlchemy 2 models: 13 PostgreSQL enum types and 15 tables.

Table, column and enum type names are exactly those of the Celestra schema analysis.
Every table has a client-generated UUID primary key (`id`), so rows can be wired
together and bulk-loaded without a round trip to the database.

ON DELETE behaviour, chosen so that deleting a tenant removes what belongs to it while
the security trail outlives the people it mentions:

* tenant data cascades: companies -> users, agents, knowledge_bases, notifications;
  users -> sessions, invitations, lockouts, password_history, notifications;
  agents / knowledge_bases -> agent_knowledge_bases; knowledge_bases -> knowledge_sources;
  audit_logs -> audit_change_logs.
* the audit trail is kept: audit_logs.user_id, audit_logs.signed_by and
  failed_logins.user_id are SET NULL.
* lookups are protected: knowledge_sources -> knowledge_types is RESTRICT.

Constraint names follow [`NAMING_CONVENTION`][pytest_celestra.schema.models.NAMING_CONVENTION], so
an error names the rule it broke (for example `ck_users_super_admin_has_no_company`).
"""

from __future__ import annotations

import enum
import re
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import INET
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from pytest_celestra.schema import enums, tables
from pytest_celestra.schema.enums import (  # the enums, re-exported (see __all__)
    AgentStatus,
    AuditEventType,
    CompanySize,
    CompanyStatus,
    CompanyVertical,
    InvitationStatus,
    KnowledgeBaseStatus,
    NotificationDeliveryMethod,
    NotificationPriority,
    NotificationStatus,
    NotificationType,
    UserRole,
    UserStatus,
)

__all__ = [
    "ENUM_TYPE_NAMES",
    "MODELS_IN_FK_ORDER",
    "NAMING_CONVENTION",
    "TABLES_IN_FK_ORDER",
    "Agent",
    "AgentKnowledgeBase",
    "AgentStatus",
    "AuditChangeLog",
    "AuditEventType",
    "AuditLog",
    "Base",
    "Company",
    "CompanySize",
    "CompanyStatus",
    "CompanyVertical",
    "FailedLogin",
    "Invitation",
    "InvitationStatus",
    "KnowledgeBase",
    "KnowledgeBaseStatus",
    "KnowledgeSource",
    "KnowledgeType",
    "Notification",
    "NotificationDeliveryMethod",
    "NotificationPriority",
    "NotificationStatus",
    "NotificationType",
    "PasswordHistory",
    "User",
    "UserLockout",
    "UserRole",
    "UserSession",
    "UserStatus",
]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of the Celestra schema; `Base.metadata` holds all 15 tables."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# --- enum types (pytest_celestra.schema.enums) -------------------------------------------------


ENUM_TYPE_NAMES: dict[type[enum.Enum], str] = {
    cls: re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
    for name, cls in vars(enums).items()
    if isinstance(cls, type) and issubclass(cls, enum.Enum) and cls.__module__ == enums.__name__
}
"""PostgreSQL type name of each enum (`UserStatus`: `user_status`), as in the schema analysis."""
# A PostgreSQL enum type whose labels are the Python values.
_ENUMS = {
    cls: Enum(
        cls,
        name=name,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )
    for cls, name in ENUM_TYPE_NAMES.items()
}


# --- column helpers ---------------------------------------------------------------------


def _id() -> Mapped[uuid.UUID]:
    return mapped_column(
        primary_key=True, default=uuid.uuid4, server_default=text("gen_random_uuid()")
    )


def _timestamp(*, nullable: bool = True) -> Mapped[datetime | None]:
    return mapped_column(DateTime(timezone=True), nullable=nullable, server_default=func.now())


def _fk(target: str, *, ondelete: str, nullable: bool = False) -> Mapped[uuid.UUID]:
    return mapped_column(ForeignKey(target, ondelete=ondelete), nullable=nullable, index=True)


def _children(parent: str) -> Any:
    """The rows that reference this one (ON DELETE is the foreign key's business)."""
    return relationship(back_populates=parent, passive_deletes=True)


def _created_before_updated() -> CheckConstraint:
    return CheckConstraint("created_at <= updated_at", name="created_before_updated")


# --- independent tables -----------------------------------------------------------------


class Company(Base):
    __tablename__ = "companies"
    __table_args__ = (_created_before_updated(),)

    id: Mapped[uuid.UUID] = _id()
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    size: Mapped[CompanySize] = mapped_column(_ENUMS[CompanySize])
    vertical: Mapped[CompanyVertical] = mapped_column(_ENUMS[CompanyVertical])
    status: Mapped[CompanyStatus] = mapped_column(_ENUMS[CompanyStatus])
    created_at: Mapped[datetime | None] = _timestamp()
    updated_at: Mapped[datetime | None] = _timestamp()

    users: Mapped[list[User]] = _children("company")
    agents: Mapped[list[Agent]] = _children("company")
    knowledge_bases: Mapped[list[KnowledgeBase]] = _children("company")

    def __repr__(self) -> str:
        return f"<Company {self.name!r}>"


class KnowledgeType(Base):
    __tablename__ = "knowledge_types"
    __table_args__ = (UniqueConstraint("name"), _created_before_updated())

    id: Mapped[uuid.UUID] = _id()
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime | None] = _timestamp()
    updated_at: Mapped[datetime | None] = _timestamp()

    sources: Mapped[list[KnowledgeSource]] = relationship(back_populates="knowledge_type")

    def __repr__(self) -> str:
        return f"<KnowledgeType {self.name!r}>"


# --- first level ------------------------------------------------------------------------


class Agent(Base):
    __tablename__ = "agents"
    __table_args__ = (_created_before_updated(),)

    id: Mapped[uuid.UUID] = _id()
    company_id: Mapped[uuid.UUID] = _fk("companies.id", ondelete="CASCADE")
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    agent_protocol: Mapped[str | None] = mapped_column(Text)
    status: Mapped[AgentStatus] = mapped_column(_ENUMS[AgentStatus])
    created_at: Mapped[datetime | None] = _timestamp()
    updated_at: Mapped[datetime | None] = _timestamp()

    company: Mapped[Company] = relationship(back_populates="agents")
    knowledge_base_links: Mapped[list[AgentKnowledgeBase]] = _children("agent")

    def __repr__(self) -> str:
        return f"<Agent {self.name!r}>"


class KnowledgeBase(Base):
    __tablename__ = "knowledge_bases"
    __table_args__ = (_created_before_updated(),)

    id: Mapped[uuid.UUID] = _id()
    company_id: Mapped[uuid.UUID] = _fk("companies.id", ondelete="CASCADE")
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[KnowledgeBaseStatus] = mapped_column(_ENUMS[KnowledgeBaseStatus])
    created_at: Mapped[datetime | None] = _timestamp()
    updated_at: Mapped[datetime | None] = _timestamp()

    company: Mapped[Company] = relationship(back_populates="knowledge_bases")
    sources: Mapped[list[KnowledgeSource]] = _children("knowledge_base")
    agent_links: Mapped[list[AgentKnowledgeBase]] = _children("knowledge_base")

    def __repr__(self) -> str:
        return f"<KnowledgeBase {self.name!r}>"


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        Index("uq_users_email_lower", func.lower(text("email")), unique=True),
        CheckConstraint(
            "(role = 'SUPER_ADMIN') = (company_id IS NULL)", name="super_admin_has_no_company"
        ),
        _created_before_updated(),
    )

    id: Mapped[uuid.UUID] = _id()
    company_id: Mapped[uuid.UUID | None] = _fk("companies.id", ondelete="CASCADE", nullable=True)
    role: Mapped[UserRole] = mapped_column(_ENUMS[UserRole])
    email: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    password_hash: Mapped[str] = mapped_column(Text)
    status: Mapped[UserStatus] = mapped_column(_ENUMS[UserStatus])
    created_at: Mapped[datetime | None] = _timestamp()
    updated_at: Mapped[datetime | None] = _timestamp()

    company: Mapped[Company | None] = relationship(back_populates="users")
    sessions: Mapped[list[UserSession]] = _children("user")
    invitations: Mapped[list[Invitation]] = _children("user")
    password_history: Mapped[list[PasswordHistory]] = _children("user")
    lockouts: Mapped[list[UserLockout]] = _children("user")
    notifications: Mapped[list[Notification]] = _children("user")

    def __repr__(self) -> str:
        return f"<User {self.email!r} {self.role.value}>"


# --- second level -----------------------------------------------------------------------


class AgentKnowledgeBase(Base):
    __tablename__ = "agent_knowledge_bases"
    __table_args__ = (UniqueConstraint("agent_id", "knowledge_base_id"),)

    id: Mapped[uuid.UUID] = _id()
    agent_id: Mapped[uuid.UUID] = _fk("agents.id", ondelete="CASCADE")
    knowledge_base_id: Mapped[uuid.UUID] = _fk("knowledge_bases.id", ondelete="CASCADE")
    created_at: Mapped[datetime | None] = _timestamp()

    agent: Mapped[Agent] = relationship(back_populates="knowledge_base_links")
    knowledge_base: Mapped[KnowledgeBase] = relationship(back_populates="agent_links")


class KnowledgeSource(Base):
    __tablename__ = "knowledge_sources"
    __table_args__ = (_created_before_updated(),)

    id: Mapped[uuid.UUID] = _id()
    knowledge_base_id: Mapped[uuid.UUID] = _fk("knowledge_bases.id", ondelete="CASCADE")
    knowledge_type_id: Mapped[uuid.UUID] = _fk("knowledge_types.id", ondelete="RESTRICT")
    name: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime | None] = _timestamp()
    updated_at: Mapped[datetime | None] = _timestamp()

    knowledge_base: Mapped[KnowledgeBase] = relationship(back_populates="sources")
    knowledge_type: Mapped[KnowledgeType] = relationship(back_populates="sources")


class AuditLog(Base):
    __tablename__ = "audit_logs"

    id: Mapped[uuid.UUID] = _id()
    user_id: Mapped[uuid.UUID | None] = _fk("users.id", ondelete="SET NULL", nullable=True)
    event_type: Mapped[AuditEventType] = mapped_column(_ENUMS[AuditEventType])
    event_description: Mapped[str | None] = mapped_column(Text)
    ip_address: Mapped[str | None] = mapped_column(INET)
    signed_by: Mapped[uuid.UUID | None] = _fk("users.id", ondelete="SET NULL", nullable=True)
    digital_signature: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    table_name: Mapped[str | None] = mapped_column(Text)
    record_id: Mapped[uuid.UUID | None] = mapped_column()
    group_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    created_at: Mapped[datetime | None] = _timestamp()

    user: Mapped[User | None] = relationship(foreign_keys=[user_id])
    signer: Mapped[User | None] = relationship(foreign_keys=[signed_by])
    changes: Mapped[list[AuditChangeLog]] = _children("audit_log")


class FailedLogin(Base):
    __tablename__ = "failed_logins"

    id: Mapped[uuid.UUID] = _id()
    user_id: Mapped[uuid.UUID | None] = _fk("users.id", ondelete="SET NULL", nullable=True)
    ip_address: Mapped[str | None] = mapped_column(INET)
    attempted_at: Mapped[datetime | None] = _timestamp()
    failure_reason: Mapped[str | None] = mapped_column(Text)

    user: Mapped[User | None] = relationship()


class Invitation(Base):
    __tablename__ = "invitations"
    __table_args__ = (
        UniqueConstraint("token"),
        CheckConstraint("resend_count >= 0", name="resend_count_not_negative"),
        CheckConstraint("expires_at > sent_at", name="expires_after_sent"),
        _created_before_updated(),
    )

    id: Mapped[uuid.UUID] = _id()
    user_id: Mapped[uuid.UUID] = _fk("users.id", ondelete="CASCADE")
    token: Mapped[str] = mapped_column(Text)
    status: Mapped[InvitationStatus] = mapped_column(_ENUMS[InvitationStatus])
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resend_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime | None] = _timestamp()
    updated_at: Mapped[datetime | None] = _timestamp()

    user: Mapped[User] = relationship(back_populates="invitations")


class Notification(Base):
    __tablename__ = "notifications"
    __table_args__ = (_created_before_updated(),)

    id: Mapped[uuid.UUID] = _id()
    user_id: Mapped[uuid.UUID] = _fk("users.id", ondelete="CASCADE")
    company_id: Mapped[uuid.UUID | None] = _fk("companies.id", ondelete="CASCADE", nullable=True)
    notification_type: Mapped[NotificationType] = mapped_column(_ENUMS[NotificationType])
    title: Mapped[str] = mapped_column(Text)
    message: Mapped[str] = mapped_column(Text)
    priority: Mapped[NotificationPriority] = mapped_column(_ENUMS[NotificationPriority])
    status: Mapped[NotificationStatus] = mapped_column(_ENUMS[NotificationStatus])
    delivery_method: Mapped[NotificationDeliveryMethod] = mapped_column(
        _ENUMS[NotificationDeliveryMethod]
    )
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    action_url: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime | None] = _timestamp()
    updated_at: Mapped[datetime | None] = _timestamp()

    user: Mapped[User] = relationship(back_populates="notifications")
    company: Mapped[Company | None] = relationship()


class PasswordHistory(Base):
    __tablename__ = "password_history"
    __table_args__ = (UniqueConstraint("user_id", "password_hash"),)

    id: Mapped[uuid.UUID] = _id()
    user_id: Mapped[uuid.UUID] = _fk("users.id", ondelete="CASCADE")
    password_hash: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime | None] = _timestamp()

    user: Mapped[User] = relationship(back_populates="password_history")


class UserLockout(Base):
    __tablename__ = "user_lockouts"
    __table_args__ = (
        CheckConstraint("failed_attempts >= 1", name="failed_attempts_positive"),
        CheckConstraint("lockout_end > lockout_start", name="ends_after_start"),
        _created_before_updated(),
    )

    id: Mapped[uuid.UUID] = _id()
    user_id: Mapped[uuid.UUID] = _fk("users.id", ondelete="CASCADE")
    lockout_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lockout_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str | None] = mapped_column(Text)
    failed_attempts: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime | None] = _timestamp()
    updated_at: Mapped[datetime | None] = _timestamp()

    user: Mapped[User] = relationship(back_populates="lockouts")


class UserSession(Base):
    __tablename__ = "user_sessions"
    __table_args__ = (
        UniqueConstraint("session_token"),
        CheckConstraint("expires_at > created_at", name="expires_after_created"),
    )

    id: Mapped[uuid.UUID] = _id()
    user_id: Mapped[uuid.UUID] = _fk("users.id", ondelete="CASCADE")
    session_token: Mapped[str] = mapped_column(Text)
    ip_address: Mapped[str | None] = mapped_column(INET)
    user_agent: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime | None] = _timestamp()

    user: Mapped[User] = relationship(back_populates="sessions")


# --- third level ------------------------------------------------------------------------


class AuditChangeLog(Base):
    __tablename__ = "audit_change_logs"

    id: Mapped[uuid.UUID] = _id()
    audit_log_id: Mapped[uuid.UUID] = _fk("audit_logs.id", ondelete="CASCADE")
    column_name: Mapped[str] = mapped_column(Text)
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime | None] = _timestamp()

    audit_log: Mapped[AuditLog] = relationship(back_populates="changes")


MODELS_IN_FK_ORDER: tuple[type[Base], ...] = tuple(globals()[model] for model, _ in tables.ENTITIES)
"""The 15 models in an order that respects every foreign key (parents first)."""

TABLES_IN_FK_ORDER: tuple[str, ...] = tuple(m.__tablename__ for m in MODELS_IN_FK_ORDER)
# The plain names that cheap modules use (pytest_celestra.schema.tables) must be these.
if TABLES_IN_FK_ORDER != tables.TABLES_IN_FK_ORDER:
    raise AssertionError("pytest_celestra.schema.tables.ENTITIES differs from the models")
