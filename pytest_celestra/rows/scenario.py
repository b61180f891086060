"""The whole Celestra scenario: every table at a volume's row counts, FK-consistent and
realistic, generated as a stream of row chunks and COPY-loaded in one transaction.

```python
from pytest_celestra.rows.scenario import seed_scenario

with psycopg.connect(dsn) as connection:       # schema already created
    summary = seed_scenario(connection, "large", seed=42)
    connection.commit()                        # seed_scenario never commits
print(summary)
```

Rows are plain tuples drawn from
[`CelestraProvider`][pytest_celestra.rows.providers.CelestraProvider] (as the factories) seeded
with `seed` alone: the same seed and volume give the same rows, ids included. Every time is
`anchor` + a drawn offset; the anchor is midnight UTC of the day
([`anchor_for`][pytest_celestra.rows.scenario.anchor_for]), so "current" cases (sessions valid
for >= 2 more days, open invitations, active lockouts) stay current all day.

The rows come from [`pytest_celestra.rows.steps`][pytest_celestra.rows.steps], one step per
table; only compact facts about parents are kept, and rows come in chunks of `CHUNK_ROWS`,
so memory stays flat. The password hashes its rows use (at most `PASSWORD_POOL` of the
default password, and `OLD_PASSWORD_POOL` former ones) are computed by a thread beside the
generator; their salts depend on the seed and the index alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from pytest_celestra.config import DEFAULT_SEED
from pytest_celestra.rows import loader
from pytest_celestra.rows.steps import CHUNK_ROWS, OLD_PASSWORD_POOL, PASSWORD_POOL, generate
from pytest_celestra.rows.steps.draw import allocate
from pytest_celestra.schema.volumes import Volume

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from pytest_celestra.rows.loader import Chunk
    from pytest_celestra.schema.app_rules import SchemaRules

__all__ = [
    "CHUNK_ROWS",
    "DEFAULT_SEED",
    "INLINE_ROWS",
    "OLD_PASSWORD_POOL",
    "PASSWORD_POOL",
    "ScenarioSummary",
    "allocate",
    "anchor_for",
    "generate_scenario",
    "seed_scenario",
]

INLINE_ROWS = 10_000
"""Scenarios of at most this many rows are generated in the thread that loads them; larger
ones in a worker thread (2 cores: 1.3k rows 44 vs 48 ms; 13k even; 130k 2.05 vs 1.57 s)."""


def anchor_for(day: date | None = None) -> datetime:
    """Midnight UTC of `day` (today by default): the instant scenario times are relative to."""
    day = day or datetime.now(UTC).date()
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@dataclass(frozen=True)
class ScenarioSummary:
    """What [`seed_scenario`][pytest_celestra.rows.scenario.seed_scenario] wrote, and how fast."""

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
        counts = {**self.rows, "total": self.total_rows}
        lines = [f"  {table:<{width}}  {count:>10,}" for table, count in counts.items()]
        rate = self.total_rows / self.seconds if self.seconds > 0 else 0.0
        lines[-1] += f"  in {self.seconds:.2f} s ({rate:,.0f} rows/s)"
        anchor = self.anchor.isoformat()
        title = f"Celestra scenario {self.volume.name!r}, seed {self.seed}, anchor {anchor}"
        return "\n".join([title, *lines])


def seed_scenario(
    connection: Any,
    volume: Volume | str = "medium",
    *,
    seed: int = DEFAULT_SEED,
    anchor: datetime | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> ScenarioSummary:
    """Write the whole scenario into `connection`'s current transaction; never commits.

    `connection` is a psycopg 3 connection, or a SQLAlchemy Session or Connection using
    the psycopg driver; the schema must exist (`Base.metadata.create_all`).
    `progress(table, rows_so_far)` is called after every chunk.
    """
    volume = _as_volume(volume)
    anchor = anchor or anchor_for()
    started = time.perf_counter()
    pg_conn = loader.raw_connection(connection)
    rows = generate_scenario(volume, seed=seed, anchor=anchor)
    # Two threads hand the GIL to each other, which pays off only for many rows.
    prefetch = 0 if volume.total_rows <= INLINE_ROWS else 4
    try:
        with loader.caller_transaction(pg_conn):
            counts = loader.load(pg_conn, rows, progress=progress, prefetch=prefetch)
    except KeyboardInterrupt:
        # Ctrl-C cut a COPY off: a rollback would fail ("another command is already in
        # progress") and hide the interrupt, so the connection is closed (or invalidated).
        close = getattr(connection, "invalidate", None) or pg_conn.close
        close()
        raise
    return ScenarioSummary(
        volume, seed, anchor, MappingProxyType(counts), time.perf_counter() - started
    )


def generate_scenario(
    volume: Volume | str = "medium",
    *,
    seed: int = DEFAULT_SEED,
    anchor: datetime | None = None,
    rules: SchemaRules | None = None,
) -> Iterator[Chunk]:
    """`(table, rows)` chunks of the whole scenario, parents first, each row in the order of
    `loader.COLUMNS[table]`; with `rules`, users and companies are reshaped as they are made.

    An infeasible volume's text raises [`ConfigError`][pytest_celestra.errors.ConfigError].
    """
    return generate(_as_volume(volume), seed, anchor or anchor_for(), rules)


def _as_volume(volume: Volume | str) -> Volume:
    return volume if isinstance(volume, Volume) else Volume.parse(volume)
