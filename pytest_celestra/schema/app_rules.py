"""Your application's own schema, taught to the plugin in one place.

A project whose migrations add columns, enum labels or tables describes them once, in its
`conftest.py`. The [`SchemaRules`][pytest_celestra.schema.app_rules.SchemaRules] it fills (our
15 tables, extended by the rules) is one explicit object, collected once per run and handed
to every path that makes rows: the seeded templates, the factories (through the session,
[`rules_of`][pytest_celestra.schema.app_rules.rules_of]) and
[`pytest_celestra.db.drift`][pytest_celestra.db.drift], which checks the catalog first:

```python
def pytest_celestra_schema_rules(rules):
    rules.column("users", "locale", values={"en-US": 6, "de-DE": 3, "fr-FR": 1})
    rules.enum_weights("user_status", {"archived": 0.02})
    rules.table(
        "user_preferences",
        parents={"user_id": "users"},
        count={"small": 40, "medium": 400, "large": 4000},
        row=lambda row: {"theme": row.rng.choice(["light", "dark"])},
    )
```

Values are deterministic: the templates draw them from generators seeded with the seed, the
table and the column; the factories from factory_boy's, reseeded for every test.
"""

from __future__ import annotations

import enum
import hashlib
import json
import random
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from functools import cache, partial
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from pytest_celestra.callables import callable_fingerprint
from pytest_celestra.errors import ConfigError, RuleError

if TYPE_CHECKING:
    from pytest_celestra.schema.volumes import Volume

Derive = Callable[[Mapping[str, Any], random.Random], Any]
"""`derive(row, rng)`: the value of a new column from the other values of its row."""


@dataclass(frozen=True)
class RowContext:
    """What a table's row rule is given: the row's parents and a random generator."""

    parents: Mapping[str, Any]
    """FK column -> the key of the parent row it points at."""
    index: int
    """The row's number in its table, from 0."""
    rng: random.Random


RowRule = Callable[[RowContext], Mapping[str, Any]]
"""`row(context)`: the values of a new table's row (FK columns are filled already)."""


_PLACEHOLDER = {"VALUE": 1}  # what the drift report writes where your values go

_SCALARS = (str, int, float, Decimal, bool, uuid.UUID, date, time, timedelta, bytes, enum.Enum)
_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "text": (str,), "character varying": (str,), "varchar": (str,), "character": (str,),
    "citext": (str,), "enum": (str, enum.Enum),
    "integer": (int,), "bigint": (int,), "smallint": (int,),
    "boolean": (bool,),
    "numeric": (int, float, Decimal), "real": (int, float, Decimal),
    "double precision": (int, float, Decimal),
    "uuid": (uuid.UUID, str),
    "date": (date,), "timestamp with time zone": (datetime,),
    "timestamp without time zone": (datetime,),
}  # fmt: skip
_SENDABLE = "a value the driver can send (str, int, float, bool, Decimal, UUID, date/time, bytes)"


def wrong_type(value: Any, column_type: str | None) -> str | None:
    """What a column of `column_type` (None: unknown) takes, if `value` is not that; None
    when it fits (NULL always does: a NOT NULL column refuses it itself)."""
    if value is None:
        return None
    base = (column_type or "").split("(")[0].strip()
    if base.endswith("[]"):
        fits = isinstance(value, (list, tuple))
        return None if fits else f"a list (the column is {column_type})"
    if base in ("json", "jsonb"):
        return None
    kinds = _PYTHON_TYPES.get(base)
    if kinds is None:
        fits = isinstance(value, _SCALARS) or (
            isinstance(value, (list, tuple)) and all(isinstance(v, _SCALARS) for v in value)
        )
        return None if fits else _SENDABLE
    # True is an int to Python, not to PostgreSQL.
    if isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds):
        return None
    names = " or ".join(kind.__name__ for kind in kinds)
    return f"{names} (the column is {column_type})"


def _function_name(function: Any) -> str:
    """`<lambda> (conftest.py:12)`: a rule's function as its author finds it."""
    inner = getattr(function, "func", function)  # a functools.partial's function
    inner = getattr(inner, "__func__", inner)  # a bound method's
    name = str(getattr(inner, "__qualname__", type(inner).__qualname__))
    name = name.rsplit(".<locals>.", 1)[-1]  # a lambda in the hook: <lambda>
    code = getattr(inner, "__code__", None)
    if code is None:
        return name
    return f"{name} ({Path(code.co_filename).name}:{code.co_firstlineno})"


def _hidden(text: str, values: Iterable[Any]) -> str:
    """`text` with every value of the row it quotes (as `str` or `repr`) replaced by `***`."""
    for value in values:
        if isinstance(value, (enum.Enum, bool)) or value is None:
            continue  # a label, a flag: not data
        for shown in (str(value), repr(value)):  # str first: KeyError: '***'
            if len(shown) >= 3:
                text = text.replace(shown, "***")
    return text


def rule_failed(what: str, function: Any, error: BaseException, values: Iterable[Any]) -> RuleError:
    """The [`RuleError`][pytest_celestra.errors.RuleError] of a rule's function that raised,
    the row's values hidden."""
    frames = traceback.extract_tb(error.__traceback__)
    at = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    message = _hidden(str(error), values)
    kind = type(error).__qualname__
    return RuleError(
        f"{what} failed: {_function_name(function)} raised {kind}{': ' if message else ''}"
        f"{message}{at}. The row's values are not shown; no row was written."
    )


def rule_mistyped(what: str, column: str, value: Any, wanted: str) -> RuleError:
    return RuleError(
        f"{what} made a value of the wrong type for {column}: a "
        f"{type(value).__qualname__}, where the column takes {wanted}. The value is not "
        "shown; PostgreSQL never saw the row."
    )


@dataclass(frozen=True)
class ColumnRule:
    """How the values of one column are made."""

    table: str
    column: str
    values: tuple[tuple[Any, float], ...] = ()
    derive: Derive | None = None

    @property
    def origin(self) -> str:
        """How the rule is written in `conftest.py`, to name it in messages."""
        return f"rules.column({self.table!r}, {self.column!r})"

    @property
    def described(self) -> str:
        kind = "derive" if self.derive is not None else "values"
        return f"rules.column({self.table!r}, {self.column!r}, {kind}=...)"

    def make(
        self, row: Mapping[str, Any], rng: random.Random, column_type: str | None = None
    ) -> Any:
        """One value for `row`, checked against `column_type` (the catalog's name); raises
        [`RuleError`][pytest_celestra.errors.RuleError] when the rule raises or it does not fit."""
        if self.derive is not None:
            try:
                value = self.derive(row, rng)
            except Exception as error:
                raise rule_failed(self.described, self.derive, error, row.values()) from None
        else:
            labels = [value for value, _ in self.values]
            value = rng.choices(labels, weights=[weight for _, weight in self.values])[0]
        if (wanted := wrong_type(value, column_type)) is not None:
            raise rule_mistyped(self.described, f"{self.table}.{self.column}", value, wanted)
        return value

    @property
    def value_type(self) -> str | None:
        """What a factory checks the values against: boolean, integer or None (any)."""
        values = [value for value, _ in self.values]
        if values and all(isinstance(value, bool) for value in values):
            return "boolean"
        if values and all(isinstance(value, int) for value in values):
            return "integer"
        return None

    def key(self) -> object:
        return [self.table, self.column, [list(pair) for pair in self.values],
                self.derive and callable_fingerprint(self.derive)]  # fmt: skip


@dataclass(frozen=True)
class TableRule:
    """A table and how its rows are made: one of ours (the built-in description,
    [`builtin_tables`][pytest_celestra.schema.app_rules.builtin_tables]) or one of yours
    (`rules.table`)."""

    name: str
    parents: tuple[tuple[str, str], ...]  # FK column -> the table it points at
    count: int | tuple[tuple[str, int], ...] | Callable[[Volume], int]
    row: RowRule | None = None
    columns: tuple[tuple[str, str], ...] = ()
    """The columns the plugin writes without a rule, with their types (`format_type`'s
    spelling): every column of ours; none of a table of yours."""
    factory: str | None = None
    """Ours: its factory's name in `pytest_celestra` (`UserFactory`), whose declarations are
    the table's row recipe and whose rows a scenario's steps plan; yours: None (its rows are
    made by `row` and the column rules)."""

    @property
    def origin(self) -> str:
        return f"rules.table({self.name!r})"

    def rows_for(self, volume: Volume) -> int:
        if isinstance(self.count, int):
            return self.count
        if callable(self.count):
            what = f"rules.table({self.name!r}, count=...)"
            try:
                count = self.count(volume)
            except Exception as error:
                raise rule_failed(what, self.count, error, ()) from None
            if isinstance(count, bool) or not isinstance(count, int):
                raise RuleError(
                    f"{what} returned a {type(count).__qualname__}, not a number of rows (int)"
                )
            return count
        counts = dict(self.count)
        # Its own count, its base's (small,users=30: small's), "default", then a multiple of
        # a named volume's (x2: twice medium's; large: 100 times medium's).
        base, multiple = volume.base
        for name, times in ((volume.name, 1), (volume.name.split(",")[0], 1), ("default", 1)):
            if name in counts:
                return counts[name] * times
        if base in counts:
            return counts[base] * multiple
        raise ConfigError(
            f"{self.origin} gives no count for the volume {volume.name!r}: add "
            f'"{volume.name}", "{base}" or "default" to its count= mapping'
        )

    def row_values(
        self,
        parents: Mapping[str, Any],
        index: int,
        rng: random.Random,
        columns: Iterable[tuple[str, ColumnRule, random.Random]],
        found: Mapping[str, Any],
        column_type: Callable[[str], str | None],
        given: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One row (for the templates and the factory alike): its parents' keys, the `row`
        rule's values (checked against `column_type(column)`), `given`, the column rules
        (`(column, rule, rng)`) of the columns still empty, and random UUIDs for the keys of
        `found` without a default."""
        values = dict(parents)
        if self.row is not None:
            what = f"rules.table({self.name!r}, row=...)"
            try:
                made = self.row(RowContext(parents, index, rng))
            except Exception as error:
                raise rule_failed(what, self.row, error, parents.values()) from None
            if not isinstance(made, Mapping) or not all(isinstance(key, str) for key in made):
                raise RuleError(
                    f"{what} returned a {type(made).__qualname__}, not a mapping of column "
                    'names to values (e.g. {"theme": "dark"}). Its values are not shown.'
                )
            for column, value in made.items():
                if (wanted := wrong_type(value, column_type(column))) is not None:
                    raise rule_mistyped(what, f"{self.name}.{column}", value, wanted)
            values.update(made)
        values.update(given or {})
        for column, rule, column_rng in columns:
            if column not in values:
                values[column] = rule.make(values, column_rng, column_type(column))
        for column, info in found.items():
            if column not in values and info.type == "uuid" and not info.has_default:
                values[column] = uuid.UUID(int=rng.getrandbits(128), version=4)
        return values

    def key(self) -> object:
        count: object = self.count
        if callable(count):
            count = callable_fingerprint(count)
        elif isinstance(count, tuple):
            count = [list(pair) for pair in count]
        row = self.row and callable_fingerprint(self.row)
        return [self.name, [list(pair) for pair in self.parents], count, row]


def _volume_rows(table: str, volume: Volume) -> int:
    return volume.counts[table]


@cache
def builtin_tables() -> Mapping[str, TableRule]:
    """Our 15 tables, parents first, described as `rules.table` describes one of yours:
    their columns and foreign keys (read from the models), rows per volume (the `Volume`'s)
    and their factories. Every `SchemaRules` starts from them."""
    from pytest_celestra.schema.catalog import celestra_columns
    from pytest_celestra.schema.models import Base
    from pytest_celestra.schema.tables import ENTITIES

    return MappingProxyType({
        table: TableRule(
            table,
            parents=tuple(
                (column.name, key.column.table.name)
                for column in Base.metadata.tables[table].columns
                for key in column.foreign_keys
            ),
            count=partial(_volume_rows, table),
            columns=tuple(celestra_columns()[table].items()),
            factory=f"{model}Factory",
        )
        for model, table in ENTITIES
    })  # fmt: skip


@dataclass
class SchemaRules:
    """The registry a `pytest_celestra_schema_rules(rules)` hook fills, one rule per call."""

    columns: dict[tuple[str, str], ColumnRule] = field(default_factory=dict)
    enum_shares: dict[str, dict[str, float]] = field(default_factory=dict)
    """enum type -> new label -> share of the rows of every column of that type."""
    tables: dict[str, TableRule] = field(default_factory=lambda: dict(builtin_tables()))
    """Every table, ours (the built-in description) first, then yours (`table`)."""
    accepted: set[str] = field(default_factory=set)
    """CHECK and UNIQUE constraints (and unique indexes) the generated data satisfies."""
    empty: set[str] = field(default_factory=set)
    """New tables left empty on purpose."""
    cache: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)
    hooked: bool = field(default=False, compare=False)
    """A `pytest_celestra_schema_rules` hook filled it (it may have given nothing yet): the
    drift report's lines go into that hook, not a second one."""

    def column(
        self,
        table: str,
        column: str,
        *,
        values: Mapping[Any, float] | None = None,
        derive: Derive | None = None,
    ) -> None:
        """Fill `table.column`, a column the generator does not write, or reshape one it
        writes (then `derive` sees its value in `row`, and what follows from it follows
        your value: see "When your schema changes" in the docs).

        Args:
            table: A table of ours, or one given to
                [`table`][pytest_celestra.schema.app_rules.SchemaRules.table].
            column: The new column, or one of ours.
            values: Value -> weight: each row draws one value, with these weights.
            derive: `derive(row, rng)` -> the value, from the row's other columns
                (a mapping of column name -> value, enums as their labels) and a seeded
                `random.Random`.
        """
        if (values is None) == (derive is None):
            raise ConfigError(f"rules.column({table!r}, {column!r}) needs values= or derive=")
        if values is not None and dict(values) == _PLACEHOLDER:
            raise ConfigError(
                f'rules.column({table!r}, {column!r}, values={{"VALUE": 1}}): "VALUE" is the '
                "drift report's placeholder. Put your own values and their weights in its "
                'place, e.g. values={"en-US": 3, "de-DE": 1}, or compute each value with '
                "derive=lambda row, rng: ..."
            )
        pairs = tuple((value, float(weight)) for value, weight in (values or {}).items())
        if values is not None and (not pairs or sum(weight for _, weight in pairs) <= 0):
            raise ConfigError(
                f"rules.column({table!r}, {column!r}): values= needs a positive weight"
            )
        self.columns[table, column] = ColumnRule(table, column, pairs, derive)

    def enum_weights(self, enum: str, shares: Mapping[str, float]) -> None:
        """Give new labels of the enum type `enum` a share of the rows (0.02: 2 %) of every
        column of that type, in the seeded templates."""
        total = sum(shares.values())
        if any(share < 0 for share in shares.values()) or total >= 1:
            raise ConfigError(
                f"rules.enum_weights({enum!r}, ...): shares are fractions of the rows, "
                f"each >= 0 and together < 1 (got {total})"
            )
        self.enum_shares.setdefault(enum, {}).update(shares)

    def table(
        self,
        name: str,
        *,
        parents: Mapping[str, str],
        count: int | Mapping[str, int] | Callable[[Volume], int],
        row: RowRule | None = None,
    ) -> None:
        """Fill a table of yours in the seeded templates.

        Args:
            name: The table.
            parents: FK column -> the table it points at; each row picks a random parent.
            count: Rows per volume: a number, a mapping of volume name (or `"default"`)
                to a number, or `count(volume)`.
            row: `row(context)` -> the values of the other columns, given a
                [`RowContext`][pytest_celestra.schema.app_rules.RowContext]. Columns it leaves
                out take a [`column`][pytest_celestra.schema.app_rules.SchemaRules.column] rule,
                a random UUID (a `uuid` key without default) or the database's default.
        """
        _not_ours(f"rules.table({name!r})", name)
        frozen_count = tuple(sorted(count.items())) if isinstance(count, Mapping) else count
        self.tables[name] = TableRule(name, tuple(parents.items()), frozen_count, row)

    def accept(self, *constraints: str) -> None:
        """Say that the generated rows satisfy these CHECK/UNIQUE constraints (by name)."""
        self.accepted.update(constraints)

    def leave_empty(self, *tables: str) -> None:
        """Say that these new tables stay empty in the seeded templates."""
        for name in tables:
            _not_ours(f"rules.leave_empty({name!r})", name)
        self.empty.update(tables)

    def reshaper(self, seed: int) -> Reshaper | None:
        """What the rules do to our tables' rows in the scenario of `seed` (None: nothing)."""
        reshaper = Reshaper(self, seed)
        return reshaper if reshaper.relabels or reshaper.rules else None

    def added_columns(self, table: str) -> dict[str, ColumnRule]:
        """The rules of the columns of `table` that are not ours."""
        ruled = {column: rule for (name, column), rule in self.columns.items() if name == table}
        described = self.tables.get(table)
        if ruled and described is not None:  # (a factory call without rules stops above)
            for column, _ in described.columns:
                ruled.pop(column, None)
        return ruled

    def added_values(
        self,
        table: str,
        row: Mapping[str, Any],
        given: Mapping[str, Any],
        rng: random.Random | Mapping[tuple[str, str], random.Random],
        column_type: Callable[[str], str | None] | None = None,
    ) -> dict[str, Any]:
        """The values of `table`'s added columns for one row: those in `given`, the others
        from their rules, which see `row` (enums as labels) and the values made before.
        `rng`: one, or one per (table, column); `column_type`: default, the rule's own."""
        added: dict[str, Any] = {}
        plain = {k: v.name if isinstance(v, enum.Enum) else v for k, v in row.items()}
        for column, rule in self.added_columns(table).items():
            if column in given:
                added[column] = given[column]
                continue
            kind = rule.value_type if column_type is None else column_type(column)
            column_rng = rng if isinstance(rng, random.Random) else rng[table, column]
            added[column] = rule.make({**plain, **added}, column_rng, kind)
        return added

    def factory(self, table: str) -> Any:
        """The factory of your `table`, made once
        ([`factory_for`][pytest_celestra.rows.app_factories.factory_for])."""
        from pytest_celestra.rows.app_factories import table_factory

        if ("factory", table) not in self.cache:
            making: list[str] = self.cache.setdefault("making factories", [])
            if table in making:  # its parents' factories lead back to it
                raise cycle_error(making[making.index(table) :])
            making.append(table)
            try:
                self.cache["factory", table] = table_factory(self, table)
            finally:
                making.remove(table)
        return self.cache["factory", table]

    def added_tables(self) -> dict[str, TableRule]:
        """The tables of yours, in the order given."""
        return {name: rule for name, rule in self.tables.items() if rule.factory is None}

    def __bool__(self) -> bool:
        return bool(self.columns or self.enum_shares or self.added_tables())

    def key(self) -> str:
        """A stable hash of every rule, part of the seeded templates' key."""
        description = {
            "columns": sorted((rule.key() for rule in self.columns.values()), key=str),
            "enums": {name: sorted(shares.items()) for name, shares in self.enum_shares.items()},
            "tables": sorted((rule.key() for rule in self.added_tables().values()), key=str),
            "accepted": sorted(self.accepted),
            "empty": sorted(self.empty),
        }
        text = json.dumps(description, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()


def cycle_error(tables: Iterable[str]) -> ConfigError:
    """The error of tables of yours whose parents lead back to them."""
    named = ", ".join(tables)
    return ConfigError(
        f"the tables of rules.table point at each other in a cycle: {named}. A row's "
        "parents are made first, so leave one of these keys out of parents= (a key to its "
        "own table, such as a tree's parent_id, too): it stays NULL, or a row= or "
        "rules.column rule fills it"
    )


def _not_ours(call: str, table: str) -> None:
    if table in builtin_tables():
        raise ConfigError(
            f"{call}: {table} is one of our tables, which the scenario fills; reshape or add "
            f"its columns with rules.column({table!r}, ...), and give your own tables other "
            "names"
        )


def seeded_rng(seed: int, *names: str) -> random.Random:
    return random.Random(f"pytest-celestra rules {seed} {' '.join(names)}")


IN_THE_GENERATOR: Mapping[str, tuple[frozenset[str], frozenset[str]]] = {
    "users": (frozenset({"role", "status"}), frozenset({"company_id", "role", "status", "name"})),
    "companies": (frozenset(), frozenset({"size", "vertical", "status"})),
    "agents": (frozenset({"status"}), frozenset({"company_id", "status"})),
    "knowledge_bases": (frozenset({"status"}), frozenset({"company_id", "status"})),
}
"""Columns of ours the rules reshape in a step's plan, before it chooses what follows from
them: (new enum labels, column rules), by table. Every other column of ours is reshaped as
its table's recipe makes the row
([`Recipes`][pytest_celestra.rows.batches.Recipes])."""

Reshape = Callable[[Any, Mapping[str, Any]], Any]
"""`reshape(value, row)`: a column's value as your rules make it, from the value made
without them and the row's other values."""


class Reshaper:
    """The rules' values of our own columns (`rules.column`, `rules.enum_weights`), one row
    at a time, each from a generator seeded by the seed, the table and the column."""

    def __init__(self, rules: SchemaRules, seed: int) -> None:
        from pytest_celestra.schema.catalog import celestra_enums

        enum_types = celestra_enums()
        #: table -> [(column, reshape)]: new enum labels at their shares, column rules.
        self.relabels: dict[str, list[tuple[str, Reshape]]] = {}
        self.rules: dict[str, list[tuple[str, Reshape]]] = {}
        for table, described in rules.tables.items():
            for column, kind in described.columns:
                if kind in enum_types and kind in rules.enum_shares:
                    rng = seeded_rng(seed, "enum", table, column)
                    relabel = _relabel(rules.enum_shares[kind], rng)
                    self.relabels.setdefault(table, []).append((column, relabel))
                rule = rules.columns.get((table, column))
                if rule is not None:
                    wanted = "enum" if kind in enum_types else kind
                    ruled = _ruled(column, rule, seeded_rng(seed, table, column), wanted)
                    self.rules.setdefault(table, []).append((column, ruled))

    def touches(self, table: str, *, enums: bool = True) -> bool:
        """Whether the rules reshape a column of `table` (by its column rules alone unless
        `enums`)."""
        return bool(self.rules.get(table) or (enums and self.relabels.get(table)))

    def __call__(self, table: str, values: dict[str, Any], *, enums: bool = True) -> dict[str, Any]:
        """`values` (enums as labels) reshaped, in the columns they hold (by the column rules
        alone unless `enums`); new labels first, so a `derive` sees them."""
        for reshapes in (self.relabels if enums else {}, self.rules):
            for column, reshape in reshapes.get(table, ()):
                if column in values:
                    values[column] = reshape(values[column], values)
        return values

    def recipe_columns(self, table: str) -> dict[str, Reshape]:
        """What the rules do to the columns of `table` a step's plan leaves to its recipe
        ([`IN_THE_GENERATOR`][pytest_celestra.schema.app_rules.IN_THE_GENERATOR]): column ->
        `reshape(value, row)`, its new labels, then its rule, which sees `row`."""
        planned = IN_THE_GENERATOR.get(table, (frozenset(), frozenset()))
        found: dict[str, list[Reshape]] = {}
        for done, reshapes in zip(planned, (self.relabels, self.rules), strict=True):
            for column, reshape in reshapes.get(table, ()):
                if column not in done:
                    found.setdefault(column, []).append(reshape)
        return {column: partial(_in_turn, steps) for column, steps in found.items()}


def _relabel(shares: dict[str, float], rng: random.Random) -> Reshape:
    total, labels, weights = sum(shares.values()), list(shares), list(shares.values())

    def relabel(value: Any, row: Mapping[str, Any]) -> Any:
        if value is not None and rng.random() < total:
            return rng.choices(labels, weights)[0]
        return value

    return relabel


def _ruled(column: str, rule: ColumnRule, rng: random.Random, kind: str | None) -> Reshape:
    return lambda value, row: rule.make(_Replaced(row, column, value), rng, kind)


def _in_turn(reshapes: list[Reshape], value: Any, row: Mapping[str, Any]) -> Any:
    for reshape in reshapes:
        value = reshape(value, row)
    return value


class _Replaced(Mapping[str, Any]):
    """`row` with `column` holding `value`."""

    def __init__(self, row: Mapping[str, Any], column: str, value: Any) -> None:
        self.row, self.column, self.value = row, column, value

    def __getitem__(self, name: str) -> Any:
        return self.value if name == self.column else self.row[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.row)

    def __len__(self) -> int:
        return len(self.row)

    def values(self) -> Any:  # what a rule's error hides: the values worked out so far
        return [self.value, *self.row.values()]


SESSION_INFO_KEY = "celestra_schema"  # where a session carries its rules (`session.info`)


def rules_of(session: Any) -> SchemaRules:
    """The rules `session`'s factories follow: those
    [`bound_session`][pytest_celestra.rows.factories.bound_session] gave it, else none."""
    found = session.info.get(SESSION_INFO_KEY) if session is not None else None
    return found if found is not None else SchemaRules()
