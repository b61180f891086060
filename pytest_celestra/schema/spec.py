"""The data of the Celestra spec: weights, shares, time windows and catalogues.

Pure data, read by [`CelestraProvider`][pytest_celestra.rows.providers.CelestraProvider] and
[`story`][pytest_celestra.rows.story], which both data paths call: change a figure once and
both follow. Times are offsets in seconds from a reference instant (negative = past): the
scenario's anchor, or "now" for the factories.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_celestra.schema import vocabulary as words
from pytest_celestra.schema.enums import (
    AgentStatus,
    AuditEventType,
    CompanySize,
    CompanyStatus,
    CompanyVertical,
    InvitationStatus,
    KnowledgeBaseStatus,
    NotificationDeliveryMethod,
    NotificationStatus,
    NotificationType,
    UserRole,
    UserStatus,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

PLATFORM_DOMAIN = words.PLATFORM_DOMAIN
"""Domain of the platform's own staff; super admins have their email there."""
KNOWLEDGE_TYPES = words.KNOWLEDGE_TYPES
"""The knowledge types a scenario uses, most common first: name -> (description, weight)."""
NOTIFICATIONS = words.NOTIFICATIONS
"""Notification type -> (title, messages, priority weights, action_url or None)."""

MINUTE = 60
HOUR = 60 * MINUTE
DAY = 24 * HOUR


# --- weights (module constants so tests can check both paths use them) -----------------

COMPANY_SIZE_WEIGHTS: Mapping[CompanySize, int] = {
    CompanySize.SMALL: 40,
    CompanySize.MEDIUM: 30,
    CompanySize.LARGE: 20,
    CompanySize.ENTERPRISE: 10,
}
COMPANY_VERTICAL_WEIGHTS: Mapping[CompanyVertical, int] = {
    CompanyVertical.TECH: 35,
    CompanyVertical.FINANCE: 20,
    CompanyVertical.PHARMACEUTICAL: 15,
    CompanyVertical.RETAIL: 15,
    CompanyVertical.OTHER: 15,
}
COMPANY_STATUS_WEIGHTS: Mapping[CompanyStatus, int] = {
    CompanyStatus.ACTIVE: 85,
    CompanyStatus.SUSPENDED: 10,
    CompanyStatus.ARCHIVED: 5,
}
COMPANY_SIZE_HEADCOUNT: Mapping[CompanySize, float] = {
    CompanySize.SMALL: 1.0,
    CompanySize.MEDIUM: 2.5,
    CompanySize.LARGE: 6.0,
    CompanySize.ENTERPRISE: 15.0,
}
"""How many members (users, agents, knowledge bases) a company of each size has, relatively."""
USER_ROLE_WEIGHTS: Mapping[UserRole, int] = {
    UserRole.COMPANY_ADMIN: 5,
    UserRole.SPACE_ADMIN: 15,
    UserRole.REGULAR_USER: 80,
}
"""Roles of company members; SUPER_ADMIN is not drawn (it is a trait / a fixed share)."""
USER_STATUS_WEIGHTS: Mapping[UserStatus, int] = {
    UserStatus.ACTIVE: 82,
    UserStatus.SUSPENDED: 7,
    UserStatus.BLOCKED: 5,
    UserStatus.ARCHIVED: 6,
}
SUPER_ADMIN_SHARE = 0.01
"""Share of all users who are platform super admins (at least one always exists)."""
AGENT_STATUS_WEIGHTS: Mapping[AgentStatus, int] = {
    AgentStatus.ACTIVE: 65,
    AgentStatus.DRAFT: 15,
    AgentStatus.DISABLED: 12,
    AgentStatus.ARCHIVED: 8,
}
AGENT_PROTOCOL_WEIGHTS: Mapping[str, int] = {
    "MCP": 30,
    "OpenAI Assistants": 20,
    "A2A": 15,
    "REST webhook": 15,
    "LangGraph": 8,
    "Amazon Bedrock Agents": 7,
    "gRPC": 5,
}
KNOWLEDGE_BASE_STATUS_WEIGHTS: Mapping[KnowledgeBaseStatus, int] = {
    KnowledgeBaseStatus.ACTIVE: 60,
    KnowledgeBaseStatus.BUILDING: 12,
    KnowledgeBaseStatus.DRAFT: 12,
    KnowledgeBaseStatus.DISABLED: 8,
    KnowledgeBaseStatus.ARCHIVED: 8,
}
AUDIT_EVENT_WEIGHTS: Mapping[AuditEventType, int] = {
    AuditEventType.SUCCESSFUL_LOGIN: 30,
    AuditEventType.SESSION_STARTED: 20,
    AuditEventType.SESSION_ENDED: 15,
    AuditEventType.FAILED_LOGIN: 15,
    AuditEventType.DATA_EXPORT: 5,
    AuditEventType.OTHER: 15,
}
"""Event types a factory draws by default (the row-changing ones come from traits)."""
CHANGE_EVENT_TYPES = frozenset(
    {AuditEventType.ROLE_ASSIGNMENT_CHANGE, AuditEventType.CONFIGURATION_UPDATE}
)
"""Event types that change a row: only these carry table_name, record_id and change logs."""
SIGNED_EVENT_TYPES = CHANGE_EVENT_TYPES | {AuditEventType.DATA_EXPORT}
"""Event types an admin signs (signed_by, digital_signature and reason are set)."""
CHANGE_TABLE_WEIGHTS: Mapping[str, int] = {
    "users": 35,
    "agents": 30,
    "knowledge_bases": 25,
    "companies": 10,
}
"""Tables a row-changing event changes (only users for ROLE_ASSIGNMENT_CHANGE)."""
ROLE_CHANGE_SHARE = 0.5
"""Share of the changes of a user that are role assignments (the others: profile updates)."""
CHANGE_LOG_SHARE = 0.35
"""Share of audit logs that change a row, at least (more when a volume asks for many
change logs: each row-changing audit log records at most one change per column)."""
CHANGE_GROUP_SIZES = (1, 1, 1, 2, 2, 3)
"""An administrator's configuration session changes this many rows, one audit log each."""
AUDIT_ACTIONS: Mapping[str, tuple[AuditEventType, ...]] = {
    "sign_in": (AuditEventType.SUCCESSFUL_LOGIN, AuditEventType.SESSION_STARTED),
    "sign_out": (AuditEventType.SESSION_ENDED,),
    "failed_sign_in": (AuditEventType.FAILED_LOGIN,),
    "lockout": (
        AuditEventType.FAILED_LOGIN,
        AuditEventType.FAILED_LOGIN,
        AuditEventType.FAILED_LOGIN,
        AuditEventType.OTHER,
    ),
    "data_export": (AuditEventType.DATA_EXPORT, AuditEventType.OTHER),
    "other": (AuditEventType.OTHER,),
}
"""One user action that changes no row produces this group of audit logs (one group_id
when there are several)."""
AUDIT_ACTION_WEIGHTS: Mapping[str, int] = {
    "sign_in": 45,
    "sign_out": 15,
    "failed_sign_in": 15,
    "lockout": 4,
    "data_export": 8,
    "other": 13,
}
UNKNOWN_EMAIL_SHARE = 0.12
"""Share of FAILED_LOGIN events (audit logs and failed_logins) for an email nobody has."""
KNOWN_USER_FAILURE_WEIGHTS: Mapping[str, int] = {
    "Invalid password": 70,
    "MFA code rejected": 12,
    "Expired password": 8,
    "Account locked": 6,
    "Account suspended": 4,
}
UNKNOWN_EMAIL_REASON = "Unknown email address"
"""failure_reason of a failed login whose email matches no user (user_id is NULL)."""
NOTIFICATION_STATUS_WEIGHTS: Mapping[NotificationStatus, int] = {
    NotificationStatus.DELIVERED: 75,
    NotificationStatus.PENDING: 15,
    NotificationStatus.FAILED: 10,
}
NOTIFICATION_READ_SHARE = 0.6
"""Share of delivered notifications that were read."""
NOTIFICATION_DELIVERY_WEIGHTS: Mapping[NotificationDeliveryMethod, int] = {
    NotificationDeliveryMethod.IN_APP: 45,
    NotificationDeliveryMethod.EMAIL: 35,
    NotificationDeliveryMethod.PUSH: 10,
    NotificationDeliveryMethod.SMS: 5,
    NotificationDeliveryMethod.WEBHOOK: 5,
}
NOTIFICATION_TYPE_WEIGHTS: Mapping[NotificationType, int] = {
    NotificationType.NEW_DEVICE_LOGIN: 12,
    NotificationType.FAILED_LOGIN_NOTIFICATION: 10,
    NotificationType.KNOWLEDGE_BASE_READY: 10,
    NotificationType.SYSTEM_ANNOUNCEMENT: 8,
    NotificationType.SESSION_EXPIRY: 8,
    NotificationType.PASSWORD_EXPIRY: 7,
    NotificationType.AGENT_STATUS_CHANGED: 7,
    NotificationType.INVITATION_ACCEPTED: 6,
    NotificationType.INVITATION_SENT: 6,
    NotificationType.PASSWORD_CHANGED: 5,
    NotificationType.ROLE_CHANGED: 5,
    NotificationType.DATA_EXPORT_READY: 4,
    NotificationType.KNOWLEDGE_BASE_FAILED: 4,
    NotificationType.MAINTENANCE_SCHEDULED: 3,
    NotificationType.ACCOUNT_LOCKED: 3,
    NotificationType.ACCOUNT_UNLOCKED: 2,
}
NOTIFICATION_EXPIRY_WEIGHTS: Mapping[str, int] = {"past": 55, "future": 45}
"""Notifications whose expires_at is already past vs still ahead."""
SESSION_STATE_WEIGHTS: Mapping[str, int] = {"expired": 60, "active": 28, "long": 12}
"""expired: ended before the reference; active: started before it, ends >= 2 days after;
long: ends more than 7 days after ("remember me")."""
INVITATION_STATE_WEIGHTS: Mapping[str, int] = {
    "accepted": 45,
    "open": 20,
    "expired": 15,
    "far": 10,
    "cancelled": 10,
}
"""open: sent <= reference < expires (>= 2 days ahead); far: expires > 7 days ahead."""
INVITATION_STATUS_FOR_STATE: Mapping[str, tuple[InvitationStatus, ...]] = {
    "accepted": (InvitationStatus.ACCEPTED,),
    "open": (InvitationStatus.SENT, InvitationStatus.SENT, InvitationStatus.PENDING),
    "expired": (InvitationStatus.EXPIRED,),
    "far": (InvitationStatus.SENT,),
    "cancelled": (InvitationStatus.CANCELLED,),
}
LOCKOUT_STATE_WEIGHTS: Mapping[str, int] = {"ended": 70, "active": 18, "long": 12}
"""ended: in the past; active: ends >= 2 days after the reference; long: > 7 days after."""
LOCKOUT_THRESHOLD_WEIGHTS: Mapping[int, int] = {3: 20, 5: 60, 10: 20}
"""Failed attempts after which an account locks; failed_attempts is at least the
number of failed logins recorded in the 30 minutes before lockout_start."""
LOCKOUT_BURST_WINDOW = 30 * MINUTE
"""Window before lockout_start in which a lockout's failed logins lie."""

# --- time windows (offsets in seconds from the reference instant) -----------------------

COMPANY_CREATED = (-3 * 365 * DAY, -400 * DAY)
SUPER_ADMIN_CREATED = (-1500 * DAY, -1100 * DAY)
KNOWLEDGE_TYPE_CREATED = -1600 * DAY
MEMBER_CREATED_LATEST = -30 * DAY
"""Users, agents and knowledge bases exist at least this long before the reference."""
FIRST_ADMIN_DELAY = 2 * DAY
"""A company's first admin joins within this long after the company is created."""
ACTIVITY_EARLIEST = -365 * DAY
"""Activity (logins, audit, notifications) reaches back at most one year."""

CHANGEABLE_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "users": ("role", "status", "name"),
    "agents": ("status", "agent_protocol", "name", "description"),
    "knowledge_bases": ("status", "name", "description"),
    "companies": ("status", "size", "vertical", "description"),
}
"""Columns an audit change may touch, per table (at least 3 each)."""
MOST_CHANGES_PER_AUDIT_LOG = min(len(columns) for columns in CHANGEABLE_COLUMNS.values())
"""Columns a row-changing audit log changes at most (each once): the fewest of a table."""

# --- windows of one row relative to its parents (pytest_celestra.rows.story applies them) -----

LAST_MOMENT = -MINUTE
"""Nothing happens later than this: a minute before the reference instant."""
ACTIVITY_MARGIN = MINUTE
"""Nobody acts, and nothing changes a row, in this last stretch before the user left
ACTIVE or the row closed."""
KNOWLEDGE_TYPE_SPACING = DAY
"""The i-th catalogue type was created i times this after
[`KNOWLEDGE_TYPE_CREATED`][pytest_celestra.schema.spec.KNOWLEDGE_TYPE_CREATED]."""
HEADCOUNT_SPREAD = (0.7, 0.6)
"""A company's weight in the spread of its members: its size's headcount times a factor
drawn uniformly from `low` to `low + width` (`(low, width)`)."""
FRESH_COMPANY_NAMES = 50
"""Fresh names a company draws before its name gets a number (its domain is taken)."""
SOURCE_POPULARITY = 1.5
"""Shape (Pareto alpha) of how many sources the knowledge bases have beyond one each: a few
popular ones have many."""
LINK_CREATED_LATEST = -DAY
"""An agent-knowledge base link, a knowledge source and a password change are at least
this old."""
PASSWORD_CHANGED_LATEST = -DAY
STATUS_CHANGED = (MEMBER_CREATED_LATEST, -HOUR)
"""When a company, user, agent or knowledge base that is not ACTIVE changed its status
(its `updated_at`): after every member row was created, at least an hour ago."""
CLOSED_HEADCOUNT_SHARE = 0.25
"""Closed companies hold at most this share of the headcount: the largest closed ones
reopen, so most users stay ACTIVE at any volume."""

# --- who acts and who signs ---------------------------------------------------------------

SIGNER_SUPER_ADMIN_SHARE = 0.3
"""Share of signed audit logs a super admin signs rather than an admin of the user's
company (a platform user's are always signed by a super admin)."""
ACTOR_SUPER_ADMIN_SHARE = 0.2
"""Share of admin actions (data exports, row changes) a super admin does rather than a
company admin."""
FIRST_CHANGED_COLUMN: Mapping[AuditEventType, str] = {
    AuditEventType.ROLE_ASSIGNMENT_CHANGE: "role",
}
"""The column a row-changing event changes first (its other changes are drawn)."""
ACTION_STEP = (1, 5)
"""Seconds between the audit logs of one action (drawn in this range each time)."""
SIGN_IN_LEAD = 10
"""A sign-in's SUCCESSFUL_LOGIN and SESSION_STARTED lie this many seconds before (at most)
the session they start."""

# --- lockouts -------------------------------------------------------------------------------

LOCKOUT_BURST = (1, 5)
"""How many failed logins a lockout's burst records before its start (at most its
`failed_attempts`)."""
LOCKOUT_BURST_SPARE = (2, 3)
"""Of the failed logins a volume has beyond one per lockout and the unknown emails, at
most this fraction (numerator, denominator) lengthens the lockouts' bursts."""

# --- notifications and invitations -----------------------------------------------------------

NOTIFICATION_DELAY = (1, 10 * MINUTE)
"""Delay from an event to the notification that reports it (seconds)."""
PASSWORD_EXPIRY_NOTICE = (76 * DAY, 90 * DAY)
"""A PASSWORD_EXPIRY notice comes this long after the password in use was set (the user's
creation or last password change), before the next change."""
EXPIRED_NOTICE_LATEST = -2 * DAY
"""A notification created later than this cannot have expired by now (the "past" expiry
of `providers.CelestraProvider.notification_times` starts no later)."""
INVITATION_VALIDITY = 7 * DAY
"""How long an invitation stays open after it is sent."""

# --- column values drawn by the provider (pytest_celestra.rows.providers) ---------------------

IP_ADDRESS_SHARES = (0.1, 0.18)
"""Client IP addresses: IPv6 below the first share, an office-network IPv4 below the
second, else a public IPv4."""
COMPANY_NAME_SHARES = (0.45, 0.85)
"""Company names: "Adjective Noun" below the first share, a surname below the second,
else "Name & Name"."""
COMPANY_LEGAL_SUFFIX_SHARE = 0.25
"""Share of company names that end in a legal suffix ("Inc.", "GmbH", ...)."""
TICKET_REASON_SHARE = 0.3
"""Share of signed audit logs whose stated reason is a ticket reference."""
INVITATION_NOT_RESENT_SHARE = 0.7
"""Share of invitations never resent; the others were resent as often as
[`INVITATION_RESENDS`][pytest_celestra.schema.spec.INVITATION_RESENDS]."""
INVITATION_RESENDS = (1, 3)
"""How often a resent invitation was resent (drawn in this range)."""

# --- time windows of sessions, invitations, lockouts and notifications by state ---------

MIN_VALIDITY = HOUR
"""A session, invitation or notification expires at least this long after it was created or sent."""
SESSION_EXPIRED_CREATED = (-180 * DAY, -8 * DAY)
"""An expired session was created in this window (recent ones more likely)."""
SESSION_EXPIRED_LENGTH = (HOUR, 7 * DAY)
"""An expired session lasted this long."""
SESSION_ACTIVE_CREATED_EARLIEST = -DAY
"""An active session was created at most this long ago."""
SESSION_ACTIVE_EXPIRES = (2 * DAY + HOUR, 7 * DAY)
"""An active session expires in this window from now."""
SESSION_LONG_CREATED_EARLIEST = -3 * DAY
"""A long ("remember me") session was created at most this long ago."""
SESSION_LONG_EXPIRES = (8 * DAY, 30 * DAY)
"""A long ("remember me") session expires in this window from now."""
INVITATION_OPEN_SENT_EARLIEST = -5 * DAY + HOUR
"""An open invitation was sent at most this long ago (so it is open for two more days at least)."""
INVITATION_FAR_SENT_EARLIEST = -3 * DAY
"""An invitation with a far expiry was sent at most this long ago."""
INVITATION_FAR_VALIDITY = 30 * DAY
"""How long an invitation with a far expiry stays open after it is sent."""
INVITATION_SENT_LATEST: Mapping[str, int] = {
    "expired": -10 * DAY,
    "accepted": -DAY,
    "cancelled": -HOUR,
}
"""The latest an expired, accepted or cancelled invitation was sent."""
INVITATION_CREATED_LEAD = 10 * MINUTE
"""An invitation is created at most this long before it is sent."""
INVITATION_ANSWERED = (MINUTE, 3 * DAY)
"""An accepted or cancelled invitation was answered (its `updated_at`) this long after it
was sent."""
LOCKOUT_AFTER_CREATED = HOUR
"""A lockout starts at least this long after its user was created (room for the failed logins)."""
LOCKOUT_ENDED_START_LATEST = -2 * DAY
"""An ended lockout started at least this long ago."""
LOCKOUT_ENDED_LENGTH = (15 * MINUTE, DAY)
"""An ended lockout lasted this long."""
LOCKOUT_ACTIVE_START_EARLIEST = -DAY
"""An active lockout started at most this long ago."""
LOCKOUT_ACTIVE_END = (2 * DAY + HOUR, 6 * DAY)
"""An active lockout ends in this window from now."""
LOCKOUT_LONG_START_EARLIEST = -3 * DAY
"""A long lockout started at most this long ago."""
LOCKOUT_LONG_END = (8 * DAY, 30 * DAY)
"""A long lockout ends in this window from now."""
LOCKOUT_MIN_LENGTH = MINUTE
"""A lockout lasts at least this long."""
NOTIFICATION_FUTURE_CREATED_EARLIEST = -30 * DAY
"""A notification that has not expired yet was created at most this long ago."""
NOTIFICATION_FUTURE_EXPIRES = (2 * DAY + HOUR, 90 * DAY)
"""A notification that has not expired yet expires in this window from now."""
NOTIFICATION_PAST_LIFETIME = (HOUR, 30 * DAY)
"""An expired notification expired this long after it was created."""
NOTIFICATION_EXPIRED_LATEST = -HOUR
"""An expired notification expired at least this long ago."""
NOTIFICATION_DELIVERED_WITHIN = 5 * MINUTE
"""A DELIVERED notification was delivered at most this long after it was created."""
NOTIFICATION_READ_AFTER = (MINUTE, 3 * DAY)
"""A read notification was read this long after it was delivered."""
NOTIFICATION_FAILED_WITHIN = 15 * MINUTE
"""A FAILED notification failed at most this long after it was created."""
