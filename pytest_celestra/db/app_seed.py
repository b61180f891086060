"""Seeding a template that follows your
[`SchemaRules`][pytest_celestra.schema.app_rules.SchemaRules].

The generator's chunks (whose rows follow your rules on our columns already) are wrapped: a
table's new columns get the rules' values appended to each row, and the new tables' rows
follow in foreign-key order. Untouched chunks are loaded by binary COPY as
[`seed_scenario`][pytest_celestra.rows.scenario.seed_scenario] loads them, the others by a
text COPY.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from pytest_celestra.db.drift import rejected_row
from pytest_celestra.errors import ConfigError
from pytest_celestra.rows import loader
from pytest_celestra.schema.app_rules import cycle_error, seeded_rng
from pytest_celestra.schema.catalog import Catalog, read_catalog

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from datetime import datetime

    from pytest_celestra.schema.app_rules import SchemaRules, TableRule
    from pytest_celestra.schema.volumes import Volume

Row = tuple[Any, ...]


@dataclass(frozen=True)
class Part:
    """Rows of one table to COPY, with their column list and who made them."""

    table: str
    columns: tuple[str, ...]
    rows: list[Row]
    producer: str
    plain: bool
    """The generator's own columns only: the binary COPY of the loader applies."""


class _Extender:
    """Wraps the generator's chunks; keeps the keys the new tables' rows point at."""

    def __init__(
        self,
        rules: SchemaRules,
        catalog: Catalog,
        volume: Volume,
        seed: int,
        existing: Callable[[str, str], list[Any]] | None = None,
    ) -> None:
        """`existing(table, column)`: the keys of the rows a table no rule fills holds
        already (a lookup table your migrations fill); None without a database."""
        self.rules, self.catalog, self.volume, self.seed = rules, catalog, volume, seed
        self.existing = existing
        self.added = {table: list(rules.added_columns(table)) for table in loader.COLUMNS}
        self.column_rngs = {key: seeded_rng(seed, *key) for key in rules.columns}
        self.order = _tables_in_order(rules)
        #: parent table -> referenced column -> the keys seen.
        self.wanted: dict[str, dict[str, list[Any]]] = {}
        for rule in self.order:
            for column, parent in rule.parents:
                self.wanted.setdefault(parent, {})[self.catalog.referenced(rule.name, column)] = []
        # What fails without a row made fails before the first (a script streams as it goes).
        self.counts = {rule.name: rule.rows_for(volume) for rule in self.order}
        if existing is None:
            self._check_lookups()

    def parts(self, anchor: datetime) -> Iterator[Part]:
        """The scenario's chunks extended by the rules, then the new tables' rows."""
        from pytest_celestra.rows.scenario import generate_scenario

        chunks = generate_scenario(self.volume, seed=self.seed, anchor=anchor, rules=self.rules)
        for table, rows in chunks:
            self._remember(table, loader.COLUMNS[table], rows)
            yield self._extend(table, rows)
        self._read_existing()
        for rule in self.order:
            yield self._table(rule)

    def _lookups(self) -> Iterator[tuple[TableRule, str, str]]:
        """(rule, column, parent) of each parent no rule describes (a lookup table)."""
        for rule in self.order:
            for column, parent in rule.parents:
                if parent not in self.rules.tables:
                    yield rule, column, parent

    def _check_lookups(self) -> None:
        """Without a database (a data-only script), a lookup parent has no rows to lend."""
        for rule, column, parent in self._lookups():
            raise ConfigError(
                f"{rule.origin} points {column} at {parent}, a table no rule fills: "
                "a seeded database picks among the rows your migrations put in it, "
                "but a data-only script has no database to read them from. Describe "
                f"{parent} with rules.table({parent!r}, ...) too, or seed a database "
                "(--dsn) instead of writing a script"
            )

    def _read_existing(self) -> None:
        """The keys of the parents no rule describes, as the database holds them."""
        for rule, column, parent in self._lookups():
            assert self.existing is not None  # checked before the first row (parts)
            referenced = self.catalog.referenced(rule.name, column)
            self.wanted[parent][referenced] = self.existing(parent, referenced)

    def _remember(self, table: str, columns: Sequence[str], rows: Sequence[Row]) -> None:
        for column, keys in self.wanted.get(table, {}).items():
            index = columns.index(column)
            keys.extend(row[index] for row in rows)

    def _extend(self, table: str, rows: list[Row]) -> Part:
        added = self.added.get(table, [])
        columns = loader.COLUMNS[table]
        if not added:
            return Part(table, columns, rows, f"the generator's {table} rows", plain=True)
        kind = functools.partial(self._type, table)
        rows = [
            (*row, *self.rules.added_values(
                table, dict(zip(columns, row, strict=True)), {}, self.column_rngs, kind
            ).values())
            for row in rows
        ]  # fmt: skip
        origins = ", ".join(self.rules.columns[table, column].origin for column in added)
        return Part(
            table,
            (*columns, *added),
            rows,
            f"the generator's {table} rows with {origins}",
            plain=False,
        )

    def _type(self, table: str, column: str) -> str | None:
        """The catalog's type of a column (`enum` for an enum type); None when unknown."""
        info = self.catalog.tables.get(table, {}).get(column)
        return None if info is None else "enum" if info.type in self.catalog.enums else info.type

    def _table(self, rule: TableRule) -> Part:
        # No catalog (celestra-seed --sql): the columns are the ones the rules name.
        found = self.catalog.tables.get(rule.name)
        rng = seeded_rng(self.seed, "table", rule.name)
        keys = {
            column: self.wanted[parent][self.catalog.referenced(rule.name, column)]
            for column, parent in rule.parents
        }
        count = self.counts[rule.name] if all(keys.values()) else 0
        ruled = [column for table, column in self.rules.columns if table == rule.name]
        column_rules = [
            (column, self.rules.columns[rule.name, column], self.column_rngs[rule.name, column])
            for column in (ruled if found is None else found)
            if (rule.name, column) in self.rules.columns
        ]
        column_type = functools.partial(self._type, rule.name)
        made = [
            rule.row_values(
                {column: rng.choice(choices) for column, choices in keys.items()},
                index,
                rng,
                column_rules,
                found or {},
                column_type,
            )
            for index in range(count)
        ]
        named = dict.fromkeys(column for values in made for column in values)
        if found is None:
            columns = tuple(named)
        elif unknown := set(named) - set(found):
            raise ConfigError(
                f"{rule.origin} makes values of {', '.join(sorted(unknown))}, which "
                f"{rule.name} does not have"
            )
        else:
            columns = tuple(column for column in found if column in named)
        rows = [tuple(values.get(column) for column in columns) for values in made]
        self._remember(rule.name, columns, rows)
        return Part(rule.name, columns, rows, rule.origin, plain=False)


def extended_rows(
    volume: Volume, seed: int, anchor: datetime, rules: SchemaRules
) -> Iterator[tuple[str, tuple[str, ...], list[Row]]]:
    """The scenario extended by `rules` without a database (for a data-only SQL
    script): `(table, columns, rows)`, the new tables' rows last. With no catalog to
    read, a new table's columns are the ones its row and column rules give values."""
    for part in _Extender(rules, Catalog({}, {}, ()), volume, seed).parts(anchor):
        yield part.table, part.columns, part.rows


def _tables_in_order(rules: SchemaRules) -> list[TableRule]:
    """The rules' tables, each after the new tables it points at."""
    done: list[TableRule] = []
    pending = rules.added_tables()
    while pending:
        ready = [
            rule
            for rule in pending.values()
            if all(parent not in pending for _, parent in rule.parents)
        ]
        if not ready:
            raise cycle_error(pending)
        for rule in ready:
            done.append(rule)
            del pending[rule.name]
    return done


def _copy_text(pg_conn: psycopg.Connection[Any], part: Part) -> None:
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(part.table), sql.SQL(", ").join(map(sql.Identifier, part.columns))
    )
    with pg_conn.cursor() as cursor, cursor.copy(statement) as copy:
        for row in part.rows:
            copy.write_row(row)


def write_with_rules(
    pg_conn: psycopg.Connection[Any],
    volume: Volume,
    seed: int,
    anchor: datetime,
    rules: SchemaRules,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Write the scenario extended by `rules` into `pg_conn`'s transaction, whose schema
    the caller checked for drift; the rows written per table. Raises
    [`RowRejectedError`][pytest_celestra.db.drift.RowRejectedError] when the database refuses
    a row. `progress(table, rows_so_far)` follows each chunk."""
    existing = functools.partial(loader.existing_keys, pg_conn)
    parts = _Extender(rules, read_catalog(pg_conn), volume, seed, existing).parts(anchor)
    written: dict[str, int] = {}
    with loader.caller_transaction(pg_conn):
        for part in parts:
            written[part.table] = written.get(part.table, 0) + len(part.rows)
            if progress is not None:
                progress(part.table, written[part.table])
            if not part.rows:
                continue
            try:
                if part.plain:
                    loader.copy_rows(pg_conn, part.table, part.columns, part.rows)
                else:
                    _copy_text(pg_conn, part)
            except psycopg.Error as error:  # named after the rule of the column it names
                rule = rules.columns.get((part.table, error.diag.column_name or ""))
                producer = rule.origin if rule is not None else part.producer
                raise rejected_row(error, part.table, producer, rules) from None
    return written
