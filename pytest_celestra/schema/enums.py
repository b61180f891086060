"""The 13 enum types of the Celestra schema as plain Python enums, without SQLAlchemy;
[`pytest_celestra.schema.models`][pytest_celestra.schema.models] maps them to PostgreSQL's."""

from __future__ import annotations

import enum
from typing import Any, TypeVar

E = TypeVar("E", bound=enum.Enum)


class AgentStatus(enum.Enum):
    ACTIVE = "ACTIVE"
    DISABLED = "DISABLED"
    ARCHIVED = "ARCHIVED"
    DRAFT = "DRAFT"


class AuditEventType(enum.Enum):
    FAILED_LOGIN = "FAILED_LOGIN"
    SUCCESSFUL_LOGIN = "SUCCESSFUL_LOGIN"
    SESSION_STARTED = "SESSION_STARTED"
    SESSION_ENDED = "SESSION_ENDED"
    ROLE_ASSIGNMENT_CHANGE = "ROLE_ASSIGNMENT_CHANGE"
    CONFIGURATION_UPDATE = "CONFIGURATION_UPDATE"
    DATA_EXPORT = "DATA_EXPORT"
    OTHER = "OTHER"


class CompanySize(enum.Enum):
    SMALL = "SMALL"
    MEDIUM = "MEDIUM"
    LARGE = "LARGE"
    ENTERPRISE = "ENTERPRISE"


class CompanyStatus(enum.Enum):
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"
    ARCHIVED = "ARCHIVED"


class CompanyVertical(enum.Enum):
    TECH = "TECH"
    PHARMACEUTICAL = "PHARMACEUTICAL"
    FINANCE = "FINANCE"
    RETAIL = "RETAIL"
    OTHER = "OTHER"


class InvitationStatus(enum.Enum):
    PENDING = "PENDING"
    SENT = "SENT"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"
    ACCEPTED = "ACCEPTED"


class KnowledgeBaseStatus(enum.Enum):
    ACTIVE = "ACTIVE"
    BUILDING = "BUILDING"
    DISABLED = "DISABLED"
    ARCHIVED = "ARCHIVED"
    DRAFT = "DRAFT"


class NotificationDeliveryMethod(enum.Enum):
    IN_APP = "IN_APP"
    EMAIL = "EMAIL"
    SMS = "SMS"
    WEBHOOK = "WEBHOOK"
    PUSH = "PUSH"


class NotificationPriority(enum.Enum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"


class NotificationStatus(enum.Enum):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"


class NotificationType(enum.Enum):
    FAILED_LOGIN_NOTIFICATION = "FAILED_LOGIN_NOTIFICATION"
    SESSION_EXPIRY = "SESSION_EXPIRY"
    ACCOUNT_LOCKED = "ACCOUNT_LOCKED"
    ACCOUNT_UNLOCKED = "ACCOUNT_UNLOCKED"
    PASSWORD_CHANGED = "PASSWORD_CHANGED"
    PASSWORD_EXPIRY = "PASSWORD_EXPIRY"
    NEW_DEVICE_LOGIN = "NEW_DEVICE_LOGIN"
    INVITATION_SENT = "INVITATION_SENT"
    INVITATION_ACCEPTED = "INVITATION_ACCEPTED"
    ROLE_CHANGED = "ROLE_CHANGED"
    KNOWLEDGE_BASE_READY = "KNOWLEDGE_BASE_READY"
    KNOWLEDGE_BASE_FAILED = "KNOWLEDGE_BASE_FAILED"
    AGENT_STATUS_CHANGED = "AGENT_STATUS_CHANGED"
    DATA_EXPORT_READY = "DATA_EXPORT_READY"
    SYSTEM_ANNOUNCEMENT = "SYSTEM_ANNOUNCEMENT"
    MAINTENANCE_SCHEDULED = "MAINTENANCE_SCHEDULED"


class UserRole(enum.Enum):
    SUPER_ADMIN = "SUPER_ADMIN"
    COMPANY_ADMIN = "COMPANY_ADMIN"
    SPACE_ADMIN = "SPACE_ADMIN"
    REGULAR_USER = "REGULAR_USER"


class UserStatus(enum.Enum):
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"
    BLOCKED = "BLOCKED"
    ARCHIVED = "ARCHIVED"


def label_of(value: Any) -> Any:
    """The label of an enum member; anything else (a label your rules add, None) as it is."""
    return getattr(value, "value", value)


def member_of(enum_class: type[E], label: str) -> E | str:
    """`enum_class`'s member of `label`, or `label` itself: one your rules add."""
    member: E | None = enum_class._value2member_map_.get(label)  # type: ignore[assignment]
    return label if member is None else member
