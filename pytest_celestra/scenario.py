"""The whole Celestra scenario: every table at a volume's row counts, FK-consistent and
realistic, generated as a stream of row chunks and COPY-loaded in one transaction.

::

    from pytest_celestra.scenario import seed_scenario

    with psycopg.connect(dsn) as connection:       # schema already created
        summary = seed_scenario(connection, "large", seed=42)
        connection.commit()                        # seed_scenario never commits
    print(summary)

Rows are plain tuples drawn from :class:`~pytest_celestra.providers.CelestraProvider` (the
definitions the factories use) on a provider seeded with ``seed`` alone: the same seed and
volume give the same rows, ids included, whatever the anchor or global random state. Every
time is ``anchor`` + a drawn offset; the anchor is midnight UTC of the day
(:func:`anchor_for`), so "current" cases (sessions valid for >= 2 more days, open
invitations, active lockouts) stay current all day.

Memory stays flat at any volume: only compact facts about parents (ids, company, creation
offset, role, status) are kept, and rows are produced in chunks of :data:`CHUNK_ROWS`.

The fixed cost of a seed is mostly password hashing, so a scenario hashes only what its
rows use: at most :data:`PASSWORD_POOL` hashes of the default password (never more than
there are users) and a few former passwords (:data:`OLD_PASSWORD_POOL`, more only for a
user with more entries). A thread computes them from the start, beside the generator
(bcrypt releases the GIL); the salts depend on the seed and the hash's index alone, so
which thread computes a hash never changes it.
"""

from __future__ import annotations

import time
from bisect import bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import accumulate
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from pytest_celestra import loader, spec, story
from pytest_celestra.models import (
    AuditEventType,
    CompanySize,
    CompanyStatus,
    CompanyVertical,
    KnowledgeBaseStatus,
    NotificationStatus,
    UserStatus,
)
from pytest_celestra.passwords import (
    DEFAULT_PASSWORD,
    HashPool,
    current_hasher,
    hashing_ahead,
    old_password,
)
from pytest_celestra.providers import (
    ACTIVITY_EARLIEST,
    AGENT_STATUS_WEIGHTS,
    AUDIT_ACTIONS,
    CHANGE_GROUP_SIZES,
    CHANGE_LOG_SHARE,
    CHANGEABLE_COLUMNS,
    COMPANY_CREATED,
    COMPANY_SIZE_HEADCOUNT,
    COMPANY_SIZE_WEIGHTS,
    COMPANY_STATUS_WEIGHTS,
    COMPANY_VERTICAL_WEIGHTS,
    FIRST_ADMIN_DELAY,
    INVITATION_STATE_WEIGHTS,
    KNOWLEDGE_BASE_STATUS_WEIGHTS,
    KNOWLEDGE_TYPES,
    LOCKOUT_BURST_WINDOW,
    LOCKOUT_STATE_WEIGHTS,
    MINUTE,
    NOTIFICATION_DELIVERY_WEIGHTS,
    NOTIFICATION_STATUS_WEIGHTS,
    PLATFORM_DOMAIN,
    SESSION_STATE_WEIGHTS,
    SIGNED_EVENT_TYPES,
    SUPER_ADMIN_CREATED,
    SUPER_ADMIN_SHARE,
    UNKNOWN_EMAIL_REASON,
    UNKNOWN_EMAIL_SHARE,
    USER_STATUS_WEIGHTS,
    CelestraProvider,
    company_domain,
    email_address,
    fast_uuid,
)
from pytest_celestra.volumes import Volume, audit_logs_needed

if TYPE_CHECKING:
    import random
    import uuid
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from pytest_celestra.loader import Chunk, Row

#: The seed used when none is given.
DEFAULT_SEED = 1234
#: Rows per generated chunk: large enough for COPY, small enough to keep memory flat.
CHUNK_ROWS = 10_000
#: Scenarios of at most this many rows are generated in the thread that loads them;
#: larger ones in a worker thread, ahead of the COPY (measured, seed_scenario on a 2-core
#: machine: 1.3k rows 44 ms inline vs 48 ms with the worker; 13k rows even; 39k rows
#: 646 vs 543 ms; 130k rows 2.05 vs 1.57 s).
INLINE_ROWS = 10_000
#: Hashes (salts) of the default password per scenario, shared by the users; never more
#: than there are users.
PASSWORD_POOL = 16
#: Former passwords password_history draws from (never more than there are entries);
#: more when one user has more entries, since a user's entries differ.
OLD_PASSWORD_POOL = 8


def anchor_for(day: date | None = None) -> datetime:
    """Midnight UTC of ``day`` (today, in UTC, by default): the instant scenario times
    are relative to."""
    day = day or datetime.now(UTC).date()
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@dataclass(frozen=True)
class ScenarioSummary:
    """What :func:`seed_scenario` wrote: rows per table (FK order) and how long it took."""

    volume: Volume
    seed: int
    anchor: datetime
    rows: Mapping[str, int]
    seconds: float

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    def __str__(self) -> str:
        width = max(len(table) for table in self.rows)
        lines = [
            f"Celestra scenario {self.volume.name!r}, seed {self.seed}, "
            f"anchor {self.anchor.isoformat()}"
        ]
        lines += [f"  {table:<{width}}  {count:>10,}" for table, count in self.rows.items()]
        rate = self.total_rows / self.seconds if self.seconds > 0 else 0.0
        lines.append(
            f"  {'total':<{width}}  {self.total_rows:>10,}  in {self.seconds:.2f} s "
            f"({rate:,.0f} rows/s)"
        )
        return "\n".join(lines)


def seed_scenario(
    connection: Any,
    volume: Volume | str = "medium",
    *,
    seed: int = DEFAULT_SEED,
    anchor: datetime | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> ScenarioSummary:
    """Write the whole scenario into ``connection``'s current transaction; never commits.

    ``connection`` is a psycopg 3 connection, or a SQLAlchemy Session or Connection using
    the psycopg driver; the schema must exist (``Base.metadata.create_all``).
    ``progress(table, rows_so_far)`` is called after every chunk.
    """
    volume = _as_volume(volume)
    anchor = anchor or anchor_for()
    started = time.perf_counter()
    pg_conn = loader.raw_connection(connection)
    rows = generate_scenario(volume, seed=seed, anchor=anchor)
    # A worker thread making rows ahead pays off only for many rows (the two threads
    # hand the GIL to each other, which delays each by up to a switch interval).
    prefetch = 0 if sum(volume.counts.values()) <= INLINE_ROWS else 4
    try:
        with loader.caller_transaction(pg_conn):
            counts = loader.load(pg_conn, rows, progress=progress, prefetch=prefetch)
    except KeyboardInterrupt:
        _abandon(connection, pg_conn)
        raise
    return ScenarioSummary(
        volume, seed, anchor, MappingProxyType(counts), time.perf_counter() - started
    )


def _abandon(connection: Any, pg_conn: Any) -> None:
    """Close a connection whose COPY Ctrl-C cut off, which aborts its transaction.

    A rollback on it would fail ("another command is already in progress") and hide the
    interrupt; a SQLAlchemy Session or Connection is invalidated, so it tries none.
    """
    invalidate = getattr(connection, "invalidate", None)
    if invalidate is not None:
        invalidate()
    else:
        pg_conn.close()


def generate_scenario(
    volume: Volume | str = "medium",
    *,
    seed: int = DEFAULT_SEED,
    anchor: datetime | None = None,
) -> Iterator[Chunk]:
    """``(table, rows)`` chunks of the whole scenario, parents before children.

    Each row is a tuple in the order of ``loader.COLUMNS[table]``; no chunk holds more
    than :data:`CHUNK_ROWS` rows. A :class:`~pytest_celestra.volumes.Volume` is feasible
    by construction (a volume's text that is not raises
    :class:`~pytest_celestra.errors.ConfigError` at once).
    """
    builder = _Builder(_as_volume(volume), seed, anchor or anchor_for())
    return builder.chunks()


def _as_volume(volume: Volume | str) -> Volume:
    return volume if isinstance(volume, Volume) else Volume.parse(volume)


def allocate(total: int, weights: Sequence[float]) -> list[int]:
    """``total`` split into integer shares proportional to ``weights`` (largest remainder).

    Shares are monotone in the weights (ties go to the lower index), so two allocations
    over the same weights are similarly ordered.
    """
    if total <= 0 or not weights:
        return [0] * len(weights)
    weight_sum = sum(weights)
    quotas = [w * total / weight_sum for w in weights]
    shares = [int(q) for q in quotas]
    left = max(0, min(len(shares), total - sum(shares)))
    for i in sorted(range(len(shares)), key=lambda i: (shares[i] - quotas[i], i))[:left]:
        shares[i] += 1
    return shares


class _Covering:
    """Weighted draws in which each value occurs once first (small volumes see every case)."""

    def __init__(self, weights: Mapping[Any, float], draw: Callable[[], Any]) -> None:
        self.values = tuple(weights)
        self.draw = draw
        self.index = 0

    def __call__(self) -> Any:
        index = self.index
        self.index += 1
        return self.values[index] if index < len(self.values) else self.draw()


@dataclass
class _Users:
    """Compact facts about the users, by index (memory: a few lists of small values)."""

    ids: list[uuid.UUID]
    company: list[int]  # -1: super admin
    created: list[int]
    role: list[str]
    status: list[str]
    #: The last moment each user was ACTIVE, minus a minute: the bound of their activity.
    until: list[int]


class _Builder:
    """Generates one scenario; holds only compact facts about parent rows."""

    def __init__(self, volume: Volume, seed: int, anchor: datetime) -> None:
        self.volume = volume
        self.counts = volume.counts
        self.anchor = anchor
        self.p = CelestraProvider.seeded(seed)
        self.rng: random.Random = self.p.rng
        # Salts depend on (seed, index) alone, so hashes can be computed ahead, in a thread.
        hasher = current_hasher()
        self.passwords = HashPool(
            hasher, lambda _: DEFAULT_PASSWORD, f"celestra-scenario:{seed}:password"
        )
        self.old_passwords = HashPool(hasher, old_password, f"celestra-scenario:{seed}:old")
        self.password_salts = min(PASSWORD_POOL, self.counts["users"])
        self.old_password_pool = min(OLD_PASSWORD_POOL, self.counts["password_history"])
        # Present values of the changeable columns of each row, for the audit history.
        self.current: dict[str, list[tuple[str, ...]]] = {t: [] for t in CHANGEABLE_COLUMNS}
        # The events notifications report, by story event: (user or company, moment).
        self.events: dict[str, list[tuple[int, int]]] = {
            event: [] for event in story.NOTIFICATION_EVENTS.values()
        }

    def at(self, offset: int | None) -> datetime | None:
        return None if offset is None else self.anchor + timedelta(seconds=offset)

    def new_id(self) -> uuid.UUID:
        return fast_uuid(self.rng)

    def chunks(self) -> Iterator[Chunk]:
        # The password hashes are computed in a thread from the start (bcrypt releases the
        # GIL). Users stay right after companies: loaded after agents ... knowledge sources
        # (which do not reference them) they would find their hashes ready, but the COPY of
        # the tables after them then took longer (the same large rows: ~+100 ms, COPY only)
        # than those few milliseconds saved at small volumes.
        with hashing_ahead(
            (self.passwords, range(self.password_salts)),
            (self.old_passwords, range(self.old_password_pool)),
        ):
            yield from self.companies()
            yield from self.knowledge_types()
            yield from self.users()
            yield from self.agents()
            yield from self.knowledge_bases()
            yield from self.agent_knowledge_bases()
            yield from self.knowledge_sources()
            # The audit trail records sign-ins, sign-outs and failed logins that happened.
            self.plan_lockouts()
            self.plan_failed_logins()
            self.plan_sessions()
            yield from self.audit_logs()
            yield from self.failed_logins()
            yield from self.invitations()
            # Notifications report events of every table, password changes included.
            self.plan_password_history()
            yield from self.notifications()
            yield from self.password_history()
            yield from self.user_lockouts()
            yield from self.user_sessions()

    # --- companies and lookups -------------------------------------------------------

    def companies(self) -> Iterator[Chunk]:
        p, rng = self.p, self.rng
        n = self.counts["companies"]
        sizes = _Covering(COMPANY_SIZE_WEIGHTS, p.company_size)
        verticals = _Covering(COMPANY_VERTICAL_WEIGHTS, p.company_vertical)
        # The closed companies the covering draws come first and smallest (sizes cover
        # SMALL, MEDIUM ... in order), so their closing leaves most users ACTIVE.
        statuses = _Covering(dict(reversed(list(COMPANY_STATUS_WEIGHTS.items()))), p.company_status)
        self.company_ids: list[uuid.UUID] = []
        self.company_created: list[int] = []
        self.company_domain: list[str] = []
        self.company_weight: list[float] = []
        used_domains = {PLATFORM_DOMAIN}
        drafts: list[tuple[str, str, CompanySize, CompanyVertical, CompanyStatus]] = []
        for _ in range(n):
            size, vertical, status = sizes(), verticals(), statuses()
            name = p.company_name(vertical)
            domain = company_domain(name)
            # Another company with this domain would mix the two companies' emails.
            for _ in range(50):
                if domain not in used_domains:
                    break
                name = p.company_name(vertical)
                domain = company_domain(name)
            base, number = name, 1
            while domain in used_domains:
                number += 1
                name = f"{base} {number}"
                domain = company_domain(name)
            used_domains.add(domain)
            self.company_ids.append(self.new_id())
            self.company_created.append(p.moment(*COMPANY_CREATED))
            self.company_domain.append(domain)
            drafts.append((name, p.company_description(vertical), size, vertical, status))
            self.company_weight.append(story.headcount_weight(rng, COMPANY_SIZE_HEADCOUNT[size]))
        self.company_status = story.mostly_open([d[4] for d in drafts], self.company_weight)
        #: When each closed company closed; None for an ACTIVE one.
        self.company_closed: list[int | None] = []
        rows: list[Row] = []
        for company, (name, description, size, vertical, _) in enumerate(drafts):
            status, created = self.company_status[company], self.company_created[company]
            closing = story.row_updated(p, created, left_service=status is not CompanyStatus.ACTIVE)
            closed = None if status is CompanyStatus.ACTIVE else closing
            self.company_closed.append(closed)
            self.current["companies"].append(
                (status.value, size.value, vertical.value, description)
            )
            rows.append(
                (
                    self.company_ids[company],
                    name,
                    description,
                    size.value,
                    vertical.value,
                    status.value,
                    self.at(created),
                    self.at(closing),
                )
            )
            if len(rows) >= CHUNK_ROWS:
                yield "companies", rows
                rows = []
        yield "companies", rows

    def knowledge_types(self) -> Iterator[Chunk]:
        names = list(KNOWLEDGE_TYPES)[: self.counts["knowledge_types"]]
        self.type_ids = [self.new_id() for _ in names]
        self.type_names = names
        self.type_created = [story.knowledge_type_created(name) for name in names]
        self.type_cumulative = list(accumulate(KNOWLEDGE_TYPES[name][1] for name in names))
        yield (
            "knowledge_types",
            [
                (type_id, name, KNOWLEDGE_TYPES[name][0], self.at(created), self.at(created))
                for type_id, name, created in zip(
                    self.type_ids, names, self.type_created, strict=True
                )
            ],
        )

    # --- users -----------------------------------------------------------------------

    def users(self) -> Iterator[Chunk]:
        p, rng = self.p, self.rng
        n_companies, n_users = self.counts["companies"], self.counts["users"]
        supers = min(max(1, round(n_users * SUPER_ADMIN_SHARE)), n_users - n_companies)
        per_company = [
            1 + extra for extra in allocate(n_users - supers - n_companies, self.company_weight)
        ]
        statuses = _Covering(USER_STATUS_WEIGHTS, p.user_status)
        self.u = _Users([], [], [], [], [], [])
        self.company_admins: list[list[int]] = [[] for _ in range(n_companies)]
        self.company_members: list[list[int]] = [[] for _ in range(n_companies)]
        self.super_admins: list[int] = []
        self.active_users: list[int] = []
        emails: set[str] = set()
        rows: list[Row] = []

        def add(company: int, role: str, drawn: UserStatus, created: int, domain: str) -> None:
            status, updated = self._member_status(company, drawn, created)
            name = p.person_name()
            email = email_address(name, domain)
            number = 1
            while email in emails:
                number += 1
                email = email_address(name, domain, number)
            emails.add(email)
            index = len(self.u.ids)
            user_id = self.new_id()
            self.u.ids.append(user_id)
            self.u.company.append(company)
            self.u.created.append(created)
            self.u.role.append(role)
            self.u.status.append(status)
            self.u.until.append(story.active_until(status, updated) - MINUTE)
            self.current["users"].append((role, status, name))
            if company < 0:
                self.super_admins.append(index)
            else:
                self.company_members[company].append(index)
                if role == "COMPANY_ADMIN":
                    self.company_admins[company].append(index)
            if status == "ACTIVE":
                self.active_users.append(index)
            rows.append(
                (
                    user_id,
                    None if company < 0 else self.company_ids[company],
                    role,
                    email,
                    name,
                    self.passwords[int(rng.random() * self.password_salts)],
                    status,
                    self.at(created),
                    self.at(updated),
                )
            )

        active = UserStatus.ACTIVE
        for _ in range(supers):
            add(-1, "SUPER_ADMIN", active, p.moment(*SUPER_ADMIN_CREATED), PLATFORM_DOMAIN)
            if len(rows) >= CHUNK_ROWS:
                yield "users", rows
                rows = []
        for company, members in enumerate(per_company):
            founded, domain = self.company_created[company], self.company_domain[company]
            # The company's first admin joins right after it is created, and stays ACTIVE
            # while the company is.
            add(company, "COMPANY_ADMIN", active, founded + p.moment(0, FIRST_ADMIN_DELAY), domain)
            if len(rows) >= CHUNK_ROWS:
                yield "users", rows
                rows = []
            for _ in range(members - 1):
                created = story.member_created(p, founded)
                add(company, p.user_role().value, statuses(), created, domain)
                if len(rows) >= CHUNK_ROWS:
                    yield "users", rows
                    rows = []
        yield "users", rows

    def _member_status(self, company: int, drawn: UserStatus, created: int) -> tuple[str, int]:
        """(status, updated) of a user: a member of a closed company left ACTIVE with it
        (at its closing), another user who is not ACTIVE at a moment of its own."""
        closing = None if company < 0 else self.company_closed[company]
        status = drawn if company < 0 else story.member_status(self.company_status[company], drawn)
        updated = story.row_updated(
            self.p,
            created,
            left_service=status is not UserStatus.ACTIVE,
            closing=closing,
            with_company=status is not drawn,
        )
        return status.value, updated

    def _row_updated(self, company: int, created: int, retired: bool, followed: bool) -> int:
        """updated_at of an agent or knowledge base: a retired one's is the moment it was
        switched off (its company's closing when it ``followed`` it); nothing of a closed
        company changes after its closing."""
        return story.row_updated(
            self.p,
            created,
            left_service=retired,
            closing=self.company_closed[company],
            with_company=followed,
        )

    # --- agents and knowledge ----------------------------------------------------------

    def _company_members(
        self, table: str, make: Callable[[int, uuid.UUID, int], Row]
    ) -> Iterator[Chunk]:
        """Rows of ``table`` spread over all companies (>= 1 each, more for bigger ones)."""
        n_companies = self.counts["companies"]
        per_company = [
            1 + extra for extra in allocate(self.counts[table] - n_companies, self.company_weight)
        ]
        ids: list[uuid.UUID] = []
        created: list[int] = []
        by_company: list[list[int]] = [[] for _ in range(n_companies)]
        rows: list[Row] = []
        for company, count in enumerate(per_company):
            for _ in range(count):
                row_id = self.new_id()
                when = story.member_created(self.p, self.company_created[company])
                by_company[company].append(len(ids))
                ids.append(row_id)
                created.append(when)
                rows.append(make(company, row_id, when))
                if len(rows) >= CHUNK_ROWS:
                    yield table, rows
                    rows = []
        yield table, rows
        self.members[table] = (ids, created, by_company)

    def agents(self) -> Iterator[Chunk]:
        p = self.p
        statuses = _Covering(AGENT_STATUS_WEIGHTS, p.agent_status)
        self.members: dict[str, tuple[list[uuid.UUID], list[int], list[list[int]]]] = {}
        self.retired: dict[str, list[int]] = {"agents": [], "knowledge_bases": []}

        def make(company: int, agent_id: uuid.UUID, created: int) -> Row:
            drawn = statuses()
            state = story.agent_status(self.company_status[company], drawn)
            status, protocol = state.value, p.agent_protocol()
            updated = self._retire("agents", company, created, status, state is not drawn)
            name, description = p.agent_name(), p.agent_description()
            self.current["agents"].append((status, protocol, name, description))
            return (
                agent_id,
                self.company_ids[company],
                name,
                description,
                protocol,
                status,
                self.at(created),
                self.at(updated),
            )

        yield from self._company_members("agents", make)

    def knowledge_bases(self) -> Iterator[Chunk]:
        p = self.p
        statuses = _Covering(KNOWLEDGE_BASE_STATUS_WEIGHTS, p.knowledge_base_status)
        self.kb_company: list[int] = []

        def make(company: int, kb_id: uuid.UUID, created: int) -> Row:
            drawn = statuses()
            state = story.knowledge_base_status(self.company_status[company], drawn)
            status = state.value
            updated = self._retire("knowledge_bases", company, created, status, state is not drawn)
            name, description = p.knowledge_base_name(), p.knowledge_base_description()
            self.kb_company.append(company)
            if updated >= ACTIVITY_EARLIEST:
                if state is KnowledgeBaseStatus.ACTIVE:
                    self.events[story.KNOWLEDGE_BASE_READY].append((company, updated))
                elif state in story.FAILED_KNOWLEDGE_BASE_STATUSES:
                    self.events[story.KNOWLEDGE_BASE_FAILED].append((company, updated))
            self.current["knowledge_bases"].append((status, name, description))
            return (
                kb_id,
                self.company_ids[company],
                name,
                description,
                status,
                self.at(created),
                self.at(updated),
            )

        yield from self._company_members("knowledge_bases", make)

    def _retire(self, table: str, company: int, created: int, status: str, followed: bool) -> int:
        """updated_at of an agent or knowledge base; records until when it takes new
        links and sources (its retirement, or for ever)."""
        retired = status in story.RETIRED_STATUSES
        updated = self._row_updated(company, created, retired, followed)
        self.retired[table].append(updated if retired else 0)
        return updated

    def agent_knowledge_bases(self) -> Iterator[Chunk]:
        p, rng = self.p, self.rng
        agent_ids, agent_created, agents_of = self.members["agents"]
        kb_ids, kb_created, kbs_of = self.members["knowledge_bases"]
        retired_agent, retired_kb = self.retired["agents"], self.retired["knowledge_bases"]
        capacity = [len(a) * len(k) for a, k in zip(agents_of, kbs_of, strict=True)]
        # Proportional to each company's distinct pairs: never more than it has.
        per_company = allocate(self.counts["agent_knowledge_bases"], capacity)
        rows: list[Row] = []
        for company, count in enumerate(per_company):
            agents, kbs = agents_of[company], kbs_of[company]
            for pair in sorted(rng.sample(range(capacity[company]), count)):
                agent, kb = agents[pair // len(kbs)], kbs[pair % len(kbs)]
                # No link to an agent or knowledge base after it was switched off.
                created = story.link_created(
                    p,
                    max(agent_created[agent], kb_created[kb]),
                    retired_agent[agent],
                    retired_kb[kb],
                )
                rows.append((self.new_id(), agent_ids[agent], kb_ids[kb], self.at(created)))
                if len(rows) >= CHUNK_ROWS:
                    yield "agent_knowledge_bases", rows
                    rows = []
        yield "agent_knowledge_bases", rows

    def knowledge_sources(self) -> Iterator[Chunk]:
        p, rng = self.p, self.rng
        kb_ids, kb_created, _ = self.members["knowledge_bases"]
        n_kbs, n_sources = len(kb_ids), self.counts["knowledge_sources"]
        per_kb = [1 if i < n_sources else 0 for i in range(n_kbs)]
        spare = n_sources - sum(per_kb)
        if n_sources >= 2:
            # The first knowledge base always has several sources (of several types),
            # taken from the last one when there are no more sources than bases.
            per_kb[0] += 1
            if spare > 0:
                spare -= 1
            else:
                per_kb[n_sources - 1] -= 1
        popularity = list(accumulate(rng.paretovariate(1.5) for _ in range(n_kbs)))
        for _ in range(spare):
            per_kb[bisect_right(popularity, rng.random() * popularity[-1])] += 1
        type_total = self.type_cumulative[-1]
        rows: list[Row] = []
        for kb, count in enumerate(per_kb):
            domain = self.company_domain[self.kb_company[kb]]
            for i in range(count):
                if kb == 0 and i < len(self.type_ids):
                    kind = i
                else:
                    kind = bisect_right(self.type_cumulative, rng.random() * type_total)
                created = story.link_created(
                    p,
                    max(kb_created[kb], self.type_created[kind]),
                    self.retired["knowledge_bases"][kb],
                )
                rows.append(
                    (
                        self.new_id(),
                        kb_ids[kb],
                        self.type_ids[kind],
                        p.knowledge_source_name(self.type_names[kind], domain),
                        self.at(created),
                        self.at(story.updated_after(p, created)),
                    )
                )
                if len(rows) >= CHUNK_ROWS:
                    yield "knowledge_sources", rows
                    rows = []
        yield "knowledge_sources", rows

    # --- audit trail ---------------------------------------------------------------------

    def _plan_changes(self) -> tuple[list[dict[str, int]], list[int]]:
        """How many row-changing audit logs each company has per table, and how many
        change logs each company's audit logs record (totals: exactly the volume's)."""
        n_audit = self.counts["audit_logs"]
        needed = audit_logs_needed(self.counts["audit_change_logs"])
        changing = min(n_audit, max(needed, round(n_audit * CHANGE_LOG_SHARE)))
        per_company = allocate(changing, self.company_weight)
        tables: list[dict[str, int]] = []
        capacity: list[int] = []
        for count in per_company:
            by_table = dict.fromkeys(CHANGEABLE_COLUMNS, 0)
            for _ in range(count):
                by_table[self.p.change_table()] += 1
            tables.append(by_table)
            capacity.append(sum(n * len(CHANGEABLE_COLUMNS[t]) for t, n in by_table.items()))
        return tables, allocate(self.counts["audit_change_logs"], capacity)

    def _pick(self, indices: Sequence[int]) -> int:
        return indices[int(self.rng.random() * len(indices))]

    def _signer(self, user: int) -> int:
        """A COMPANY_ADMIN of ``user``'s company, or a super admin (always, for one)."""
        own = self.u.company[user]
        if story.super_admin_signs(self.rng, own < 0):
            return self._pick(self.super_admins)
        return self._pick(self.company_admins[own])

    def audit_logs(self) -> Iterator[Chunk]:
        """Audit logs of actions that change no row, then each company's row changes with
        their change logs."""
        tables, changes_per_company = self._plan_changes()
        changing = sum(sum(by_table.values()) for by_table in tables)
        logs: list[Row] = []
        for row in self._plain_audit_logs(self.counts["audit_logs"] - changing):
            logs.append(row)
            if len(logs) >= CHUNK_ROWS:
                yield "audit_logs", logs
                logs = []
        changes: list[Row] = []
        for company, by_table in enumerate(tables):
            self._company_changes(company, by_table, changes_per_company[company], logs, changes)
            if len(logs) >= CHUNK_ROWS or len(changes) >= CHUNK_ROWS:
                # One company's changes come whole (their histories are chains); the
                # COPYs still get at most CHUNK_ROWS rows each.
                yield from _slices("audit_logs", logs)
                yield from _slices("audit_change_logs", changes)
                logs, changes = [], []
        yield "audit_logs", logs
        yield "audit_change_logs", changes

    def _plain_audit_logs(self, total: int) -> Iterator[Row]:
        """``total`` audit logs of sign-ins, exports ...: whole actions, the last one cut.

        Sign-ins start a planned session, sign-outs lie within one, failed sign-ins are
        planned failed logins (a lockout's burst for a lockout); when those run out, the
        action becomes "other".
        """
        p, rng, u = self.p, self.rng, self.u
        n_users, n_companies = len(u.ids), self.counts["companies"]
        sessions = rng.sample(range(len(self.sessions)), len(self.sessions))
        # The first failed sign-in is for an unknown email, so every volume has one.
        singles = [i for i, failure in enumerate(self.failures) if failure[0] < 0]
        singles += rng.sample(self.single_failures, len(self.single_failures))
        lockouts = list(range(len(self.lockouts)))
        written = 0
        while written < total:
            action = p.audit_action()
            if action == "lockout" and not lockouts:
                action = "failed_sign_in"
            if (action == "sign_in" and not sessions) or (
                action == "failed_sign_in" and not singles
            ):
                action = "other"
            user: int | None
            signer: int | None = None
            moments: list[int]
            if action == "sign_in":
                user, created, _ = self.sessions[sessions.pop()]
                start = created - rng.randint(1, spec.SIGN_IN_LEAD)
                moments = [max(start, u.created[user]), created]
            elif action == "sign_out" and self.sessions:
                user, created, expires = self.sessions[self._pick(range(len(self.sessions)))]
                moments = [p.moment(created, min(expires, u.until[user]))]
            elif action == "failed_sign_in":
                failure = self.failures[singles.pop()]
                user, moments = (failure[0] if failure[0] >= 0 else None), [failure[1]]
            elif action == "lockout":
                lockout = lockouts.pop(int(rng.random() * len(lockouts)))
                user, start = self.lockouts[lockout][0], self.lockouts[lockout][1]
                burst = self.lockout_failures[lockout]
                recorded = AUDIT_ACTIONS["lockout"].count(AuditEventType.FAILED_LOGIN)
                moments = [self.failures[i][1] for i in burst[-recorded:]] + [start]
            else:
                user, signer, moments = self._actor(action, n_users, n_companies)
            events = list(AUDIT_ACTIONS[action])
            if action == "lockout":
                events = events[-len(moments) :]
            events = events[: total - written]
            written += len(events)
            # A lockout's logs are minutes apart: one user action only when seconds apart.
            grouped = len(events) > 1 and action != "lockout"
            group_id = self.new_id() if grouped else None
            user_id = None if user is None else u.ids[user]
            ip = p.ip_address()
            for event, moment in zip(events, moments, strict=False):
                signed = signer is not None and event in SIGNED_EVENT_TYPES
                if event is AuditEventType.DATA_EXPORT and user is not None:
                    self.events[story.DATA_EXPORT].append((user, moment))
                yield (
                    self.new_id(),
                    user_id,
                    event.value,
                    p.audit_description(event, None, user is not None),
                    ip,
                    u.ids[signer] if signed and signer is not None else None,
                    p.digital_signature() if signed else None,
                    p.audit_reason(event) if signed else None,
                    None,
                    None,
                    group_id,
                    self.at(moment),
                )

    def _actor(
        self, action: str, n_users: int, n_companies: int
    ) -> tuple[int, int | None, list[int]]:
        """Who did a data export or another action, who signed it, and when (seconds
        apart), while both were ACTIVE (super admins when those drawn never were)."""
        p, rng = self.p, self.rng
        signs = any(event in SIGNED_EVENT_TYPES for event in AUDIT_ACTIONS[action])
        if action == "data_export":
            admins = self.company_admins[int(rng.random() * n_companies)]
            user = self._pick(self.super_admins if story.super_admin_acts(rng) else admins)
        else:
            user = int(rng.random() * n_users)
        signer = self._signer(user) if signs else None
        lower, upper = self._active_window(user, signer)
        if upper < lower:
            user = self._pick(self.super_admins)
            signer = self._signer(user) if signs else None
            lower, upper = self._active_window(user, signer)
        moments = story.action_steps(rng, p.recent_moment(lower, upper), len(AUDIT_ACTIONS[action]))
        return user, signer, moments

    def _active_window(
        self, *people: int | None, lower: int = ACTIVITY_EARLIEST, upper: int = 0
    ) -> tuple[int, int]:
        """(earliest, latest) moment at which every one of ``people`` existed and was ACTIVE."""
        present = [person for person in people if person is not None]
        return story.activity_window(
            [lower, *(self.u.created[person] for person in present)],
            [upper, *(self.u.until[person] for person in present)],
        )

    def _company_changes(
        self,
        company: int,
        by_table: dict[str, int],
        n_changes: int,
        logs: list[Row],
        changes: list[Row],
    ) -> None:
        """The row-changing audit logs of one company and their change logs.

        Each changed column's history is a chain: a change's old value is the previous
        change's new value, and the latest new value is the row's present value.
        """
        p, rng, u = self.p, self.rng, self.u
        # (table, row index) of each audit log, in a random order.
        targets: list[tuple[str, int]] = []
        for table, count in by_table.items():
            rows = self._company_rows(table, company)
            targets += [(table, self._pick(rows)) for _ in range(count)]
        rng.shuffle(targets)
        counts = self._spread(n_changes, [len(CHANGEABLE_COLUMNS[t]) for t, _ in targets])
        events = [
            p.change_event(table) if count else AuditEventType.CONFIGURATION_UPDATE
            for (table, _), count in zip(targets, counts, strict=True)
        ]
        moments = self._change_moments(company, targets, events)
        history: dict[tuple[str, int, str], list[tuple[int, int, int]]] = {}
        columns_of: list[list[str]] = []
        for i, ((table, row), count) in enumerate(zip(targets, counts, strict=True)):
            columns = story.changed_columns(p, events[i], table, count)
            columns_of.append(columns)
            for position, column in enumerate(columns):
                history.setdefault((table, row, column), []).append((moments[i][0], i, position))
        values: dict[tuple[int, int], tuple[str, str]] = {}
        for (table, row, column), entries in history.items():
            new = self.current[table][row][CHANGEABLE_COLUMNS[table].index(column)]
            for _, i, position in sorted(entries, reverse=True):
                old = p.column_value(table, column, unlike=new)
                values[i, position] = (old, new)
                new = old
        for i, (table, row) in enumerate(targets):
            moment, user, signer, group_id, ip = moments[i]
            log_id, when = self.new_id(), self.at(moment)
            event = events[i]
            if event is AuditEventType.ROLE_ASSIGNMENT_CHANGE:
                self.events[story.ROLE_CHANGE].append((row, moment))
            elif table == "agents" and "status" in columns_of[i]:
                self.events[story.AGENT_STATUS_CHANGE].append((company, moment))
            logs.append(
                (
                    log_id,
                    u.ids[user],
                    event.value,
                    p.audit_description(event, table),
                    ip,
                    u.ids[signer],
                    p.digital_signature(),
                    p.audit_reason(event),
                    table,
                    self._row_id(table, row),
                    group_id,
                    when,
                )
            )
            for position, column in enumerate(columns_of[i]):
                old, new = values[i, position]
                changes.append((self.new_id(), log_id, column, old, new, when))

    def _change_moments(
        self, company: int, targets: list[tuple[str, int]], events: list[AuditEventType]
    ) -> list[tuple[int, int, int, uuid.UUID | None, str]]:
        """(time, user, signer, group_id, ip) of each audit log: an admin's session
        changes one to three rows, seconds apart; role changes are actions of their own."""
        p, rng = self.p, self.rng
        result: list[tuple[int, int, int, uuid.UUID | None, str]] = []
        i = 0
        while i < len(targets):
            size = 1
            if events[i] is AuditEventType.CONFIGURATION_UPDATE:
                size = min(_pick_size(rng), len(targets) - i)
                for j in range(i + 1, i + size):
                    if events[j] is not AuditEventType.CONFIGURATION_UPDATE:
                        size = j - i
                        break
            admins = self.company_admins[company]
            user = self._pick(self.super_admins if story.super_admin_acts(rng) else admins)
            signer = self._signer(user)
            group = targets[i : i + size]
            earliest = max(ACTIVITY_EARLIEST, *(self._row_created(t, row) for t, row in group))
            # A row closed (or switched off) changes no more after that; the logs of the
            # group follow the first within 5 s each.
            latest = min(self._row_closed(t, row) for t, row in group) - spec.ACTION_STEP[1] * size
            lower, upper = self._active_window(user, signer, lower=earliest, upper=latest)
            if upper < lower:
                # The admins drawn had left before then: a super admin made the change.
                user = self._pick(self.super_admins)
                signer = self._signer(user)
                lower, upper = self._active_window(user, signer, lower=earliest, upper=latest)
            moment = p.recent_moment(lower, upper)
            group_id = self.new_id() if size > 1 else None
            ip = p.ip_address()
            for step in story.action_steps(rng, moment, size):
                result.append((step, user, signer, group_id, ip))
            i += size
        return result

    def _spread(self, total: int, caps: list[int]) -> list[int]:
        """``total`` split over slots with capacities ``caps``: one each first, the rest
        at random among the free capacity."""
        counts = [1 if i < total else 0 for i in range(len(caps))]
        spare = total - sum(counts)
        if spare > 0:
            free = list(accumulate(cap - count for cap, count in zip(caps, counts, strict=True)))
            for slot in self.rng.sample(range(free[-1]), spare):
                counts[bisect_right(free, slot)] += 1
        return counts

    def _company_rows(self, table: str, company: int) -> list[int]:
        if table == "companies":
            return [company]
        if table == "users":
            return self.company_members[company]
        return self.members[table][2][company]

    def _row_closed(self, table: str, row: int) -> int:
        """When a row left ACTIVE (a closed company, a user who is not ACTIVE, a retired
        agent or knowledge base): its updated_at; 0 (now) for a row still live."""
        if table == "companies":
            closed = self.company_closed[row]
            return 0 if closed is None else closed
        if table == "users":
            return self.u.until[row] + MINUTE
        return self.retired[table][row]

    def _row_id(self, table: str, row: int) -> uuid.UUID:
        if table == "companies":
            return self.company_ids[row]
        if table == "users":
            return self.u.ids[row]
        return self.members[table][0][row]

    def _row_created(self, table: str, row: int) -> int:
        if table == "companies":
            return self.company_created[row]
        if table == "users":
            return self.u.created[row]
        return self.members[table][1][row]

    # --- security events ---------------------------------------------------------------

    def plan_lockouts(self) -> None:
        """Choose every lockout (user, times, burst of failed logins) before writing the
        failed logins, which must precede them. Only ACTIVE accounts lock."""
        p, rng, u = self.p, self.rng, self.u
        n_failed, n_lockouts = self.counts["failed_logins"], self.counts["user_lockouts"]
        self.unknown_failures = (
            min(max(1, round(n_failed * UNKNOWN_EMAIL_SHARE)), n_failed - n_lockouts)
            if n_failed > n_lockouts
            else 0
        )
        share, of = spec.LOCKOUT_BURST_SPARE
        spare = (n_failed - self.unknown_failures - n_lockouts) * share // of
        members = [i for i in range(len(u.ids)) if u.company[i] >= 0]
        members = [i for i in members if u.status[i] == "ACTIVE"] or members
        if n_lockouts <= len(members):
            users = rng.sample(members, n_lockouts)
        else:
            users = [self._pick(members) for _ in range(n_lockouts)]
        states = _Covering(LOCKOUT_STATE_WEIGHTS, p.lockout_state)
        self.lockouts: list[tuple[int, int, int, int, str, list[int], int]] = []
        self.lockout_starts: dict[int, list[int]] = {}
        for user in users:
            state = states()
            start, end, updated = p.lockout_times(state, u.created[user])
            for _ in range(5):
                if not self._in_window(user, start, margin=LOCKOUT_BURST_WINDOW):
                    break
                start, end, updated = p.lockout_times(state, u.created[user])
            attempts = p.lockout_threshold()
            burst = story.lockout_burst(p, start, attempts, u.created[user], spare)
            spare -= len(burst) - 1
            self.lockouts.append((user, start, end, updated, state, burst, attempts))
            self.lockout_starts.setdefault(user, []).append(start)
            self.events[story.LOCKOUT_STARTED].append((user, start))
            if end <= -MINUTE:
                self.events[story.LOCKOUT_ENDED].append((user, end))

    def _in_window(self, user: int, moment: int, margin: int = 0) -> bool:
        """Whether ``moment`` falls in the 30 minutes before one of ``user``'s lockouts."""
        return any(
            start - LOCKOUT_BURST_WINDOW - margin <= moment <= start + margin
            for start in self.lockout_starts.get(user, ())
        )

    def plan_failed_logins(self) -> None:
        """Every failed login as (user or -1 for an unknown email, moment, ip): each
        lockout's burst, single failures, unknown emails; before the audit trail that
        records some of them."""
        p, u = self.p, self.u
        self.failures: list[tuple[int, int, str]] = []
        self.lockout_failures: list[list[int]] = []
        for user, _, _, _, _, burst, _ in self.lockouts:
            ip = p.ip_address()
            first = len(self.failures)
            self.failures += [(user, moment, ip) for moment in burst]
            self.lockout_failures.append(list(range(first, len(self.failures))))
        singles = self.counts["failed_logins"] - self.unknown_failures - len(self.failures)
        first = len(self.failures)
        for _ in range(singles):
            while True:
                user = int(self.rng.random() * len(u.ids))
                moment = story.activity_moment(p, u.created[user])
                # Failures outside a lockout's window, which counts only the burst.
                if not self._in_window(user, moment):
                    break
            self.failures.append((user, moment, p.ip_address()))
        self.single_failures = list(range(first, len(self.failures)))
        for _ in range(self.unknown_failures):
            moment = story.activity_moment(p, ACTIVITY_EARLIEST)
            self.failures.append((-1, moment, p.ip_address()))
        self.events[story.FAILED_LOGIN] += [(f[0], f[1]) for f in self.failures if f[0] >= 0]

    def failed_logins(self) -> Iterator[Chunk]:
        p, u = self.p, self.u
        rows: list[Row] = []
        for user, moment, ip in self.failures:
            known = user >= 0
            reason = p.failure_reason(True) if known else UNKNOWN_EMAIL_REASON
            user_id = u.ids[user] if known else None
            rows.append((self.new_id(), user_id, ip, self.at(moment), reason))
            if len(rows) >= CHUNK_ROWS:
                yield "failed_logins", rows
                rows = []
        yield "failed_logins", rows

    def plan_sessions(self) -> None:
        """Every session as (user, created, expires), before the audit trail whose sign-ins
        start them: only ACTIVE users hold live ones; nobody's starts after they left ACTIVE."""
        p, rng, u = self.p, self.rng, self.u
        states = _Covering(SESSION_STATE_WEIGHTS, p.session_state)
        active = self.active_users or list(range(len(u.ids)))
        self.sessions: list[tuple[int, int, int]] = []
        for _ in range(self.counts["user_sessions"]):
            state = states()
            user = int(rng.random() * len(u.ids)) if state == "expired" else self._pick(active)
            created, expires = p.session_times(state, u.created[user], u.until[user])
            self.sessions.append((user, created, expires))
        self.events[story.SESSION_STARTED] = [(user, created) for user, created, _ in self.sessions]

    def user_lockouts(self) -> Iterator[Chunk]:
        p, u = self.p, self.u
        rows: list[Row] = []
        for user, start, end, updated, state, _, attempts in self.lockouts:
            rows.append(
                (
                    self.new_id(),
                    u.ids[user],
                    self.at(start),
                    self.at(end),
                    p.lockout_reason(state),
                    attempts,
                    self.at(start),
                    self.at(updated),
                )
            )
            if len(rows) >= CHUNK_ROWS:
                yield "user_lockouts", rows
                rows = []
        yield "user_lockouts", rows

    # --- user activity ---------------------------------------------------------------------

    def invitations(self) -> Iterator[Chunk]:
        p, u = self.p, self.u
        members = [i for i in range(len(u.ids)) if u.company[i] >= 0]
        active = [i for i in members if u.status[i] == "ACTIVE"] or members
        states = _Covering(INVITATION_STATE_WEIGHTS, p.invitation_state)
        rows: list[Row] = []
        for _ in range(self.counts["invitations"]):
            state = states()
            user = self._pick(active if state in story.OPEN_INVITATION_STATES else members)
            created, sent, expires, updated = p.invitation_times(state, u.created[user])
            if sent > u.until[user]:
                # Nobody is invited after leaving ACTIVE: the invitation is someone else's.
                user = self._pick(active)
                created, sent, expires, updated = p.invitation_times(state, u.created[user])
            self.events[story.INVITATION_SENT].append((user, sent))
            if state == "accepted":
                self.events[story.INVITATION_ACCEPTED].append((user, updated))
            rows.append(
                (
                    self.new_id(),
                    u.ids[user],
                    p.url_token(),
                    p.invitation_status(state).value,
                    self.at(sent),
                    self.at(expires),
                    p.invitation_resend_count(),
                    self.at(created),
                    self.at(updated),
                )
            )
            if len(rows) >= CHUNK_ROWS:
                yield "invitations", rows
                rows = []
        yield "invitations", rows

    def notifications(self) -> Iterator[Chunk]:
        """Notifications of drawn types; one that reports an event follows a real one of
        its user (or company) by :data:`~pytest_celestra.story.NOTIFICATION_DELAY`, or
        becomes an announcement when the scenario has no such event."""
        p, rng, u = self.p, self.rng, self.u
        statuses = _Covering(NOTIFICATION_STATUS_WEIGHTS, p.notification_status)
        methods = _Covering(NOTIFICATION_DELIVERY_WEIGHTS, p.notification_delivery_method)
        expiries = _Covering({"past": 1, "future": 1}, p.notification_expiry)
        free = story.EVENT_FREE_NOTIFICATION_TYPES
        rows: list[Row] = []
        for i in range(self.counts["notifications"]):
            kind = p.notification_type()
            status = statuses()
            delivered = status is NotificationStatus.DELIVERED
            # The first notification is read, so read and unread ones both exist.
            read = delivered and (i == 0 or p.notification_is_read())
            expiry = expiries()
            event = story.NOTIFICATION_EVENTS.get(kind)
            reported = None if event is None else self._reported(event)
            if reported is None:
                kind = kind if event is None else free[int(rng.random() * len(free))]
                user = int(rng.random() * len(u.ids))
                times = p.notification_times(status, read, expiry, u.created[user])
            else:
                user, created = reported
                # An expiry in the past needs an old enough notification.
                expiry = expiry if created <= spec.EXPIRED_NOTICE_LATEST else "future"
                times = p.notification_times_from(created, status, read, expiry)
            created, delivered_at, read_at, expires, updated = times
            company = u.company[user]
            rows.append(
                (
                    self.new_id(),
                    u.ids[user],
                    None if company < 0 else self.company_ids[company],
                    kind.value,
                    p.notification_title(kind),
                    p.notification_message(kind),
                    p.notification_priority(kind).value,
                    status.value,
                    methods().value,
                    self.at(read_at),
                    p.notification_action_url(kind),
                    self.at(expires),
                    self.at(delivered_at),
                    self.at(created),
                    self.at(updated),
                )
            )
            if len(rows) >= CHUNK_ROWS:
                yield "notifications", rows
                rows = []
        yield "notifications", rows

    def _reported(self, event: str) -> tuple[int, int] | None:
        """(user, created_at) of a notification reporting a random ``event``; None when the
        scenario has none (or, for a company's event, no member who saw it)."""
        p, u = self.p, self.u
        if event == story.PASSWORD_AGE:
            if not self.password_ages:
                return None
            user, earliest, latest = self.password_ages[self._pick_index(self.password_ages)]
            return user, p.moment(earliest, latest)
        happened = self.events[event]
        if not happened:
            return None
        owner, moment = happened[self._pick_index(happened)]
        user = owner
        if event in story.COMPANY_EVENTS:
            # A member of the company who existed then; its first admin, the oldest, else.
            user = self._pick(self.company_members[owner])
            if u.created[user] > moment:
                user = self.company_members[owner][0]
                if u.created[user] > moment:
                    return None
        return user, story.notified_after(p, moment)

    def _pick_index(self, items: Sequence[Any]) -> int:
        return int(self.rng.random() * len(items))

    def _password_ages(self, user: int, changes: list[int]) -> None:
        """Record when each password ``user`` had (set at creation, then at each change)
        was old enough for a PASSWORD_EXPIRY notice."""
        set_at = self.u.created[user]
        for next_change in [*changes, 0]:
            window = story.password_notice_window(set_at, next_change)
            if window is not None and window[1] >= ACTIVITY_EARLIEST:
                self.password_ages.append((user, max(window[0], ACTIVITY_EARLIEST), window[1]))
            set_at = next_change

    def plan_password_history(self) -> None:
        """Every password change as (user, former password, moment), before the
        notifications that report some of them."""
        p, rng, u = self.p, self.rng, self.u
        per_user = [0] * len(u.ids)
        for _ in range(self.counts["password_history"]):
            per_user[int(rng.random() * len(per_user))] += 1
        # Entries of one user must differ: the pool holds at least as many old passwords.
        pool_size = max(self.old_password_pool, max(per_user, default=0))
        self.password_changes: list[tuple[int, int, int]] = []
        # (user, earliest, latest) moments of a PASSWORD_EXPIRY notice for each password.
        self.password_ages: list[tuple[int, int, int]] = []
        changes = self.events[story.PASSWORD_CHANGE]
        for user, count in enumerate(per_user):
            moments = sorted(story.password_changed(p, u.created[user]) for _ in range(count))
            self._password_ages(user, moments)
            if not count:
                continue
            for pick, moment in zip(rng.sample(range(pool_size), count), moments, strict=True):
                self.password_changes.append((user, pick, moment))
                if moment >= ACTIVITY_EARLIEST:
                    changes.append((user, moment))

    def password_history(self) -> Iterator[Chunk]:
        u = self.u
        rows: list[Row] = []
        for user, pick, moment in self.password_changes:
            rows.append((self.new_id(), u.ids[user], self.old_passwords[pick], self.at(moment)))
            if len(rows) >= CHUNK_ROWS:
                yield "password_history", rows
                rows = []
        yield "password_history", rows

    def user_sessions(self) -> Iterator[Chunk]:
        p, u = self.p, self.u
        rows: list[Row] = []
        for user, created, expires in self.sessions:
            rows.append(
                (
                    self.new_id(),
                    u.ids[user],
                    p.url_token(),
                    p.ip_address(),
                    p.browser_user_agent(),
                    self.at(expires),
                    self.at(created),
                )
            )
            if len(rows) >= CHUNK_ROWS:
                yield "user_sessions", rows
                rows = []
        yield "user_sessions", rows


def _slices(table: str, rows: list[Row]) -> Iterator[Chunk]:
    """``rows`` of ``table`` in chunks of at most :data:`CHUNK_ROWS`."""
    for start in range(0, len(rows), CHUNK_ROWS):
        yield table, rows[start : start + CHUNK_ROWS]


def _pick_size(rng: random.Random) -> int:
    return CHANGE_GROUP_SIZES[int(rng.random() * len(CHANGE_GROUP_SIZES))]


# Each generator above writes its tuples in this column order; fail loudly on model drift.
_LAYOUT = {
    "companies": ("id", "name", "description", "size", "vertical", "status", "created_at",
                  "updated_at"),
    "knowledge_types": ("id", "name", "description", "created_at", "updated_at"),
    "users": ("id", "company_id", "role", "email", "name", "password_hash", "status",
              "created_at", "updated_at"),
    "agents": ("id", "company_id", "name", "description", "agent_protocol", "status",
               "created_at", "updated_at"),
    "knowledge_bases": ("id", "company_id", "name", "description", "status", "created_at",
                        "updated_at"),
    "agent_knowledge_bases": ("id", "agent_id", "knowledge_base_id", "created_at"),
    "knowledge_sources": ("id", "knowledge_base_id", "knowledge_type_id", "name",
                          "created_at", "updated_at"),
    "audit_logs": ("id", "user_id", "event_type", "event_description", "ip_address",
                   "signed_by", "digital_signature", "reason", "table_name", "record_id",
                   "group_id", "created_at"),
    "failed_logins": ("id", "user_id", "ip_address", "attempted_at", "failure_reason"),
    "invitations": ("id", "user_id", "token", "status", "sent_at", "expires_at",
                    "resend_count", "created_at", "updated_at"),
    "notifications": ("id", "user_id", "company_id", "notification_type", "title", "message",
                      "priority", "status", "delivery_method", "read_at", "action_url",
                      "expires_at", "delivered_at", "created_at", "updated_at"),
    "password_history": ("id", "user_id", "password_hash", "created_at"),
    "user_lockouts": ("id", "user_id", "lockout_start", "lockout_end", "reason",
                      "failed_attempts", "created_at", "updated_at"),
    "user_sessions": ("id", "user_id", "session_token", "ip_address", "user_agent",
                      "expires_at", "created_at"),
    "audit_change_logs": ("id", "audit_log_id", "column_name", "old_value", "new_value",
                          "created_at"),
}  # fmt: skip
if dict(loader.COLUMNS) != _LAYOUT:
    raise RuntimeError("scenario row layout differs from the models' columns; update _LAYOUT")
