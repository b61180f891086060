"""What every step of the bulk generator shares: seeded draws, counts, password pools, and
the helpers that spread rows and cut them into chunks."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from itertools import accumulate, chain
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from pytest_celestra.rows.batches import PendingRow, Recipes, no_cyclic_collection
from pytest_celestra.rows.providers import fast_uuid

if TYPE_CHECKING:
    import random
    import uuid
    from collections.abc import Callable, Generator, Mapping, Sequence
    from datetime import datetime

    from pytest_celestra.rows.loader import Chunk, Row
    from pytest_celestra.rows.passwords import HashPool
    from pytest_celestra.rows.providers import CelestraProvider
    from pytest_celestra.schema.app_rules import Reshaper

F = TypeVar("F")
if TYPE_CHECKING:
    #: A step's output: ``(table, row)`` pairs; the step's return value is its facts.
    Rows: TypeAlias = Generator[tuple[str, Row], None, F]

CHUNK_ROWS = 10_000
"""Rows per generated chunk: large enough for COPY, small enough to keep memory flat."""


@dataclass(frozen=True, kw_only=True)
class RowFacts:
    """What a table step keeps of its rows for the steps after it, by row index."""

    ids: list[uuid.UUID] = field(default_factory=list)
    created: list[int] = field(default_factory=list)
    current: list[tuple[str, ...]] = field(default_factory=list)
    """Present values of the changeable columns (spec.CHANGEABLE_COLUMNS), if any."""
    rows: list[PendingRow] = field(default_factory=list)
    """The rows themselves, for the recipes of their children."""

    def add(self, row: PendingRow, created: int) -> int:
        """Keep `row`, made at `created` (seconds from the anchor); returns its index."""
        self.rows.append(row)
        self.ids.append(row.id)
        self.created.append(created)
        return len(self.ids) - 1


@dataclass(frozen=True)
class Draw:
    """The seeded provider, the volume's row counts and the password pools of a scenario."""

    p: CelestraProvider
    anchor: datetime
    counts: Mapping[str, int]
    passwords: HashPool
    old_passwords: HashPool
    password_salts: int  # how many hashes of each pool the scenario uses
    old_password_pool: int
    reshape: Reshaper | None = None  # your rules' values of our columns
    # Recipes.recipe(factory_class, given): the factory's rows, drawn from `p`.
    recipe: Callable[[Any, str], Callable[..., PendingRow]] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "recipe", Recipes(self.p, self.anchor, self.reshape).recipe)

    @property
    def rng(self) -> random.Random:
        return self.p.rng

    def offset(self, when: datetime) -> int:
        """`when` as seconds from the anchor (a recipe's row's time)."""
        return int((when - self.anchor).total_seconds())

    def new_id(self) -> uuid.UUID:
        return fast_uuid(self.p.rng)

    def index(self, items: Sequence[Any]) -> int:
        return int(self.p.rng.random() * len(items))

    def pick(self, indices: Sequence[int]) -> int:
        return indices[int(self.p.rng.random() * len(indices))]

    def spread(self, total: int, caps: list[int]) -> list[int]:
        """`total` split over slots with capacities `caps`: one each first, the rest
        at random among the free capacity."""
        counts = [1 if i < total else 0 for i in range(len(caps))]
        spare = total - sum(counts)
        if spare > 0:
            free = list(accumulate(cap - count for cap, count in zip(caps, counts, strict=True)))
            for slot in self.p.rng.sample(range(free[-1]), spare):
                counts[bisect_right(free, slot)] += 1
        return counts


def allocate(total: int, weights: Sequence[float]) -> list[int]:
    """`total` split into integer shares proportional to `weights` (largest remainder, ties
    to the lower index, so two allocations over the same weights are similarly ordered)."""
    if total <= 0 or not weights:
        return [0] * len(weights)
    weight_sum = sum(weights)
    quotas = [w * total / weight_sum for w in weights]
    shares = [int(q) for q in quotas]
    left = max(0, min(len(shares), total - sum(shares)))
    for i in sorted(range(len(shares)), key=lambda i: (shares[i] - quotas[i], i))[:left]:
        shares[i] += 1
    return shares


def covering(weights: Mapping[F, float], draw: Callable[[], F]) -> Callable[[], F]:
    """Weighted draws in which each value occurs once first (small volumes see every case)."""
    return chain(tuple(weights), iter(draw, object())).__next__


def chunked(tables: Sequence[str], rows: Rows[F]) -> Generator[Chunk, None, F]:
    """`rows` of `tables` in chunks of at most `CHUNK_ROWS`; returns the step's facts. A full
    chunk flushes every table's rows, parents first, so no child comes before its parent.
    No cyclic garbage collection while rows are made (none while the caller holds a chunk)."""
    finished: StopIteration | None = None
    while finished is None:
        batches: dict[str, list[Row]] = {table: [] for table in tables}
        with no_cyclic_collection():
            try:
                batch: list[Row] = []
                while len(batch) < CHUNK_ROWS:
                    table, row = next(rows)
                    batch = batches[table]
                    batch.append(row)
            except StopIteration as done:
                finished = done
        # The last chunk holds every table, even one without rows.
        yield from ((name, held) for name, held in batches.items() if held or finished)
    facts: F = finished.value
    return facts
