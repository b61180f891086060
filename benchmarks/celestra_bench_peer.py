"""The peer of ``bench.py``: the same rows made one by one with the package's factories.

This is what a suite without a bulk path does: ``<Model>Factory.create()`` per row, in one
session whose factories flush after every object (``sqlalchemy_session_persistence =
"flush"``), and one commit at the end. Parents are passed explicitly, picked from the rows
already created, so every call makes exactly one row (no SubFactory chains) and the cost
measured is the per-row ORM + Faker work. Each table gets ``fraction`` of its count in the
volume (at least one row), so a large volume can be timed on a sample and scaled.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import datetime

    from pytest_celestra.schema.volumes import Volume


def sample_counts(volume: Volume, fraction: float) -> dict[str, int]:
    """Rows per table the peer creates: ``fraction`` of the volume, at least one each."""
    return {
        table: 0 if count == 0 else max(1, math.ceil(count * fraction))
        for table, count in volume.counts.items()
    }


def create_rows_one_by_one(
    db_url: str, volume: Volume, *, fraction: float, seed: int, anchor: datetime
) -> int:
    """Create the (sampled) volume row by row in an empty schema database; return the rows.

    ``anchor`` is unused: factories place their times relative to the wall clock.
    """
    import factory.random
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session
    from sqlalchemy.pool import NullPool

    from pytest_celestra.rows import factories as f
    from pytest_celestra.rows.providers import (
        CHANGEABLE_COLUMNS,
        SIGNED_EVENT_TYPES,
        CelestraProvider,
    )
    from pytest_celestra.urls import sqlalchemy_url

    counts = sample_counts(volume, fraction)
    factory.random.reseed_random(seed)  # type: ignore[no-untyped-call]
    rng = random.Random(seed)
    provider = CelestraProvider.seeded(seed)
    engine = create_engine(sqlalchemy_url(db_url), poolclass=NullPool)
    created = 0
    try:
        with Session(engine) as session, f.bound_session(session):
            companies = [f.CompanyFactory.create() for _ in range(counts["companies"])]
            knowledge_types = [
                f.KnowledgeTypeFactory.create() for _ in range(counts["knowledge_types"])
            ]

            # One super admin; then each company's first member is its admin, the rest
            # are spread round-robin with the factory's own role draw.
            users = [f.UserFactory.create(super_admin=True)]
            admins: dict[Any, Any] = {None: users[0]}
            for index in range(counts["users"] - 1):
                company = companies[index % len(companies)]
                if company.id in admins:
                    user = f.UserFactory.create(company=company)
                else:
                    user = f.UserFactory.create(company=company, company_admin=True)
                    admins[company.id] = user
                users.append(user)

            agents = [
                f.AgentFactory.create(company=companies[i % len(companies)])
                for i in range(counts["agents"])
            ]
            knowledge_bases = [
                f.KnowledgeBaseFactory.create(company=companies[i % len(companies)])
                for i in range(counts["knowledge_bases"])
            ]
            for agent, knowledge_base in _same_company_pairs(
                agents, knowledge_bases, counts["agent_knowledge_bases"], rng
            ):
                f.AgentKnowledgeBaseFactory.create(agent=agent, knowledge_base=knowledge_base)
            for _ in range(counts["knowledge_sources"]):
                f.KnowledgeSourceFactory.create(
                    knowledge_base=rng.choice(knowledge_bases),
                    knowledge_type=rng.choice(knowledge_types),
                )

            # Audit logs: enough of them record a configuration change of an agent to hold
            # the change logs (one per changeable column each); the signer, when the event
            # type needs one, is an admin of the user's company, passed explicitly so no
            # extra user is made.
            agents_by_company: dict[Any, list[Any]] = defaultdict(list)
            for agent in agents:
                agents_by_company[agent.company_id].append(agent)
            change_logs: list[Any] = []
            audit_count = counts["audit_logs"]
            per_log = len(CHANGEABLE_COLUMNS["agents"])
            changes_wanted = -(-counts["audit_change_logs"] // per_log)
            if changes_wanted > audit_count:
                raise RuntimeError(f"{audit_count} audit logs cannot hold the change logs")
            for index in range(audit_count):
                user = rng.choice(users)
                signer = admins.get(user.company_id, users[0])
                if index < changes_wanted:
                    admin = signer
                    record = rng.choice(agents_by_company.get(admin.company_id) or agents)
                    change_logs.append(
                        f.AuditLogFactory.create(
                            config_change=True, user=admin, record=record, signer=admin
                        )
                    )
                    continue
                event_type = provider.audit_event_type()
                f.AuditLogFactory.create(
                    user=user,
                    event_type=event_type,
                    signer=signer if event_type in SIGNED_EVENT_TYPES else None,
                )
            for _ in range(counts["failed_logins"]):
                f.FailedLoginFactory.create(user=rng.choice(users))
            for _ in range(counts["invitations"]):
                f.InvitationFactory.create(user=rng.choice(users))
            for _ in range(counts["notifications"]):
                f.NotificationFactory.create(user=rng.choice(users))
            for _ in range(counts["password_history"]):
                f.PasswordHistoryFactory.create(user=rng.choice(users))
            for _ in range(counts["user_lockouts"]):
                f.UserLockoutFactory.create(user=rng.choice(users), failed_logins=False)
            for _ in range(counts["user_sessions"]):
                f.UserSessionFactory.create(user=rng.choice(users))
            for index in range(counts["audit_change_logs"]):
                f.AuditChangeLogFactory.create(audit_log=change_logs[index % len(change_logs)])
            session.commit()
            created = sum(counts.values())
    finally:
        engine.dispose()
    return created


def _same_company_pairs(
    agents: list[Any], knowledge_bases: list[Any], count: int, rng: random.Random
) -> list[tuple[Any, Any]]:
    """``count`` distinct (agent, knowledge base) pairs of one company each, at random."""
    by_company: dict[Any, list[Any]] = defaultdict(list)
    for knowledge_base in knowledge_bases:
        by_company[knowledge_base.company_id].append(knowledge_base)
    pairs = [(a, kb) for a in agents for kb in by_company.get(a.company_id, [])]
    rng.shuffle(pairs)
    if len(pairs) < count:
        raise RuntimeError(
            f"only {len(pairs)} same-company agent/knowledge base pairs for {count} links"
        )
    return pairs[:count]
