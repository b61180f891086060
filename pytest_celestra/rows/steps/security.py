"""Lockouts, failed logins and sessions: planned before the audit trail that records
them, written after it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from pytest_celestra.rows import factories, story
from pytest_celestra.rows.batches import copy_tuple
from pytest_celestra.rows.steps.draw import covering
from pytest_celestra.schema import spec

if TYPE_CHECKING:
    from pytest_celestra.rows.steps.draw import Draw, Rows
    from pytest_celestra.rows.steps.tenants import Users

_START_TRIES = 5  # draws of a lockout's start that may fall near another of its user's


class Lockout(NamedTuple):
    user: int
    start: int
    end: int
    updated: int
    state: str
    burst: list[int]  # moments of the failed logins before it (story.lockout_burst)
    attempts: int


class Failure(NamedTuple):
    user: int  # -1: an email nobody has
    moment: int
    ip: str


class Session(NamedTuple):
    user: int
    created: int
    expires: int


@dataclass(frozen=True)
class Lockouts:
    lockouts: list[Lockout]
    unknown_failures: int
    starts: dict[int, list[int]]

    def in_window(self, user: int, moment: int, margin: int = 0) -> bool:
        """Whether `moment` falls in the 30 minutes before one of `user`'s lockouts."""
        return any(
            start - spec.LOCKOUT_BURST_WINDOW - margin <= moment <= start + margin
            for start in self.starts.get(user, ())
        )


@dataclass(frozen=True)
class Failures:
    failures: list[Failure]
    of_lockout: list[list[int]]  # indices in `failures` of each lockout's burst
    singles: list[int]


def plan_lockouts(d: Draw, u: Users) -> Lockouts:
    """Every lockout and its burst of failed logins; only ACTIVE accounts lock."""
    p, rng = d.p, d.rng
    n_failed, n_lockouts = d.counts["failed_logins"], d.counts["user_lockouts"]
    wanted = max(1, round(n_failed * spec.UNKNOWN_EMAIL_SHARE))  # unknown emails
    unknown = max(0, min(wanted, n_failed - n_lockouts))
    share, of = spec.LOCKOUT_BURST_SPARE
    spare = (n_failed - unknown - n_lockouts) * share // of
    # Company members, else platform staff; never a user who cannot be locked out, unless
    # your rules left nobody who can.
    lockable = [i for i in range(len(u.ids)) if story.lockable(u.status[i])]
    members = [i for i in lockable if u.company[i] >= 0] or lockable or list(range(len(u.ids)))
    if n_lockouts <= len(members):
        users = rng.sample(members, n_lockouts)
    else:
        users = [d.pick(members) for _ in range(n_lockouts)]
    states = covering(spec.LOCKOUT_STATE_WEIGHTS, p.lockout_state)
    plan = Lockouts([], unknown, {})
    for user in users:
        state = states()
        start, end, updated = p.lockout_times(state, u.created[user])
        for _ in range(_START_TRIES):
            if not plan.in_window(user, start, margin=spec.LOCKOUT_BURST_WINDOW):
                break
            start, end, updated = p.lockout_times(state, u.created[user])
        attempts = p.lockout_threshold()
        burst = story.lockout_burst(p, start, attempts, u.created[user], spare)
        spare -= len(burst) - 1
        plan.lockouts.append(Lockout(user, start, end, updated, state, burst, attempts))
        plan.starts.setdefault(user, []).append(start)
    return plan


def plan_failed_logins(d: Draw, u: Users, locks: Lockouts) -> Failures:
    """Every failed login: the lockouts' bursts, single failures (outside any lockout's
    window), unknown emails."""
    p = d.p
    plan = Failures([], [], [])
    for lockout in locks.lockouts:
        ip = p.ip_address()
        first = len(plan.failures)
        plan.failures.extend(Failure(lockout.user, moment, ip) for moment in lockout.burst)
        plan.of_lockout.append(list(range(first, len(plan.failures))))
    singles = d.counts["failed_logins"] - locks.unknown_failures - len(plan.failures)
    for _ in range(singles):
        while True:
            user = d.index(u.ids)
            moment = story.activity_moment(p, u.created[user])
            if not locks.in_window(user, moment):
                break
        plan.singles.append(len(plan.failures))
        plan.failures.append(Failure(user, moment, p.ip_address()))
    for _ in range(locks.unknown_failures):
        moment = story.activity_moment(p, spec.ACTIVITY_EARLIEST)
        plan.failures.append(Failure(-1, moment, p.ip_address()))
    return plan


def plan_sessions(d: Draw, u: Users) -> list[Session]:
    """Every session: only ACTIVE users hold live ones; none starts after its user left."""
    p = d.p
    states = covering(spec.SESSION_STATE_WEIGHTS, p.session_state)
    active = u.active or list(range(len(u.ids)))
    sessions: list[Session] = []
    for _ in range(d.counts["user_sessions"]):
        state = states()
        user = d.pick(active) if state in story.LIVE_SESSION_STATES else d.index(u.ids)
        created, expires = p.session_times(state, u.created[user], u.until[user])
        sessions.append(Session(user, created, expires))
    return sessions


def failed_logins(d: Draw, u: Users, plan: Failures) -> Rows[None]:
    """The planned failures (who, when, from where), each `FailedLoginFactory`'s row."""
    failure = d.recipe(factories.FailedLoginFactory, "user attempted ip_address")
    for user, moment, ip in plan.failures:
        row = failure(user=u.rows[user] if user >= 0 else None, attempted=moment, ip_address=ip)
        yield "failed_logins", copy_tuple(row)


def user_lockouts(d: Draw, u: Users, plan: Lockouts) -> Rows[None]:
    """The planned lockouts (whose, state, times, threshold), each `UserLockoutFactory`'s
    row (its hook's failed logins are the plan's bursts, written by failed_logins)."""
    lockout = d.recipe(factories.UserLockoutFactory, "user state times failed_attempts")
    for lock in plan.lockouts:
        times = (lock.start, lock.end, lock.updated)
        row = lockout(
            user=u.rows[lock.user], state=lock.state, times=times, failed_attempts=lock.attempts
        )
        yield "user_lockouts", copy_tuple(row)


def user_sessions(d: Draw, u: Users, sessions: list[Session]) -> Rows[None]:
    """The planned sessions (whose, when), each `UserSessionFactory`'s row."""
    session = d.recipe(factories.UserSessionFactory, "user times")  # the plan's state chose them
    for user, created, expires in sessions:
        row = session(user=u.rows[user], times=(created, expires))
        yield "user_sessions", copy_tuple(row)
