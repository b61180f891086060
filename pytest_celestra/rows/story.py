"""One story across tables: the cross-table rules both data paths follow (the tenant
lifecycle, notifications that report real events, an audit trail that agrees with the
activity tables).

The scenario ([`pytest_celestra.rows.scenario`][pytest_celestra.rows.scenario]) and the
factories ([`pytest_celestra.rows.factories`][pytest_celestra.rows.factories]) both call
these, so a rule lives here once; `docs/realism.md` states each in a sentence and an SQL
check. Times are offsets in seconds from a reference instant.
"""

from __future__ import annotations

import itertools
from collections import Counter
from typing import TYPE_CHECKING, TypeVar

from pytest_celestra.rows.providers import company_domain
from pytest_celestra.schema import spec
from pytest_celestra.schema.models import (
    AgentStatus,
    CompanyStatus,
    KnowledgeBaseStatus,
    NotificationType,
    UserStatus,
)
from pytest_celestra.schema.spec import (
    CLOSED_HEADCOUNT_SHARE,
    MINUTE,
    NOTIFICATION_DELAY,
    PASSWORD_EXPIRY_NOTICE,
    STATUS_CHANGED,
)

if TYPE_CHECKING:
    import random
    from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

    from pytest_celestra.rows.providers import CelestraProvider
    from pytest_celestra.schema.models import AuditEventType, CompanyVertical

S = TypeVar("S")

# --- tenant lifecycle ---------------------------------------------------------------------

LIVE_AGENT_STATUSES = frozenset({AgentStatus.ACTIVE})
"""Agent statuses of an agent in service; a closed company has none."""
LIVE_KNOWLEDGE_BASE_STATUSES = frozenset({KnowledgeBaseStatus.ACTIVE, KnowledgeBaseStatus.BUILDING})
"""Knowledge base statuses of one in service or being built; a closed company has none."""
RETIRED_STATUSES = frozenset({"DISABLED", "ARCHIVED"})
"""Agent and knowledge base statuses switched off at `updated_at`: nothing is linked after it."""
OPEN_INVITATION_STATES = frozenset({"open", "far"})
"""Invitation states open now: only for ACTIVE users."""
LIVE_SESSION_STATES = frozenset({"active", "long"})
"""Session states valid now: only for ACTIVE users."""


def state_of_user(
    draw: Callable[[], S],
    live: Collection[S],
    active: bool,
    fits: Collection[S] | None = None,
) -> S:
    """The state of a user's session, invitation or lockout: `draw`n, but none of the `live`
    states for a user who is not `active`.

    With `fits` (the states whose window holds a known moment:
    [`states_holding`][pytest_celestra.rows.story.states_holding]), one of them, unless none
    is allowed; the user's status wins.
    """
    allowed = [s for s in fits if active or s not in live] if fits else None
    state = draw()
    while (not active and state in live) if not allowed else state not in allowed:
        state = draw()
    return state


def states_holding(
    moment: int, states: Iterable[str], window: Callable[[str], tuple[int, int]]
) -> list[str]:
    """The `states` whose time `window` (earliest, latest) holds `moment`."""
    return [state for state in states if (w := window(state))[0] <= moment <= w[1]]


def mostly_open(statuses: Sequence[CompanyStatus], weights: Sequence[float]) -> list[CompanyStatus]:
    """`statuses`, the largest closed companies reopened until the closed ones hold at most
    [`CLOSED_HEADCOUNT_SHARE`][pytest_celestra.schema.spec.CLOSED_HEADCOUNT_SHARE] of the
    headcount (`weights`)."""
    result = list(statuses)
    closed = [i for i, status in enumerate(result) if status is not CompanyStatus.ACTIVE]
    headcount = sum(weights[i] for i in closed)
    for i in sorted(closed, key=lambda i: (-weights[i], i)):
        if headcount <= CLOSED_HEADCOUNT_SHARE * sum(weights):
            break
        result[i] = CompanyStatus.ACTIVE
        headcount -= weights[i]
    return result


def mostly_active(statuses: Sequence[UserStatus], drawn: Sequence[bool]) -> list[UserStatus]:
    """`statuses` of users, the last `drawn` ones that are not ACTIVE made ACTIVE until
    most users are, keeping one of each status (a small volume's coverings and closed
    companies could leave half the users out of service)."""
    result = list(statuses)
    counts = Counter(result)
    for i in reversed(range(len(result))):
        if counts[UserStatus.ACTIVE] * 2 > len(result):
            break
        status = result[i]
        if drawn[i] and status is not UserStatus.ACTIVE and counts[status] > 1:
            result[i] = UserStatus.ACTIVE
            counts[status] -= 1
            counts[UserStatus.ACTIVE] += 1
    return result


def _follow_company(
    company: CompanyStatus | None, drawn: S, live: Collection[S], closed: tuple[S, S]
) -> S:
    """`drawn`, or, when it is `live` and its company closed, `closed` (SUSPENDED, ARCHIVED)."""
    if company in (None, CompanyStatus.ACTIVE) or drawn not in live:
        return drawn
    return closed[company is CompanyStatus.ARCHIVED]


def member_status(company: CompanyStatus | None, drawn: UserStatus) -> UserStatus:
    """The status of a member of a company in status `company` who would be `drawn`."""
    closed = (UserStatus.SUSPENDED, UserStatus.ARCHIVED)
    return _follow_company(company, drawn, {UserStatus.ACTIVE}, closed)


def agent_status(company: CompanyStatus | None, drawn: AgentStatus) -> AgentStatus:
    """The status of an agent of a company in status `company` that would be `drawn`."""
    closed = (AgentStatus.DISABLED, AgentStatus.ARCHIVED)
    return _follow_company(company, drawn, LIVE_AGENT_STATUSES, closed)


def knowledge_base_status(
    company: CompanyStatus | None, drawn: KnowledgeBaseStatus
) -> KnowledgeBaseStatus:
    """The status of a knowledge base of a company in status `company`."""
    closed = (KnowledgeBaseStatus.DISABLED, KnowledgeBaseStatus.ARCHIVED)
    return _follow_company(company, drawn, LIVE_KNOWLEDGE_BASE_STATUSES, closed)


def is_closed(table: str, status: str) -> bool:
    """Whether a row of `table` in `status` left service at its `updated_at`."""
    if table in ("agents", "knowledge_bases"):
        return status in RETIRED_STATUSES
    return status != UserStatus.ACTIVE.value


def status_changed(p: CelestraProvider, created: int, closed: int | None = None) -> int:
    """When a row created at `created` left ACTIVE: in
    [`STATUS_CHANGED`][pytest_celestra.schema.spec.STATUS_CHANGED], by its company's `closed`."""
    upper = STATUS_CHANGED[1] if closed is None else min(closed, STATUS_CHANGED[1])
    return max(created, p.moment(max(created, STATUS_CHANGED[0]), upper))


def row_updated(
    p: CelestraProvider,
    created: int,
    *,
    left_service: bool = False,
    closing: int | None = None,
    with_company: bool = False,
) -> int:
    """`updated_at` of a company, user, agent or knowledge base created at `created`: when
    it `left_service` ([`status_changed`][pytest_celestra.rows.story.status_changed]), or
    its company's `closing` when it left `with_company`; else before now and `closing`."""
    if with_company and closing is not None:
        return closing
    if left_service:
        return status_changed(p, created, closing)
    return p.moment(created, spec.LAST_MOMENT if closing is None else closing)


def updated_after(p: CelestraProvider, created: int) -> int:
    """`updated_at` of a row created at `created` that has no status: before now."""
    return p.moment(created, spec.LAST_MOMENT)


def member_created(p: CelestraProvider, lower: int, upper: int = 0) -> int:
    """When a user, agent or knowledge base of a company founded at `lower` was created."""
    return p.moment(lower, min(upper, spec.MEMBER_CREATED_LATEST))


def link_created(p: CelestraProvider, lower: int, *retired: int) -> int:
    """When a link or knowledge source was made: after `lower`, before any parent `retired`."""
    return p.moment(lower, min((spec.LINK_CREATED_LATEST, *retired)))


def password_changed(p: CelestraProvider, lower: int) -> int:
    """When a user created at `lower` changed a password."""
    return p.moment(lower, spec.PASSWORD_CHANGED_LATEST)


def knowledge_type_created(name: str) -> int:
    """When the knowledge type `name` was created: a day apart in catalogue order."""
    catalogue = list(spec.KNOWLEDGE_TYPES)
    index = catalogue.index(name) if name in catalogue else len(catalogue)
    return spec.KNOWLEDGE_TYPE_CREATED + index * spec.KNOWLEDGE_TYPE_SPACING


def unique_company_name(
    p: CelestraProvider, vertical: CompanyVertical, used: set[str]
) -> tuple[str, str]:
    """A company name of `vertical` and its email domain, not in `used` (which it joins):
    two companies of one domain would mix their emails."""
    for _ in range(1 + spec.FRESH_COMPANY_NAMES):
        name = p.company_name(vertical)
        if (domain := company_domain(name)) not in used:
            break
    base, number = name, 1
    while domain in used:
        number += 1
        name = f"{base} {number}"
        domain = company_domain(name)
    used.add(domain)
    return name, domain


def headcount_weight(rng: random.Random, headcount: float) -> float:
    """A company's weight in the spread of its members, around its size's `headcount`."""
    low, width = spec.HEADCOUNT_SPREAD
    return headcount * (low + width * rng.random())


def active_until(status: str, updated: int) -> int:
    """The last moment a user in `status` (changed at `updated`) was ACTIVE (0: still)."""
    return 0 if status == UserStatus.ACTIVE.value else updated


def activity_window(created: Iterable[int], until: Iterable[int]) -> tuple[int, int]:
    """(earliest, latest) moment of an action on rows `created` then, in service `until`."""
    return max((spec.ACTIVITY_EARLIEST, *created)), min((spec.LAST_MOMENT, *until))


def activity_moment(p: CelestraProvider, lower: int) -> int:
    """When something a user did after `lower` happened (recent moments more likely)."""
    return p.recent_moment(max(lower, spec.ACTIVITY_EARLIEST), spec.LAST_MOMENT)


def action_steps(rng: random.Random, start: int, count: int) -> list[int]:
    """The moments of `count` audit logs of one action from `start`, each
    [`ACTION_STEP`][pytest_celestra.schema.spec.ACTION_STEP] after the one before."""
    steps = (rng.randint(*spec.ACTION_STEP) for _ in range(count - 1))
    return list(itertools.accumulate(steps, initial=start))


# --- who acts and who signs ------------------------------------------------------------


def super_admin_signs(rng: random.Random, platform_user: bool) -> bool:
    """Whether a super admin, not a company admin, signs a log (always for a `platform_user`)."""
    return platform_user or rng.random() < spec.SIGNER_SUPER_ADMIN_SHARE


def super_admin_acts(rng: random.Random) -> bool:
    """Whether a super admin, not a company admin, does an export or a change of a row."""
    return rng.random() < spec.ACTOR_SUPER_ADMIN_SHARE


def changed_columns(
    p: CelestraProvider,
    event: AuditEventType,
    table: str,
    count: int,
    done: Iterable[str] = (),
) -> list[str]:
    """`count` distinct columns of `table` an `event` changes, none of `done`, its
    [`FIRST_CHANGED_COLUMN`][pytest_celestra.schema.spec.FIRST_CHANGED_COLUMN] first."""
    done = set(done)
    first = spec.FIRST_CHANGED_COLUMN.get(event)
    columns = p.shuffled(spec.CHANGEABLE_COLUMNS[table])
    columns = [column for column in columns if column not in done]
    if first in columns:
        columns.remove(first)
        columns.insert(0, first)
    if count > len(columns):
        raise ValueError(f"{table} has only {len(columns)} changeable columns left")
    return columns[:count]


# --- lockouts ------------------------------------------------------------------------------

LOCKABLE_USER_STATUSES = frozenset({UserStatus.ACTIVE.value})
"""Statuses of users who can be locked out: only they still sign in."""


def lockable(status: str) -> bool:
    """Whether a user in `status` can be locked out (a factory refuses any other)."""
    return status in LOCKABLE_USER_STATUSES


def lockout_burst(
    p: CelestraProvider, start: int, attempts: int, lower: int, spare: int | None = None
) -> list[int]:
    """The moments, earliest first, of the failed logins before a lockout at `start`:
    [`LOCKOUT_BURST`][pytest_celestra.schema.spec.LOCKOUT_BURST] of them, at most `attempts`
    (and 1 + `spare`), in the
    [`LOCKOUT_BURST_WINDOW`][pytest_celestra.schema.spec.LOCKOUT_BURST_WINDOW] before it,
    none before `lower`."""
    fewest, most = spec.LOCKOUT_BURST
    extra = p.random_int(0, most - fewest)
    count = fewest + min(extra, attempts - fewest, extra if spare is None else spare)
    window = spec.LOCKOUT_BURST_WINDOW
    offsets = sorted((p.moment(MINUTE, window - MINUTE) for _ in range(count)), reverse=True)
    return [max(lower, start - offset) for offset in offsets]


def activity_until(status: str, updated: int) -> int:
    """The last moment a user in `status` (changed at `updated`) acts: a
    [`ACTIVITY_MARGIN`][pytest_celestra.schema.spec.ACTIVITY_MARGIN] before leaving ACTIVE."""
    return active_until(status, updated) - spec.ACTIVITY_MARGIN


# --- notifications report real events ----------------------------------------------------

# Events a notification can report; each names the row (and time column) it points at.
FAILED_LOGIN = "failed login"  # failed_logins.attempted_at of the user
LOCKOUT_STARTED = "lockout started"  # user_lockouts.lockout_start of the user
LOCKOUT_ENDED = "lockout ended"  # user_lockouts.lockout_end (past) of the user
PASSWORD_CHANGE = "password change"  # password_history.created_at of the user
PASSWORD_AGE = "password age"  # the user's password is PASSWORD_EXPIRY_NOTICE old
ROLE_CHANGE = "role change"  # ROLE_ASSIGNMENT_CHANGE audit log whose record is the user
INVITATION_SENT = "invitation sent"  # invitations.sent_at of the user
INVITATION_ACCEPTED = "invitation accepted"  # ACCEPTED invitation's updated_at
KNOWLEDGE_BASE_READY = "knowledge base ready"  # ACTIVE knowledge base of the company
KNOWLEDGE_BASE_FAILED = "knowledge base failed"  # BUILDING/DISABLED one of the company
AGENT_STATUS_CHANGE = "agent status change"  # audit change of agents.status, same company
DATA_EXPORT = "data export"  # DATA_EXPORT audit log of the user
SESSION_STARTED = "session started"  # user_sessions.created_at of the user

NOTIFICATION_EVENTS: Mapping[NotificationType, str] = {
    NotificationType.FAILED_LOGIN_NOTIFICATION: FAILED_LOGIN,
    NotificationType.ACCOUNT_LOCKED: LOCKOUT_STARTED,
    NotificationType.ACCOUNT_UNLOCKED: LOCKOUT_ENDED,
    NotificationType.PASSWORD_CHANGED: PASSWORD_CHANGE,
    NotificationType.PASSWORD_EXPIRY: PASSWORD_AGE,
    NotificationType.ROLE_CHANGED: ROLE_CHANGE,
    NotificationType.INVITATION_SENT: INVITATION_SENT,
    NotificationType.INVITATION_ACCEPTED: INVITATION_ACCEPTED,
    NotificationType.KNOWLEDGE_BASE_READY: KNOWLEDGE_BASE_READY,
    NotificationType.KNOWLEDGE_BASE_FAILED: KNOWLEDGE_BASE_FAILED,
    NotificationType.AGENT_STATUS_CHANGED: AGENT_STATUS_CHANGE,
    NotificationType.DATA_EXPORT_READY: DATA_EXPORT,
    NotificationType.NEW_DEVICE_LOGIN: SESSION_STARTED,
}
"""Which event each notification type reports; the types missing here report none."""
EVENT_FREE_NOTIFICATION_TYPES = tuple(t for t in NotificationType if t not in NOTIFICATION_EVENTS)
"""Notification types that report no event (announcements, maintenance, session expiry)."""


def event_free_notification_type(rng: random.Random) -> NotificationType:
    """A notification type that reports no event, each as likely: the factories' default,
    and a scenario's fallback when it lacks the event."""
    return EVENT_FREE_NOTIFICATION_TYPES[int(rng.random() * len(EVENT_FREE_NOTIFICATION_TYPES))]


COMPANY_EVENTS = frozenset({KNOWLEDGE_BASE_READY, KNOWLEDGE_BASE_FAILED, AGENT_STATUS_CHANGE})
"""Events of a company rather than of the notified user."""
FAILED_KNOWLEDGE_BASE_STATUSES = frozenset(
    {KnowledgeBaseStatus.BUILDING, KnowledgeBaseStatus.DISABLED}
)
"""Knowledge base statuses after a build that failed (retrying, or switched off)."""


def notified_after(p: CelestraProvider, event: int) -> int:
    """When the notification of an event at `event` is created (a minute ago at most)."""
    soonest, latest = NOTIFICATION_DELAY
    return p.moment(event + soonest, min(event + latest, spec.LAST_MOMENT))


def event_before(p: CelestraProvider, notified: int, lower: int) -> int:
    """When the event a notification created at `notified` reports happened, not before `lower`."""
    return max(lower, notified - p.moment(*NOTIFICATION_DELAY))


def password_notice_window(set_at: int, next_change: int) -> tuple[int, int] | None:
    """When a PASSWORD_EXPIRY notice of a password set at `set_at` and replaced at
    `next_change` (0: still in use) can come; None when no moment fits."""
    lower = max(set_at + PASSWORD_EXPIRY_NOTICE[0], spec.ACTIVITY_EARLIEST)
    upper = min(set_at + PASSWORD_EXPIRY_NOTICE[1], next_change - 1, spec.LAST_MOMENT)
    return (lower, upper) if lower <= upper else None
