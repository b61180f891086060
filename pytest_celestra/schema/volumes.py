"""Scenario volumes: how many rows of each table a seeded scenario holds.

Three named volumes come with the package (`small`, `medium`, `large`); a
multiplier such as `x1000` scales `medium`; and any of them can be adjusted
per table, so a user defines their own counts without editing the package:

```python
Volume.parse("small")                       # the spec's lower bounds
Volume.parse("x1000")                       # 1,000 x medium, ~1.3 million rows
Volume.parse("medium,users=500,agents=80")  # medium with two tables changed
Volume.custom("tiny", companies=2, users=5, agents=2, knowledge_bases=2,
              agent_knowledge_bases=2)
```
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from pytest_celestra.errors import ConfigError, did_you_mean
from pytest_celestra.schema import spec
from pytest_celestra.schema.tables import TABLES_IN_FK_ORDER

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
_LOOKUP_TABLES = frozenset({"knowledge_types"})  # it does not grow with the data

VOLUME_NAMES = ("small", "medium", "large")
VOLUME_HELP = (
    "small, medium or large; xN for N x medium (e.g. x1000); "
    "optionally followed by per-table counts, e.g. 'small,users=200,agents=30'"
)
_MULTIPLIER = re.compile(r"^x([0-9]+)$")  # ASCII only: \d takes full-width digits too

MAX_TOTAL_ROWS = 10_000_000
"""The most rows a volume may hold in all tables together (about `x7633`): beyond it, a
seed would take over a minute and a half, a few GB on disk per copy, and the generator's
facts about parent rows hundreds of MB."""
BYTES_PER_ROW = 300
"""Bytes a seeded row takes on disk, tables and indexes (measured: an `x100` template
is 45 MB, 7.7 MB of it the empty schema, for 131,010 rows: 285 bytes a row; rounded up)."""
SCHEMA_BYTES = 8_000_000
"""Bytes of a database holding the empty schema (measured: 7.7 MB)."""
_MAX_DIGITS = 12
"""Digits a count may have before it is read (Python converts no more than 4,300)."""


def _shown(text: str) -> str:
    text = text.strip()
    return repr(text) if len(text) <= 60 else f"{text[:40]!r}... ({len(text):,} characters)"


def _count(shown: str, digits: str) -> int:
    """The number `digits` (ASCII digits, checked by the caller) of the volume `shown`,
    refused unread when too long."""
    digits = digits.strip()
    if len(digits) > _MAX_DIGITS:
        raise ConfigError(
            f"invalid volume {shown}: a count of {len(digits):,} digits; a volume holds at "
            f"most {MAX_TOTAL_ROWS:,} rows in all (x{largest_multiplier()})"
        )
    return int(digits)


@dataclass(frozen=True)
class Volume:
    """Rows per table for one scenario. Immutable and hashable.

    `name` is how the volume is shown (and, with the counts, keyed); `counts` maps every
    one of the 15 table names to a row count.
    """

    name: str
    counts: Mapping[str, int] = field(hash=False)

    def __post_init__(self) -> None:
        missing = [t for t in TABLES_IN_FK_ORDER if t not in self.counts]
        unknown = sorted(set(self.counts) - set(TABLES_IN_FK_ORDER))
        if unknown:
            hint = did_you_mean(unknown[0], TABLES_IN_FK_ORDER)
            raise ConfigError(
                f"volume {_shown(self.name)}: unknown table(s) {', '.join(unknown)};{hint} "
                f"The tables are: {', '.join(TABLES_IN_FK_ORDER)} (a table of yours takes "
                "its count from rules.table(..., count=...))"
            )
        if missing:
            raise ConfigError(f"volume {_shown(self.name)}: no count for {', '.join(missing)}")
        ordered = {t: int(self.counts[t]) for t in TABLES_IN_FK_ORDER}
        object.__setattr__(self, "counts", MappingProxyType(ordered))
        if (problem := feasibility_problem(self.counts)) is not None:
            raise ConfigError(f"volume {_shown(self.name)}: {problem}")

    def __hash__(self) -> int:
        return hash((self.name, tuple(self.counts.items())))

    @property
    def total_rows(self) -> int:
        return sum(self.counts.values())

    @classmethod
    def named(cls, name: str) -> Volume:
        """`small`, `medium` or `large`."""
        if name == "small":
            return cls("small", _SMALL)
        if name == "medium":
            return cls("medium", _MEDIUM)
        if name == "large":
            return cls.scaled(100, name="large")
        raise _unknown_volume(repr(name), name)

    @classmethod
    def scaled(cls, factor: int, *, name: str | None = None) -> Volume:
        """`factor` x medium; lookup tables keep their medium size."""
        if factor < 1:
            raise ConfigError(f"volume multiplier must be at least 1, got x{factor}")
        counts = {t: c if t in _LOOKUP_TABLES else c * factor for t, c in _MEDIUM.items()}
        return cls(name or f"x{factor}", counts)

    @classmethod
    def custom(cls, name: str, base: str | Volume = "small", **counts: int) -> Volume:
        """A volume of your own: `base` (a volume or its name) with `counts` changed."""
        base_volume = base if isinstance(base, Volume) else cls.parse(base)
        return cls(name, {**base_volume.counts, **counts})

    @classmethod
    def parse(cls, text: str) -> Volume:
        """Parse the `--celestra-volume` syntax; a bad one raises
        [`ConfigError`][pytest_celestra.errors.ConfigError]."""
        shown = _shown(text)
        base_text, *overrides = [part.strip() for part in text.strip().split(",")]
        multiplier = _MULTIPLIER.match(base_text)
        if multiplier:
            base = cls.scaled(_count(shown, multiplier.group(1)))
        elif base_text in VOLUME_NAMES:
            base = cls.named(base_text)
        else:
            raise _unknown_volume(shown, base_text)
        if not overrides:
            return base
        changed: dict[str, int] = {}
        for item in overrides:
            table, sep, value = (part.strip() for part in item.partition("="))
            if not sep or not value.isascii() or not value.isdigit():
                raise ConfigError(
                    f"invalid volume {shown}: {_shown(item)} is not TABLE=COUNT (a count in "
                    f"the digits 0-9); use {VOLUME_HELP}"
                )
            if table in changed:
                raise ConfigError(
                    f"invalid volume {shown}: {table} is counted twice ({table}={changed[table]} "
                    f"and {table}={value}); give each table one count"
                )
            changed[table] = _count(shown, value)
        return cls.custom(text.strip().replace(" ", ""), base, **changed)

    @property
    def base(self) -> tuple[str, int]:
        """The named volume this one is made from and its multiple: `("small", 1)` for
        `small,users=30`, `("medium", 2)` for `x2`, `("medium", 100)` for `large`."""
        base = self.name.split(",", 1)[0]
        multiplier = _MULTIPLIER.match(base)
        if multiplier:
            return "medium", int(multiplier.group(1))
        return ("medium", 100) if base == "large" else (base, 1)

    @property
    def estimated_bytes(self) -> int:
        """About how many bytes one database holding this volume takes on disk."""
        return estimate_bytes(self.total_rows)


def _unknown_volume(shown: str, name: str) -> ConfigError:
    hint = did_you_mean(name, VOLUME_NAMES)
    return ConfigError(f"invalid volume {shown}:{hint} {'Use' if hint else 'use'} {VOLUME_HELP}")


def estimate_bytes(rows: int) -> int:
    """Bytes on disk of a database holding the schema and `rows` seeded rows."""
    return SCHEMA_BYTES + rows * BYTES_PER_ROW


def format_bytes(size: float) -> str:
    """`1.4 GB`: a size for messages, in powers of 1000."""
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1000:
            return f"{size:,.0f} {unit}" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1000
    return f"{size:,.1f} TB"


def largest_multiplier() -> int:
    """The largest `xN` within [`MAX_TOTAL_ROWS`][pytest_celestra.schema.volumes.MAX_TOTAL_ROWS]."""
    fixed = sum(_MEDIUM[table] for table in _LOOKUP_TABLES)
    return (MAX_TOTAL_ROWS - fixed) // (sum(_MEDIUM.values()) - fixed)


def audit_logs_needed(change_logs: int) -> int:
    """Row-changing audit logs needed to record `change_logs` change logs (an audit log
    changes each column once, and changes at most
    [`MOST_CHANGES_PER_AUDIT_LOG`][pytest_celestra.schema.spec.MOST_CHANGES_PER_AUDIT_LOG])."""
    return -(-change_logs // spec.MOST_CHANGES_PER_AUDIT_LOG)


def feasibility_problem(counts: Mapping[str, int]) -> str | None:
    """Why `counts` (rows per table) cannot make a scenario, or None if they can.

    The one check of what a volume must allow: every channel goes through it, and the
    generator relies on it. Checked in order (no division by zero companies).
    """
    negative = [table for table, n in counts.items() if n < 0]
    if negative:
        return f"negative count for {', '.join(negative)}"
    total = sum(counts.values())
    if total > MAX_TOTAL_ROWS:
        return (
            f"{total:,} rows (about {format_bytes(estimate_bytes(total))} on disk) is more "
            f"than the {MAX_TOTAL_ROWS:,} rows a volume may hold (x{largest_multiplier()}); "
            "use a smaller volume (see docs/volumes.md)"
        )
    c = counts
    catalogue = len(spec.KNOWLEDGE_TYPES)
    most_changes = spec.MOST_CHANGES_PER_AUDIT_LOG * c["audit_logs"]
    if c["companies"] < 1:
        return "companies must be at least 1"
    if c["knowledge_types"] < 1:
        return "knowledge_types must be at least 1"
    if c["knowledge_types"] > catalogue:
        return (
            f"knowledge_types={c['knowledge_types']}, but the catalogue has "
            f"{catalogue} types; use knowledge_types <= {catalogue}"
        )
    if c["users"] < c["companies"] + 1:
        return "users must be at least companies + 1 (an admin per company and a super admin)"
    if c["agents"] < c["companies"]:
        return "agents must be at least companies (one each)"
    if c["knowledge_bases"] < c["companies"]:
        return "knowledge_bases must be at least companies (one each)"
    if c["user_lockouts"] > c["failed_logins"]:
        return "user_lockouts must not exceed failed_logins (a lockout follows failed logins)"
    if c["audit_change_logs"] > most_changes:
        return (
            f"audit_change_logs={c['audit_change_logs']} needs at least "
            f"{audit_logs_needed(c['audit_change_logs'])} audit_logs (an audit "
            f"log changes each column once); use audit_change_logs <= {most_changes}"
        )
    if c["agent_knowledge_bases"] > c["agents"] * c["knowledge_bases"] // c["companies"]:
        return "agent_knowledge_bases exceed the distinct same-company agent/knowledge base pairs"
    return None
