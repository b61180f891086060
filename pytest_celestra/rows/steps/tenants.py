"""The first steps of the seeding order: companies, the knowledge type catalogue, users."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import accumulate
from typing import TYPE_CHECKING

from pytest_celestra.rows import factories, story
from pytest_celestra.rows.batches import copy_tuple
from pytest_celestra.rows.providers import company_domain, email_address
from pytest_celestra.rows.steps.draw import RowFacts, allocate, covering
from pytest_celestra.schema import spec
from pytest_celestra.schema.enums import member_of
from pytest_celestra.schema.models import CompanySize, CompanyStatus, CompanyVertical, UserStatus

if TYPE_CHECKING:
    from pytest_celestra.rows.steps.draw import Draw, Rows


@dataclass(frozen=True)
class Companies(RowFacts):
    """What the children of the companies need, by company index."""

    domain: list[str]
    weight: list[float]  # relative headcount: members, agents and knowledge bases follow it
    status: list[CompanyStatus]
    closed: list[int | None]  # when each closed company closed; None for an ACTIVE one


@dataclass(frozen=True)
class KnowledgeTypes(RowFacts):
    cumulative: list[int]  # catalogue weights, for drawing a type


@dataclass(frozen=True)
class Users(RowFacts):
    admins: list[list[int]]  # COMPANY_ADMINs, by company
    members: list[list[int]]  # every user, by company (its first admin first)
    company: list[int] = field(default_factory=list)  # -1: super admin
    status: list[str] = field(default_factory=list)
    until: list[int] = field(default_factory=list)  # the last moment each user acts
    super_admins: list[int] = field(default_factory=list)
    active: list[int] = field(default_factory=list)


def companies(d: Draw) -> Rows[Companies]:
    """Sizes, verticals and statuses covered, then the closed companies the headcount cannot
    bear reopened (story.mostly_open); each row is `CompanyFactory`'s."""
    p = d.p
    sizes = covering(spec.COMPANY_SIZE_WEIGHTS, p.company_size)
    verticals = covering(spec.COMPANY_VERTICAL_WEIGHTS, p.company_vertical)
    # The closed companies the covering draws come first and smallest (sizes cover
    # SMALL, MEDIUM ... in order), so their closing leaves most users ACTIVE.
    statuses = covering(dict(reversed(list(spec.COMPANY_STATUS_WEIGHTS.items()))), p.company_status)
    weights: list[float] = []
    drafts: list[tuple[CompanySize, CompanyVertical, CompanyStatus]] = []
    reshape = d.reshape if d.reshape and d.reshape.touches("companies", enums=False) else None
    for _ in range(d.counts["companies"]):
        size, vertical, status = sizes(), verticals(), statuses()
        if reshape is not None:  # your rules, before the name and the members follow them
            drawn = {"size": size.value, "vertical": vertical.value, "status": status.value}
            shaped = reshape("companies", drawn, enums=False)
            size, vertical = CompanySize(shaped["size"]), CompanyVertical(shaped["vertical"])
            status = CompanyStatus(shaped["status"])
        drafts.append((size, vertical, status))
        weights.append(story.headcount_weight(d.rng, spec.COMPANY_SIZE_HEADCOUNT[size]))
    final = story.mostly_open([draft[2] for draft in drafts], weights)
    company = d.recipe(factories.CompanyFactory, "size vertical status")
    c = Companies([], weights, final, [])
    for (size, vertical, _), status in zip(drafts, final, strict=True):
        row = company(size=size, vertical=vertical, status=status)
        c.add(row, d.offset(row.created_at))
        c.domain.append(company_domain(row.name))
        c.closed.append(None if status is CompanyStatus.ACTIVE else d.offset(row.updated_at))
        c.current.append((status.value, size.value, vertical.value, row.description))
        yield "companies", copy_tuple(row)
    return c


def knowledge_types(d: Draw) -> Rows[KnowledgeTypes]:
    """The catalogue's first types, each `KnowledgeTypeFactory`'s row."""
    names = list(spec.KNOWLEDGE_TYPES)[: d.counts["knowledge_types"]]
    kind = d.recipe(factories.KnowledgeTypeFactory, "name")
    t = KnowledgeTypes(list(accumulate(spec.KNOWLEDGE_TYPES[name][1] for name in names)))
    for name in names:
        row = kind(name=name)
        t.add(row, d.offset(row.created_at))
        yield "knowledge_types", copy_tuple(row)
    return t


def users(d: Draw, c: Companies) -> Rows[Users]:
    """Super admins, then each company's first admin (ACTIVE while the company is) and
    its other members."""
    p, rng = d.p, d.rng
    n_companies, n_users = d.counts["companies"], d.counts["users"]
    supers = min(max(1, round(n_users * spec.SUPER_ADMIN_SHARE)), n_users - n_companies)
    per_company = [1 + extra for extra in allocate(n_users - supers - n_companies, c.weight)]
    statuses = covering(spec.USER_STATUS_WEIGHTS, p.user_status)
    u = Users([[] for _ in c.ids], [[] for _ in c.ids])
    emails: set[str] = set()
    active = UserStatus.ACTIVE
    reshape = d.reshape if d.reshape and d.reshape.touches("users") else None
    user = d.recipe(factories.UserFactory, "company role status created name email password_hash")
    plan = [(-1, "SUPER_ADMIN")] * supers  # (company, role); no role: a member's is drawn
    for company, members in enumerate(per_company):
        plan += [(company, "COMPANY_ADMIN")] + [(company, "")] * (members - 1)
    drafts: list[tuple[int, str, int]] = []
    states: list[UserStatus] = []
    for company, role in plan:
        if company < 0:
            drawn, created = active, p.moment(*spec.SUPER_ADMIN_CREATED)
        elif role:  # the company's first admin
            drawn, created = active, c.created[company] + p.moment(0, spec.FIRST_ADMIN_DELAY)
        else:
            created = story.member_created(p, c.created[company])
            role, drawn = p.user_role().value, statuses()
        drafts.append((company, role, created))
        states.append(drawn if company < 0 else story.member_status(c.status[company], drawn))
    # Only a member of an open company whose status was drawn may become ACTIVE.
    open_members = [
        not role and c.status[company] is CompanyStatus.ACTIVE for company, role in plan
    ]
    for (company, role, created), state in zip(
        drafts, story.mostly_active(states, open_members), strict=True
    ):
        label, name = state.value, p.person_name()
        if reshape is not None:  # your rules, before the stories after this step read it
            company_id = None if company < 0 else c.ids[company]
            planned = {"company_id": company_id, "role": role, "status": label, "name": name}
            values = reshape("users", planned)
            role, label, name = values["role"], values["status"], values["name"]
        domain = spec.PLATFORM_DOMAIN if company < 0 else c.domain[company]
        email = email_address(name, domain)  # of the name your rules gave
        number = 1
        while email in emails:
            number += 1
            email = email_address(name, domain, number)
        emails.add(email)
        row = user(
            company=None if company < 0 else c.rows[company],
            role=role,
            status=member_of(UserStatus, label),
            created=created,
            name=name,
            email=email,
            password_hash=d.passwords[int(rng.random() * d.password_salts)],
        )
        index = u.add(row, created)
        u.company.append(company)
        u.status.append(label)
        u.until.append(story.activity_until(label, d.offset(row.updated_at)))
        u.current.append((role, label, name))
        if company < 0:
            u.super_admins.append(index)
        else:
            u.members[company].append(index)
            if role == "COMPANY_ADMIN":
                u.admins[company].append(index)
        if label == active.value:
            u.active.append(index)
        yield "users", copy_tuple(row)
    return u
