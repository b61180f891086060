"""What users see and do last: invitations, password changes and the notifications that
report the events of every table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from pytest_celestra.rows import factories, story
from pytest_celestra.rows.batches import copy_tuple
from pytest_celestra.rows.providers import invitation_sent_window
from pytest_celestra.rows.steps.draw import covering
from pytest_celestra.schema import spec
from pytest_celestra.schema.models import NotificationStatus, UserStatus

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from pytest_celestra.rows.steps.assets import Assets
    from pytest_celestra.rows.steps.audit import AuditEvents
    from pytest_celestra.rows.steps.draw import Draw, Rows
    from pytest_celestra.rows.steps.security import Failures, Lockouts, Session
    from pytest_celestra.rows.steps.tenants import Users


@dataclass(frozen=True)
class Invited:
    sent: list[tuple[int, int]] = field(default_factory=list)
    accepted: list[tuple[int, int]] = field(default_factory=list)


class PasswordChange(NamedTuple):
    user: int
    pick: int  # index of the former password in the scenario's pool
    moment: int


@dataclass(frozen=True)
class Passwords:
    changes: list[PasswordChange] = field(default_factory=list)
    # (user, earliest, latest) moments of a PASSWORD_EXPIRY notice for each password
    ages: list[tuple[int, int, int]] = field(default_factory=list)


def invitations(d: Draw, u: Users) -> Rows[Invited]:
    """Invitations of company members in covered states, each `InvitationFactory`'s row
    (sent while its user is ACTIVE); open ones only for ACTIVE users, and each other state
    goes first to a user who left (who can have it), so both paths show one rule."""
    members = [i for i in range(len(u.ids)) if u.company[i] >= 0]
    active = [i for i in u.active if u.company[i] >= 0] or members
    left = [i for i in members if u.status[i] != UserStatus.ACTIVE.value]
    states = covering(spec.INVITATION_STATE_WEIGHTS, d.p.invitation_state)
    invitation = d.recipe(factories.InvitationFactory, "user state")

    def can_have(user: int, state: str) -> bool:
        """Whether `user` can be sent an invitation in `state` (it was ACTIVE then)."""
        until = story.active_until(u.status[user], d.offset(u.rows[user].updated_at))
        earliest, latest = invitation_sent_window(state, u.created[user], until)
        return earliest <= latest

    told: set[str] = set(story.OPEN_INVITATION_STATES)
    invited = Invited()
    for _ in range(d.counts["invitations"]):
        state = states()
        if state not in told:
            told.add(state)
            fits = [user for user in left if can_have(user, state)]
            user = d.pick(fits or members)
        else:
            user = d.pick(active if state in story.OPEN_INVITATION_STATES else members)
        if not can_have(user, state):
            # Nobody is invited after leaving ACTIVE: the invitation is someone else's.
            user = d.pick(active)
        row = invitation(user=u.rows[user], state=state)
        invited.sent.append((user, d.offset(row.sent_at)))
        if state == "accepted":
            invited.accepted.append((user, d.offset(row.updated_at)))
        yield "invitations", copy_tuple(row)
    return invited


def plan_password_history(d: Draw, u: Users) -> Passwords:
    p, rng = d.p, d.rng
    per_user = [0] * len(u.ids)
    for _ in range(d.counts["password_history"]):
        per_user[int(rng.random() * len(per_user))] += 1
    # Entries of one user must differ: the pool holds at least as many old passwords.
    pool_size = max(d.old_password_pool, max(per_user, default=0))
    plan = Passwords()
    for user, count in enumerate(per_user):
        moments = sorted(story.password_changed(p, u.created[user]) for _ in range(count))
        set_at = u.created[user]  # each password's age: when a PASSWORD_EXPIRY notice fits
        for next_change in [*moments, 0]:
            if (window := story.password_notice_window(set_at, next_change)) is not None:
                plan.ages.append((user, *window))
            set_at = next_change
        picks = rng.sample(range(pool_size), count)
        plan.changes.extend(map(PasswordChange, [user] * count, picks, moments))
    return plan


def password_history(d: Draw, u: Users, plan: Passwords) -> Rows[None]:
    """The planned changes (whose, which former password, when), each
    `PasswordHistoryFactory`'s row with the scenario's hash of that password."""
    change = d.recipe(factories.PasswordHistoryFactory, "user password_hash created")
    for user, pick, moment in plan.changes:
        row = change(user=u.rows[user], password_hash=d.old_passwords[pick], created=moment)
        yield "password_history", copy_tuple(row)


def notifications(
    d: Draw,
    u: Users,
    kbs: Assets,
    locks: Lockouts,
    failures: Failures,
    sessions: list[Session],
    trail: AuditEvents,
    invited: Invited,
    pw: Passwords,
) -> Rows[None]:
    """Notifications of drawn types, statuses, deliveries and expiries covered, each
    `NotificationFactory`'s row; one that reports an event follows one of its user (or
    company), or reports none (an event-free type, the factory's) when the scenario has no
    such event. The factory's hook does not run: the events are the other steps' rows."""
    events = {
        story.KNOWLEDGE_BASE_READY: kbs.ready,
        story.KNOWLEDGE_BASE_FAILED: kbs.failed,
        story.LOCKOUT_STARTED: [(lock.user, lock.start) for lock in locks.lockouts],
        story.LOCKOUT_ENDED: [
            (lock.user, lock.end) for lock in locks.lockouts if lock.end <= spec.LAST_MOMENT
        ],
        story.FAILED_LOGIN: [(f.user, f.moment) for f in failures.failures if f.user >= 0],
        story.SESSION_STARTED: [(s.user, s.created) for s in sessions],
        story.DATA_EXPORT: trail.data_exports,
        story.ROLE_CHANGE: trail.role_changes,
        story.AGENT_STATUS_CHANGE: trail.agent_status_changes,
        story.INVITATION_SENT: invited.sent,
        story.INVITATION_ACCEPTED: invited.accepted,
        story.PASSWORD_CHANGE: [
            (c.user, c.moment) for c in pw.changes if c.moment >= spec.ACTIVITY_EARLIEST
        ],
    }
    p, rng = d.p, d.rng
    statuses = covering(spec.NOTIFICATION_STATUS_WEIGHTS, p.notification_status)
    methods = covering(spec.NOTIFICATION_DELIVERY_WEIGHTS, p.notification_delivery_method)
    expiries = covering(spec.NOTIFICATION_EXPIRY_WEIGHTS, p.notification_expiry)
    planned = "user status is_read expiry delivery_method"
    event_free = d.recipe(factories.NotificationFactory, planned)
    of_type = d.recipe(factories.NotificationFactory, f"{planned} notification_type")
    reporting = d.recipe(factories.NotificationFactory, f"{planned} notification_type times")
    for i in range(d.counts["notifications"]):
        kind = p.notification_type()
        status = statuses()
        delivered = status is NotificationStatus.DELIVERED
        # The first notification is read, so read and unread ones both exist.
        read = delivered and (i == 0 or p.notification_is_read())
        expiry = expiries()
        event = story.NOTIFICATION_EVENTS.get(kind)
        reported = None if event is None else _reported(d, u, event, events, pw.ages)
        if reported is None:
            user, times = int(rng.random() * len(u.ids)), None
        else:
            user, created = reported
            times = p.notification_times_from(created, status, read, expiry)
        given = {"user": u.rows[user], "status": status, "is_read": read, "expiry": expiry}
        given["delivery_method"] = methods()
        if times is not None:
            row = reporting(**given, notification_type=kind, times=times)
        elif event is None:
            row = of_type(**given, notification_type=kind)
        else:  # the factory's type: one that reports no event
            row = event_free(**given)
        yield "notifications", copy_tuple(row)


def _reported(
    d: Draw,
    u: Users,
    event: str,
    events: Mapping[str, Sequence[tuple[int, int]]],
    ages: list[tuple[int, int, int]],
) -> tuple[int, int] | None:
    """(user, created_at) of a notification reporting a random `event`; None if none fits."""
    if event == story.PASSWORD_AGE:
        if not ages:
            return None
        user, earliest, latest = ages[d.index(ages)]
        return user, d.p.moment(earliest, latest)
    happened = events.get(event, ())
    if not happened:
        return None
    owner, moment = happened[d.index(happened)]
    user = owner
    if event in story.COMPANY_EVENTS:
        # A member of the company who existed then; its first admin, the oldest, else.
        user = d.pick(u.members[owner])
        if u.created[user] > moment:
            user = u.members[owner][0]
            if u.created[user] > moment:
                return None
    return user, story.notified_after(d.p, moment)
