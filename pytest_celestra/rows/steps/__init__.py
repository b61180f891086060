"""The bulk generator: one step per table (or plan), each a function of the facts the
steps before it returned.

[`STEPS`][pytest_celestra.rows.steps.STEPS] is the order: each
[`Step`][pytest_celestra.rows.steps.Step] names the tables it writes (none for a plan), the
steps whose facts it reads, and a function `(draw, facts) -> rows` whose generator yields
`(table, row)` pairs and returns the step's own facts.
[`generate`][pytest_celestra.rows.steps.generate] runs the steps and cuts their rows into
chunks; the public entry points are in [`scenario`][pytest_celestra.rows.scenario].
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from pytest_celestra.rows.passwords import (
    DEFAULT_PASSWORD,
    HashPool,
    current_hasher,
    hashing_ahead,
    old_password,
)
from pytest_celestra.rows.providers import CelestraProvider
from pytest_celestra.rows.steps import activity, assets, audit, security, tenants
from pytest_celestra.rows.steps.draw import CHUNK_ROWS, Draw, chunked

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping
    from datetime import datetime

    from pytest_celestra.rows.loader import Chunk
    from pytest_celestra.rows.steps.draw import Rows
    from pytest_celestra.schema.app_rules import SchemaRules
    from pytest_celestra.schema.volumes import Volume

__all__ = ["CHUNK_ROWS", "OLD_PASSWORD_POOL", "PASSWORD_POOL", "STEPS", "Step", "generate"]

PASSWORD_POOL = 16
"""Hashes (salts) of the default password the users share (never more than users)."""
OLD_PASSWORD_POOL = 8
"""Former passwords password_history draws from (more when one user has more entries)."""


@dataclass(frozen=True)
class Step:
    """One step of the seeding order."""

    name: str
    """The facts it returns are known by this name to the steps after it."""
    tables: tuple[str, ...]
    """Tables it writes, parents first (none for a plan)."""
    parents: tuple[str, ...]
    """Names of the steps whose facts it reads: it is handed those and no others."""
    run: Callable[[Draw, Mapping[str, Any]], Rows[Any]]


def _table(
    name: str, parents: str, make: Callable[..., Rows[Any]], tables: tuple[str, ...] | None = None
) -> Step:
    """A step that writes `tables` (the table `name`): `make(draw, *facts of parents)`."""
    names = tuple(parents.split())

    def run(d: Draw, f: Mapping[str, Any]) -> Rows[Any]:
        return make(d, *(f[name] for name in names))

    return Step(name, (name,) if tables is None else tables, names, run)


def _plan(name: str, parents: str, choose: Callable[..., Any]) -> Step:
    def make(d: Draw, *facts: Any) -> Rows[Any]:
        yield from ()
        return choose(d, *facts)

    return _table(name, parents, make, tables=())


STEPS: tuple[Step, ...] = (
    _table("companies", "", tenants.companies),
    _table("knowledge_types", "", tenants.knowledge_types),
    _table("users", "companies", tenants.users),
    _table("agents", "companies", assets.agents),
    _table("knowledge_bases", "companies", assets.knowledge_bases),
    _table(
        "agent_knowledge_bases", "companies agents knowledge_bases", assets.agent_knowledge_bases
    ),
    _table("knowledge_sources", "knowledge_types knowledge_bases", assets.knowledge_sources),
    _plan("lockouts", "users", security.plan_lockouts),
    _plan("failures", "users lockouts", security.plan_failed_logins),
    _plan("sessions", "users", security.plan_sessions),
    _table(
        "audit_logs",
        "companies users agents knowledge_bases lockouts failures sessions",
        lambda d, *facts: audit.audit_logs(d, audit.Trail(*facts)),
        tables=("audit_logs", "audit_change_logs"),
    ),
    _table("failed_logins", "users failures", security.failed_logins),
    _table("invitations", "users", activity.invitations),
    _plan("passwords", "users", activity.plan_password_history),
    _table(
        "notifications",
        "users knowledge_bases lockouts failures sessions audit_logs invitations passwords",
        activity.notifications,
    ),
    _table("password_history", "users passwords", activity.password_history),
    _table("user_lockouts", "users lockouts", security.user_lockouts),
    _table("user_sessions", "users sessions", security.user_sessions),
)
"""The seeding order. Sign-ins, sign-outs and failed logins are planned before the audit
trail that records them; notifications report events of every table. Users stay right
after companies (loaded later they would find their hashes ready, but the COPY of the
tables after them took ~100 ms longer)."""


def generate(
    volume: Volume, seed: int, anchor: datetime, rules: SchemaRules | None = None
) -> Iterator[Chunk]:
    """`(table, rows)` chunks of the whole scenario, in the order of
    [`STEPS`][pytest_celestra.rows.steps.STEPS]; users and companies reshaped by `rules`
    ([`IN_THE_GENERATOR`][pytest_celestra.schema.app_rules.IN_THE_GENERATOR])."""
    counts = volume.counts
    # Salts depend on (seed, index) alone, so a thread can hash ahead from the start.
    hasher = current_hasher()
    d = Draw(
        CelestraProvider.seeded(seed),
        anchor,
        counts,
        HashPool(hasher, lambda _: DEFAULT_PASSWORD, f"celestra-scenario:{seed}:password"),
        HashPool(hasher, old_password, f"celestra-scenario:{seed}:old"),
        min(PASSWORD_POOL, counts["users"]),
        min(OLD_PASSWORD_POOL, counts["password_history"]),
        None if rules is None else rules.reshaper(seed),
    )
    facts: dict[str, Any] = {}
    with hashing_ahead(
        (d.passwords, range(d.password_salts)),
        (d.old_passwords, range(d.old_password_pool)),
    ):
        for step in STEPS:
            # The facts of its parents alone: reading another step's raises `KeyError`.
            known = MappingProxyType({name: facts[name] for name in step.parents})
            facts[step.name] = yield from chunked(step.tables, step.run(d, known))
