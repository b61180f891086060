"""The audit trail: audit logs of actions that change no row (sign-ins, exports ...),
then each company's row changes with their change logs. The plan (actions, actors,
signers, moments, groups, which rows change and each column's history) is the step's;
each row is `AuditLogFactory`'s or `AuditChangeLogFactory`'s."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pytest_celestra.rows import factories, story
from pytest_celestra.rows.batches import copy_tuple
from pytest_celestra.rows.steps.draw import allocate, covering
from pytest_celestra.schema import spec
from pytest_celestra.schema.models import AuditEventType
from pytest_celestra.schema.volumes import audit_logs_needed

if TYPE_CHECKING:
    import uuid
    from collections.abc import Callable

    from pytest_celestra.rows.batches import PendingRow
    from pytest_celestra.rows.steps.assets import Assets
    from pytest_celestra.rows.steps.draw import Draw, RowFacts, Rows
    from pytest_celestra.rows.steps.security import Failures, Lockouts, Session
    from pytest_celestra.rows.steps.tenants import Companies, Users

# moment, user, signer, group, ip
_When = tuple[int, int, "PendingRow | None", "uuid.UUID | None", str]


@dataclass(frozen=True)
class Trail:
    c: Companies
    u: Users
    agents: Assets
    kbs: Assets
    locks: Lockouts
    failures: Failures
    sessions: list[Session]

    def rows_of(self, table: str, company: int) -> list[int]:
        if table == "companies":
            return [company]
        if table == "users":
            return self.u.members[company]
        return self._assets(table).by_company[company]

    def closed(self, table: str, row: int) -> int:
        """When a row left service (its updated_at), or 0 (now) for a row still live."""
        if table == "companies":
            closed = self.c.closed[row]
            return 0 if closed is None else closed
        if table == "users":
            return self.u.until[row] + spec.ACTIVITY_MARGIN
        return self._assets(table).retired[row]

    def facts(self, table: str) -> RowFacts:
        return {"companies": self.c, "users": self.u}.get(table) or self._assets(table)

    def _assets(self, table: str) -> Assets:
        return self.agents if table == "agents" else self.kbs


_ACTION = "user event_type signer created ip_address group_id"
"""What the plan decides of every audit log: who did it, what, who signed, when, from where,
with which others (the recipe draws its id, description, signature and reason)."""


@dataclass(frozen=True)
class AuditEvents:
    data_exports: list[tuple[int, int]] = field(default_factory=list)
    role_changes: list[tuple[int, int]] = field(default_factory=list)
    agent_status_changes: list[tuple[int, int]] = field(default_factory=list)


def _signer(d: Draw, u: Users, user: int) -> int:
    own = u.company[user]
    if story.super_admin_signs(d.rng, own < 0):
        return d.pick(u.super_admins)
    return d.pick(u.admins[own])


def _window(u: Users, lower: int, upper: int, *people: int | None) -> tuple[int, int]:
    """(earliest, latest) moment at which every one of `people` existed and was ACTIVE."""
    present = [person for person in people if person is not None]
    return story.activity_window(
        [lower, *(u.created[person] for person in present)],
        [upper, *(u.until[person] for person in present)],
    )


def _acting(
    d: Draw, u: Users, user: int, signs: bool, lower: int = spec.ACTIVITY_EARLIEST, upper: int = 0
) -> tuple[int, PendingRow | None, int]:
    """`user`, the row of a signer drawn for them if the action `signs`, and a moment between
    `lower` and `upper` at which both were ACTIVE: a super admin acts when those drawn had
    left before then (or never were)."""
    signer = _signer(d, u, user) if signs else None
    earliest, latest = _window(u, lower, upper, user, signer)
    if latest < earliest:
        user = d.pick(u.super_admins)
        signer = _signer(d, u, user) if signs else None
        earliest, latest = _window(u, lower, upper, user, signer)
    return user, None if signer is None else u.rows[signer], d.p.recent_moment(earliest, latest)


def _plan_changes(d: Draw, c: Companies) -> tuple[list[dict[str, int]], list[int]]:
    """Row-changing audit logs per company and table, and change logs per company."""
    n_audit = d.counts["audit_logs"]
    needed = audit_logs_needed(d.counts["audit_change_logs"])
    changing = min(n_audit, max(needed, round(n_audit * spec.CHANGE_LOG_SHARE)))
    tables: list[dict[str, int]] = []
    capacity: list[int] = []
    for count in allocate(changing, c.weight):
        by_table = dict.fromkeys(spec.CHANGEABLE_COLUMNS, 0)
        for _ in range(count):
            by_table[d.p.change_table()] += 1
        tables.append(by_table)
        capacity.append(sum(n * len(spec.CHANGEABLE_COLUMNS[t]) for t, n in by_table.items()))
    return tables, allocate(d.counts["audit_change_logs"], capacity)


def audit_logs(d: Draw, t: Trail) -> Rows[AuditEvents]:
    """Audit logs of actions that change no row, then each company's row changes (whole:
    their histories are chains)."""
    tables, changes_per_company = _plan_changes(d, t.c)
    changing = sum(sum(by_table.values()) for by_table in tables)
    events = AuditEvents()
    yield from _plain_audit_logs(d, t, d.counts["audit_logs"] - changing, events)
    log = d.recipe(factories.AuditLogFactory, f"{_ACTION} table_name record_id")
    change = d.recipe(factories.AuditChangeLogFactory, "audit_log column after")
    for company, (by_table, count) in enumerate(zip(tables, changes_per_company, strict=True)):
        yield from _company_changes(d, t, log, change, company, by_table, count, events)
    return events


def _plain_audit_logs(d: Draw, t: Trail, total: int, events: AuditEvents) -> Rows[None]:
    """`total` audit logs of whole actions (the last one cut): sign-ins start a planned
    session, sign-outs lie within one, failed sign-ins are planned failed logins; when
    those run out, the action becomes "other"."""
    p, rng, u = d.p, d.rng, t.u
    failures, lockouts_planned = t.failures.failures, t.locks.lockouts
    sessions = rng.sample(range(len(t.sessions)), len(t.sessions))
    # The first failed sign-in (the last popped) is for an unknown email, so every volume
    # has one.
    unknown = [i for i, failure in enumerate(failures) if failure.user < 0]
    singles = unknown[1:] + rng.sample(t.failures.singles, len(t.failures.singles)) + unknown[:1]
    lockouts = list(range(len(lockouts_planned)))
    planned = {"sign_in": sessions, "sign_out": t.sessions, "failed_sign_in": singles}
    written = 0
    log = d.recipe(factories.AuditLogFactory, _ACTION)
    actions = covering(spec.AUDIT_ACTION_WEIGHTS, p.audit_action)  # every story told once
    while written < total:
        action = actions()
        if action == "lockout" and not lockouts:
            action = "failed_sign_in"
        if action in planned and not planned[action]:
            action = "other"
        user: int | None
        signer: PendingRow | None = None
        moments: list[int]
        if action == "sign_in":
            user, created, _ = t.sessions[sessions.pop()]
            start = created - rng.randint(1, spec.SIGN_IN_LEAD)
            moments = [max(start, u.created[user]), created]
        elif action == "sign_out":
            user, created, expires = t.sessions[d.index(t.sessions)]
            moments = [p.moment(created, min(expires, u.until[user]))]
        elif action == "failed_sign_in":
            failure = failures[singles.pop()]
            user, moments = (failure.user if failure.user >= 0 else None), [failure.moment]
        elif action == "lockout":
            lockout = lockouts.pop(d.index(lockouts))
            burst = t.failures.of_lockout[lockout]
            recorded = spec.AUDIT_ACTIONS["lockout"].count(AuditEventType.FAILED_LOGIN)
            user = lockouts_planned[lockout].user
            moments = [failures[i].moment for i in burst[-recorded:]]
            moments.append(lockouts_planned[lockout].start)
        else:
            user, signer, moments = _actor(d, t, action)
        # A kind per moment (fewer for a lockout's short burst), the last action cut at `total`.
        kinds = spec.AUDIT_ACTIONS[action][-len(moments) :][: total - written]
        written += len(kinds)
        # A lockout's logs are minutes apart: one user action only when seconds apart.
        group_id = d.new_id() if len(kinds) > 1 and action != "lockout" else None
        actor = None if user is None else u.rows[user]
        ip = p.ip_address()
        for event, moment in zip(kinds, moments, strict=False):
            if event is AuditEventType.DATA_EXPORT and user is not None:
                events.data_exports.append((user, moment))
            row = log(
                user=actor,
                event_type=event,
                signer=signer if event in spec.SIGNED_EVENT_TYPES else None,
                created=moment,
                ip_address=ip,
                group_id=group_id,
            )
            yield "audit_logs", copy_tuple(row)


def _actor(d: Draw, t: Trail, action: str) -> tuple[int, PendingRow | None, list[int]]:
    """Who did a data export or another action, who signed it, and when, while both were
    ACTIVE."""
    rng, u = d.rng, t.u
    signs = any(event in spec.SIGNED_EVENT_TYPES for event in spec.AUDIT_ACTIONS[action])
    if action == "data_export":
        admins = u.admins[int(rng.random() * d.counts["companies"])]
        user = d.pick(u.super_admins if story.super_admin_acts(rng) else admins)
    else:
        user = int(rng.random() * len(u.ids))
    user, signer, start = _acting(d, u, user, signs)
    return user, signer, story.action_steps(rng, start, len(spec.AUDIT_ACTIONS[action]))


def _company_changes(
    d: Draw,
    t: Trail,
    log: Callable[..., PendingRow],
    change: Callable[..., PendingRow],
    company: int,
    by_table: dict[str, int],
    n_changes: int,
    ev: AuditEvents,
) -> Rows[None]:
    """The row-changing audit logs of one company (`log`'s rows), then their change logs
    (`change`'s): each column's history a chain ending in the row's present value."""
    p, rng, u = d.p, d.rng, t.u
    # (table, row index) of each audit log, in a random order.
    targets: list[tuple[str, int]] = []
    for table, count in by_table.items():
        rows = t.rows_of(table, company)
        targets += [(table, d.pick(rows)) for _ in range(count)]
    rng.shuffle(targets)
    counts = d.spread(n_changes, [len(spec.CHANGEABLE_COLUMNS[table]) for table, _ in targets])
    events = [
        p.change_event(table) if count else AuditEventType.CONFIGURATION_UPDATE
        for (table, _), count in zip(targets, counts, strict=True)
    ]
    whens = _change_moments(d, t, company, targets, events)
    columns_of = [
        story.changed_columns(p, events[i], table, count)
        for i, ((table, _), count) in enumerate(zip(targets, counts, strict=True))
    ]
    logs: list[PendingRow] = []
    for i, (table, row) in enumerate(targets):
        moment, user, signer, group_id, ip = whens[i]
        event = events[i]
        if event is AuditEventType.ROLE_ASSIGNMENT_CHANGE:
            ev.role_changes.append((row, moment))
        elif table == "agents" and "status" in columns_of[i]:
            ev.agent_status_changes.append((company, moment))
        logs.append(
            log(
                user=u.rows[user],
                event_type=event,
                signer=signer,
                created=moment,
                ip_address=ip,
                group_id=group_id,
                table_name=table,
                record_id=t.facts(table).ids[row],
            )
        )
        yield "audit_logs", copy_tuple(logs[-1])
    # Each column's history, latest first: a change's old value is its predecessor's new.
    history: dict[tuple[str, int, str], list[tuple[int, int, int]]] = {}
    for i, (table, row) in enumerate(targets):
        for position, column in enumerate(columns_of[i]):
            history.setdefault((table, row, column), []).append((whens[i][0], i, position))
    changes: dict[tuple[int, int], PendingRow] = {}
    for (table, row, column), entries in history.items():
        new = t.facts(table).current[row][spec.CHANGEABLE_COLUMNS[table].index(column)]
        for _, i, position in sorted(entries, reverse=True):
            changes[i, position] = change(audit_log=logs[i], column=column, after=new)
            new = changes[i, position].old_value
    for key in sorted(changes):  # in the order of their audit logs
        yield "audit_change_logs", copy_tuple(changes[key])


def _change_moments(
    d: Draw, t: Trail, company: int, targets: list[tuple[str, int]], events: list[AuditEventType]
) -> list[_When]:
    """(time, user, signer, group_id, ip) of each audit log: an admin changes one to three
    rows seconds apart; role changes are actions of their own."""
    p, rng, u = d.p, d.rng, t.u
    result: list[_When] = []
    i = 0
    while i < len(targets):
        size = 1
        if events[i] is AuditEventType.CONFIGURATION_UPDATE:
            size = min(d.pick(spec.CHANGE_GROUP_SIZES), len(targets) - i)
            for j in range(i + 1, i + size):
                if events[j] is not AuditEventType.CONFIGURATION_UPDATE:
                    size = j - i
                    break
        user = d.pick(u.super_admins if story.super_admin_acts(rng) else u.admins[company])
        group = targets[i : i + size]
        earliest = max(t.facts(table).created[row] for table, row in group)
        # A row closed (or switched off) changes no more in the last stretch before that
        # (as in the factories); the logs of the group follow the first within seconds.
        closed = min(t.closed(table, row) for table, row in group)
        latest = closed - spec.ACTIVITY_MARGIN - spec.ACTION_STEP[1] * (size - 1)
        user, signer, moment = _acting(d, u, user, signs=True, lower=earliest, upper=latest)
        group_id = d.new_id() if size > 1 else None
        ip = p.ip_address()
        for step in story.action_steps(rng, moment, size):
            result.append((step, user, signer, group_id, ip))
        i += size
    return result
