"""Scenario volumes: how many rows of each table a seeded scenario holds.

Three named volumes come with the package (``small``, ``medium``, ``large``); a
multiplier such as ``x1000`` scales ``medium``; and any of them can be adjusted
per table, so a user defines their own counts without editing the package::

    Volume.parse("small")                       # the spec's lower bounds
    Volume.parse("x1000")                       # 1,000 x medium, ~1.3 million rows
    Volume.parse("medium,users=500,agents=80")  # medium with two tables changed
    Volume.custom("tiny", companies=2, users=5, agents=2, knowledge_bases=2,
                  agent_knowledge_bases=2)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from pytest_celestra.errors import ConfigError
from pytest_celestra.models import TABLES_IN_FK_ORDER

if TYPE_CHECKING:
    from collections.abc import Mapping

_SMALL = {
    "companies": 5,
    "knowledge_types": 5,
    "users": 20,
    "agents": 10,
    "knowledge_bases": 15,
    "knowledge_sources": 30,
    "agent_knowledge_bases": 20,
    "user_sessions": 50,
    "failed_logins": 20,
    "audit_logs": 100,
    "audit_change_logs": 200,
    "notifications": 100,
    "invitations": 20,
    "password_history": 50,
    "user_lockouts": 10,
}
# The spec's upper bounds: twice small, but for users (50, not 40).
_MEDIUM = {**{table: 2 * count for table, count in _SMALL.items()}, "users": 50}
# knowledge_types is a lookup table: it does not grow with the data.
_LOOKUP_TABLES = frozenset({"knowledge_types"})

VOLUME_NAMES = ("small", "medium", "large")
VOLUME_HELP = (
    "small, medium or large; xN for N x medium (e.g. x1000); "
    "optionally followed by per-table counts, e.g. 'small,users=200,agents=30'"
)
_MULTIPLIER = re.compile(r"^x(\d+)$")


@dataclass(frozen=True)
class Volume:
    """Rows per table for one scenario. Immutable and hashable.

    ``name`` is how the volume is shown and keyed (the template cache uses it together
    with the counts); ``counts`` maps every one of the 15 table names to a row count.
    """

    name: str
    counts: Mapping[str, int] = field(hash=False)

    def __post_init__(self) -> None:
        missing = [t for t in TABLES_IN_FK_ORDER if t not in self.counts]
        unknown = sorted(set(self.counts) - set(TABLES_IN_FK_ORDER))
        if unknown:
            raise ConfigError(
                f"volume {self.name!r}: unknown table(s) {', '.join(unknown)}; "
                f"the tables are: {', '.join(TABLES_IN_FK_ORDER)}"
            )
        if missing:
            raise ConfigError(f"volume {self.name!r}: no count for {', '.join(missing)}")
        ordered = {t: int(self.counts[t]) for t in TABLES_IN_FK_ORDER}
        object.__setattr__(self, "counts", MappingProxyType(ordered))
        self._check_feasible()

    def __hash__(self) -> int:
        return hash((self.name, tuple(self.counts.items())))

    @property
    def total_rows(self) -> int:
        return sum(self.counts.values())

    # --- constructors ---------------------------------------------------------------

    @classmethod
    def named(cls, name: str) -> Volume:
        """``small``, ``medium`` or ``large``."""
        if name == "small":
            return cls("small", _SMALL)
        if name == "medium":
            return cls("medium", _MEDIUM)
        if name == "large":
            return cls.scaled(100, name="large")
        raise ConfigError(f"unknown volume {name!r}; use {VOLUME_HELP}")

    @classmethod
    def scaled(cls, factor: int, *, name: str | None = None) -> Volume:
        """``factor`` x medium; lookup tables keep their medium size."""
        if factor < 1:
            raise ConfigError(f"volume multiplier must be at least 1, got x{factor}")
        counts = {t: c if t in _LOOKUP_TABLES else c * factor for t, c in _MEDIUM.items()}
        return cls(name or f"x{factor}", counts)

    @classmethod
    def custom(cls, name: str, base: str | Volume = "small", **counts: int) -> Volume:
        """A volume of your own: ``base`` (a volume or its name) with ``counts`` changed."""
        base_volume = base if isinstance(base, Volume) else cls.parse(base)
        return cls(name, {**base_volume.counts, **counts})

    @classmethod
    def parse(cls, text: str) -> Volume:
        """Parse the ``--celestra-volume`` syntax; a bad one raises :class:`ConfigError`."""
        base_text, *overrides = [part.strip() for part in text.strip().split(",")]
        multiplier = _MULTIPLIER.match(base_text)
        if multiplier:
            base = cls.scaled(int(multiplier.group(1)))
        elif base_text in VOLUME_NAMES:
            base = cls.named(base_text)
        else:
            raise ConfigError(f"invalid volume {text!r}: use {VOLUME_HELP}")
        if not overrides:
            return base
        changed: dict[str, int] = {}
        for item in overrides:
            table, sep, value = item.partition("=")
            if not sep or not value.strip().isdigit():
                raise ConfigError(
                    f"invalid volume {text!r}: {item!r} is not TABLE=COUNT; use {VOLUME_HELP}"
                )
            changed[table.strip()] = int(value)
        return cls.custom(text.strip().replace(" ", ""), base, **changed)

    # --- validation -----------------------------------------------------------------

    def _check_feasible(self) -> None:
        """Reject counts that cannot make a realistic, constraint-satisfying scenario."""
        c = self.counts
        rules = [
            (c["companies"] >= 1, "companies must be at least 1"),
            (c["knowledge_types"] >= 1, "knowledge_types must be at least 1"),
            (
                c["users"] >= c["companies"] + 1,
                "users must be at least companies + 1 (an admin per company and a super admin)",
            ),
            (c["agents"] >= c["companies"], "agents must be at least companies (one each)"),
            (
                c["knowledge_bases"] >= c["companies"],
                "knowledge_bases must be at least companies (one each)",
            ),
            (
                c["user_lockouts"] <= c["failed_logins"],
                "user_lockouts must not exceed failed_logins (a lockout follows failed logins)",
            ),
            (
                c["audit_change_logs"] == 0 or c["audit_logs"] >= 1,
                "audit_change_logs need at least one audit_log",
            ),
            (
                c["agent_knowledge_bases"] <= c["agents"] * c["knowledge_bases"] // c["companies"],
                "agent_knowledge_bases exceed the distinct same-company agent/knowledge base pairs",
            ),
        ]
        negative = [t for t, n in c.items() if n < 0]
        if negative:
            raise ConfigError(f"volume {self.name!r}: negative count for {', '.join(negative)}")
        for ok, message in rules:
            if not ok:
                raise ConfigError(f"volume {self.name!r}: {message}")
