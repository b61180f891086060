"""Each company's agents and knowledge bases, the links between them and the sources of
the knowledge bases."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from itertools import accumulate
from typing import TYPE_CHECKING, Any

from pytest_celestra.rows import factories, factory_internals, story
from pytest_celestra.rows.batches import copy_tuple
from pytest_celestra.rows.steps.draw import RowFacts, allocate, covering
from pytest_celestra.schema import spec
from pytest_celestra.schema.enums import label_of, member_of
from pytest_celestra.schema.models import KnowledgeBaseStatus

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from pytest_celestra.rows.batches import PendingRow
    from pytest_celestra.rows.steps.draw import Draw, Rows
    from pytest_celestra.rows.steps.tenants import Companies, KnowledgeTypes


@dataclass(frozen=True)
class Assets(RowFacts):
    """What the children and the audit trail need of the agents (or knowledge bases)."""

    by_company: list[list[int]]
    retired: list[int] = field(default_factory=list)  # when each retired, or 0 (never)
    # (company, moment) of knowledge bases that became ready, or whose build failed
    ready: list[tuple[int, int]] = field(default_factory=list)
    failed: list[tuple[int, int]] = field(default_factory=list)


def _spread(
    d: Draw,
    c: Companies,
    a: Assets,
    factory: Any,
    statuses: Callable[[], Any],
    follow: Callable[..., Any],
) -> Iterator[tuple[int, PendingRow]]:
    """(company, row) of `factory`'s table spread over the companies by weight (>= 1 each),
    each of a covered status that `follow`s its company's; each row kept in `a`."""
    table = factory_internals.model_class(factory).__tablename__
    per_company = [1 + extra for extra in allocate(d.counts[table] - len(c.ids), c.weight)]
    recipe = d.recipe(factory, "company status")
    reshape = d.reshape if d.reshape and d.reshape.touches(table) else None
    for company, count in enumerate(per_company):
        for _ in range(count):
            status = follow(c.status[company], statuses())
            if reshape is not None:  # your rules, before the stories after this step read it
                values = {"company_id": c.ids[company], "status": status.value}
                label = reshape(table, values)["status"]
                status = member_of(type(status), label)
            row = recipe(company=c.rows[company], status=status)
            a.by_company[company].append(a.add(row, d.offset(row.created_at)))
            retired = label_of(row.status) in story.RETIRED_STATUSES
            a.retired.append(d.offset(row.updated_at) if retired else 0)
            yield company, row


def agents(d: Draw, c: Companies) -> Rows[Assets]:
    a = Assets([[] for _ in c.ids])
    statuses = covering(spec.AGENT_STATUS_WEIGHTS, d.p.agent_status)
    for _, row in _spread(d, c, a, factories.AgentFactory, statuses, story.agent_status):
        a.current.append((label_of(row.status), row.agent_protocol, row.name, row.description))
        yield "agents", copy_tuple(row)
    return a


def knowledge_bases(d: Draw, c: Companies) -> Rows[Assets]:
    a = Assets([[] for _ in c.ids])
    statuses = covering(spec.KNOWLEDGE_BASE_STATUS_WEIGHTS, d.p.knowledge_base_status)
    factory = factories.KnowledgeBaseFactory
    for company, row in _spread(d, c, a, factory, statuses, story.knowledge_base_status):
        updated = d.offset(row.updated_at)
        if updated >= spec.ACTIVITY_EARLIEST:
            if row.status is KnowledgeBaseStatus.ACTIVE:
                a.ready.append((company, updated))
            elif row.status in story.FAILED_KNOWLEDGE_BASE_STATUSES:
                a.failed.append((company, updated))
        a.current.append((label_of(row.status), row.name, row.description))
        yield "knowledge_bases", copy_tuple(row)
    return a


def agent_knowledge_bases(d: Draw, c: Companies, agents: Assets, kbs: Assets) -> Rows[None]:
    """Links within each company, spread by its distinct agent / knowledge base pairs."""
    capacity = [len(a) * len(k) for a, k in zip(agents.by_company, kbs.by_company, strict=True)]
    per_company = allocate(d.counts["agent_knowledge_bases"], capacity)
    link = d.recipe(factories.AgentKnowledgeBaseFactory, "company agent knowledge_base")
    for company, count in enumerate(per_company):
        of_agents, of_kbs = agents.by_company[company], kbs.by_company[company]
        for pair in sorted(d.rng.sample(range(capacity[company]), count)):
            agent, kb = of_agents[pair // len(of_kbs)], of_kbs[pair % len(of_kbs)]
            row = link(
                company=c.rows[company], agent=agents.rows[agent], knowledge_base=kbs.rows[kb]
            )
            yield "agent_knowledge_bases", copy_tuple(row)


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


def knowledge_sources(d: Draw, types: KnowledgeTypes, kbs: Assets) -> Rows[None]:
    """Each knowledge base's sources (the first of several types), of types by weight."""
    rng, type_total = d.rng, types.cumulative[-1]
    source = d.recipe(factories.KnowledgeSourceFactory, "knowledge_base knowledge_type")
    for kb, count in enumerate(_sources_per_base(d, len(kbs.ids))):
        for i in range(count):
            if kb == 0 and i < len(types.ids):
                kind = i
            else:
                kind = bisect_right(types.cumulative, rng.random() * type_total)
            row = source(knowledge_base=kbs.rows[kb], knowledge_type=types.rows[kind])
            yield "knowledge_sources", copy_tuple(row)
