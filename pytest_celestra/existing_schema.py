"""What a database already holds under the names of Celestra's tables and enum types.

`celestra-seed` may be pointed at a database of someone else's: it creates the Celestra
schema there only where nothing of the same name is in the way, and refuses (touching
nothing) when a table or type of that name is not Celestra's. `inspect_schema`
compares the catalog of the current schema with the models, in one round trip each.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from sqlalchemy import Enum, text
from sqlalchemy.dialects import postgresql

from pytest_celestra.models import TABLES_IN_FK_ORDER, Base

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

_RELATION_KINDS = {"r": "table", "p": "table", "v": "view", "m": "materialized view",
                   "f": "foreign table", "S": "sequence", "i": "index", "c": "type"}  # fmt: skip
"""Kinds of pg_class rows that hold a name a table of ours would need."""


@cache
def celestra_columns() -> dict[str, dict[str, str]]:
    """Table (in foreign-key order) -> column -> type as PostgreSQL's `format_type` spells it."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    return {
        name: {
            column.name: column.type.compile(dialect=dialect).lower()
            for column in Base.metadata.tables[name].columns
        }
        for name in TABLES_IN_FK_ORDER
    }


@cache
def celestra_enums() -> dict[str, tuple[str, ...]]:
    """Enum type -> its labels, in order."""
    found: dict[str, tuple[str, ...]] = {}
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            if isinstance(column.type, Enum) and column.type.name:
                found[column.type.name] = tuple(column.type.enums)
    return found


@dataclass(frozen=True)
class ExistingSchema:
    """The current schema of a database, measured against Celestra's."""

    tables: tuple[str, ...]
    """Celestra tables and enum types already there, exactly as Celestra defines them."""
    types: tuple[str, ...]
    conflicts: tuple[str, ...]
    """`users: no column email; column nickname is not Celestra's`, one per object in the way."""
    other_tables: int
    """How many other tables the schema holds (never touched)."""

    @property
    def missing_tables(self) -> tuple[str, ...]:
        return tuple(name for name in celestra_columns() if name not in self.tables)

    @property
    def missing_types(self) -> tuple[str, ...]:
        return tuple(name for name in celestra_enums() if name not in self.types)


def _table_differences(name: str, kind: str, found: dict[str, str]) -> str | None:
    if kind != "table":
        return f"{name} is a {kind}, not a table"
    wanted = celestra_columns()[name]
    parts = []
    if missing := [column for column in wanted if column not in found]:
        parts.append(f"no column {', '.join(missing)}")
    parts += [
        f"column {column} is {found[column]}, not {wanted[column]}"
        for column in wanted
        if column in found and found[column] != wanted[column]
    ]
    if not parts:
        # Celestra's table with columns added by your migrations: the drift check's
        # business (pytest_celestra.drift), not a table of another kind.
        return None
    if extra := [column for column in found if column not in wanted]:
        parts.insert(1 if missing else 0, f"column {', '.join(extra)} not in Celestra's")
    return f"table {name}: {'; '.join(parts)}"


def _type_difference(name: str, kind: str, labels: tuple[str, ...]) -> str | None:
    wanted = celestra_enums()[name]
    if kind != "e":
        return f"type {name} is not an enum"
    if not set(wanted) <= set(labels):  # added labels are the drift check's business
        return f"type {name} has the labels {', '.join(labels)}, not {', '.join(wanted)}"
    return None


def inspect_schema(connection: Connection) -> ExistingSchema:
    """What the connection's current schema holds under Celestra's names (and besides)."""
    tables = list(celestra_columns())
    relations = connection.execute(
        text(
            "SELECT c.relname, c.relkind, a.attname, format_type(a.atttypid, a.atttypmod) "
            "FROM pg_class c LEFT JOIN pg_attribute a ON a.attrelid = c.oid "
            "AND a.attnum > 0 AND NOT a.attisdropped "
            "WHERE c.relnamespace = current_schema()::regnamespace "
            "AND (c.relname = ANY(:names) OR c.relkind IN ('r', 'p')) ORDER BY c.relname, a.attnum"
        ),
        {"names": tables},
    ).all()
    kinds: dict[str, str] = {}
    columns: dict[str, dict[str, str]] = {}
    for name, kind, column, column_type in relations:
        kinds[name] = _RELATION_KINDS.get(kind, "relation")
        if column is not None:
            columns.setdefault(name, {})[column] = column_type
    types = connection.execute(
        text(
            "SELECT t.typname, t.typtype, array_remove(array_agg(e.enumlabel "
            "ORDER BY e.enumsortorder), NULL) FROM pg_type t "
            "LEFT JOIN pg_enum e ON e.enumtypid = t.oid "
            "WHERE t.typnamespace = current_schema()::regnamespace AND t.typname = ANY(:names) "
            "GROUP BY t.typname, t.typtype"
        ),
        {"names": list(celestra_enums())},
    ).all()
    differences = {
        name: _table_differences(name, kinds[name], columns.get(name, {}))
        for name in tables
        if name in kinds
    }
    type_differences = {
        name: _type_difference(name, kind, tuple(labels)) for name, kind, labels in types
    }
    conflicts = [
        difference
        for difference in (*differences.values(), *type_differences.values())
        if difference is not None
    ]
    same_tables = [name for name, difference in differences.items() if difference is None]
    same_types = [name for name, difference in type_differences.items() if difference is None]
    others = sum(1 for name, kind in kinds.items() if kind == "table" and name not in tables)
    return ExistingSchema(tuple(same_tables), tuple(same_types), tuple(conflicts), others)
