"""Each company's agents and knowledge bases, the links between them and the sources of
the knowledge bases."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from itertools import accumulate
from typing import TYPE_CHECKING, Any

from pytest_celestra.rows import story
from pytest_celestra.rows.steps.draw import RowFacts, allocate, covering
from pytest_celestra.schema import spec
from pytest_celestra.schema.models import KnowledgeBaseStatus

if TYPE_CHECKING:
    import uuid
    from collections.abc import Callable

    from pytest_celestra.rows.loader import Row
    from pytest_celestra.rows.steps.draw import Draw, Rows
    from pytest_celestra.rows.steps.tenants import Companies, KnowledgeTypes
    from pytest_celestra.schema.models import CompanyStatus


@dataclass(frozen=True)
class Assets(RowFacts):
    """What the children and the audit trail need of the agents (or knowledge bases)."""

    by_company: list[list[int]]
    company: list[int] = field(default_factory=list)
    retired: list[int] = field(default_factory=list)  # when each retired, or 0 (never)
    # (company, moment) of knowledge bases that became ready, or whose build failed
    ready: list[tuple[int, int]] = field(default_factory=list)
    failed: list[tuple[int, int]] = field(default_factory=list)


def _spread(
    d: Draw,
    table: str,
    c: Companies,
    statuses: Callable[[], Any],
    follow: Callable[[CompanyStatus, Any], Any],
    make: Callable[[int, uuid.UUID, int, Any, bool], Row],
) -> Rows[None]:
    """Rows of `table` spread over the companies by weight (>= 1 each), each made by
    `make(company, id, created, status, followed)`, the status `follow`ing its company's."""
    n_companies = d.counts["companies"]
    per_company = [1 + extra for extra in allocate(d.counts[table] - n_companies, c.weight)]
    for company, count in enumerate(per_company):
        for _ in range(count):
            row_id = d.new_id()
            when = story.member_created(d.p, c.created[company])
            drawn = statuses()
            state = follow(c.status[company], drawn)
            yield table, make(company, row_id, when, state, state is not drawn)


def _updated(
    d: Draw, a: Assets, c: Companies, company: int, created: int, status: str, followed: bool
) -> int:
    """updated_at of an agent or knowledge base, recording the row's facts in `a`."""
    retired = status in story.RETIRED_STATUSES
    updated = story.row_updated(
        d.p, created, left_service=retired, closing=c.closed[company], with_company=followed
    )
    a.by_company[company].append(len(a.ids))
    a.created.append(created)
    a.company.append(company)
    a.retired.append(updated if retired else 0)
    return updated


def agents(d: Draw, c: Companies) -> Rows[Assets]:
    p, a = d.p, Assets([[] for _ in c.ids])
    statuses = covering(spec.AGENT_STATUS_WEIGHTS, p.agent_status)

    def make(company: int, agent_id: uuid.UUID, created: int, state: Any, followed: bool) -> Row:
        status, protocol = state.value, p.agent_protocol()
        updated = _updated(d, a, c, company, created, status, followed)
        name, description = p.agent_name(), p.agent_description()
        a.ids.append(agent_id)
        a.current.append((status, protocol, name, description))
        row = (agent_id, c.ids[company], name, description, protocol, status)
        return (*row, d.at(created), d.at(updated))

    yield from _spread(d, "agents", c, statuses, story.agent_status, make)
    return a


def knowledge_bases(d: Draw, c: Companies) -> Rows[Assets]:
    p, a = d.p, Assets([[] for _ in c.ids])
    statuses = covering(spec.KNOWLEDGE_BASE_STATUS_WEIGHTS, p.knowledge_base_status)

    def make(company: int, kb_id: uuid.UUID, created: int, state: Any, followed: bool) -> Row:
        updated = _updated(d, a, c, company, created, state.value, followed)
        name, description = p.knowledge_base_name(), p.knowledge_base_description()
        if updated >= spec.ACTIVITY_EARLIEST:
            if state is KnowledgeBaseStatus.ACTIVE:
                a.ready.append((company, updated))
            elif state in story.FAILED_KNOWLEDGE_BASE_STATUSES:
                a.failed.append((company, updated))
        a.ids.append(kb_id)
        a.current.append((state.value, name, description))
        row = (kb_id, c.ids[company], name, description, state.value)
        return (*row, d.at(created), d.at(updated))

    yield from _spread(d, "knowledge_bases", c, statuses, story.knowledge_base_status, make)
    return a


def agent_knowledge_bases(d: Draw, agents: Assets, kbs: Assets) -> Rows[None]:
    """Links within each company, spread by its distinct agent / knowledge base pairs."""
    capacity = [len(a) * len(k) for a, k in zip(agents.by_company, kbs.by_company, strict=True)]
    per_company = allocate(d.counts["agent_knowledge_bases"], capacity)
    for company, count in enumerate(per_company):
        of_agents, of_kbs = agents.by_company[company], kbs.by_company[company]
        for pair in sorted(d.rng.sample(range(capacity[company]), count)):
            agent, kb = of_agents[pair // len(of_kbs)], of_kbs[pair % len(of_kbs)]
            created = story.link_created(
                d.p,
                max(agents.created[agent], kbs.created[kb]),
                agents.retired[agent],
                kbs.retired[kb],
            )
            yield (
                "agent_knowledge_bases",
                (d.new_id(), agents.ids[agent], kbs.ids[kb], d.at(created)),
            )


def _sources_per_base(d: Draw, n_kbs: int) -> list[int]:
    """How many sources each knowledge base has: one each, a few popular ones many; the
    first always several (of several types)."""
    rng, n_sources = d.rng, d.counts["knowledge_sources"]
    per_kb = [1 if i < n_sources else 0 for i in range(n_kbs)]
    spare = n_sources - sum(per_kb)
    if n_sources >= 2:
        per_kb[0] += 1
        if spare > 0:
            spare -= 1
        else:
            per_kb[n_sources - 1] -= 1
    popularity = list(accumulate(rng.paretovariate(spec.SOURCE_POPULARITY) for _ in range(n_kbs)))
    for _ in range(spare):
        per_kb[bisect_right(popularity, rng.random() * popularity[-1])] += 1
    return per_kb


def knowledge_sources(d: Draw, c: Companies, types: KnowledgeTypes, kbs: Assets) -> Rows[None]:
    p, rng = d.p, d.rng
    type_total = types.cumulative[-1]
    for kb, count in enumerate(_sources_per_base(d, len(kbs.ids))):
        domain = c.domain[kbs.company[kb]]
        for i in range(count):
            if kb == 0 and i < len(types.ids):
                kind = i
            else:
                kind = bisect_right(types.cumulative, rng.random() * type_total)
            lower = max(kbs.created[kb], types.created[kind])
            created = story.link_created(p, lower, kbs.retired[kb])
            row_id = d.new_id()
            name = p.knowledge_source_name(types.names[kind], domain)
            row = (row_id, kbs.ids[kb], types.ids[kind], name)
            yield "knowledge_sources", (*row, d.at(created), d.at(story.updated_after(p, created)))
