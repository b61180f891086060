"""The one reader of a database's catalog, and what it holds under Celestra's names.

[`read_catalog`][pytest_celestra.schema.catalog.read_catalog] reads the current schema's
relations, columns, types, enum labels and constraints in four queries, for the drift
report, the seeding with your rules, your tables' factories and `celestra-seed`;
[`catalog_definitions`][pytest_celestra.schema.catalog.catalog_definitions] keys a schema
your hook created; `inspect_schema` compares the catalog with the models.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import Enum
from sqlalchemy.dialects import postgresql

from pytest_celestra.schema.models import TABLES_IN_FK_ORDER, Base

if TYPE_CHECKING:
    import psycopg
    from sqlalchemy.engine import Connection

_RELATION_KINDS = {"r": "table", "p": "table", "v": "view", "m": "materialized view",
                   "f": "foreign table", "S": "sequence", "i": "index", "c": "type"}  # fmt: skip


def builtin_ddl() -> list[str]:
    """The statements `Base.metadata.create_all` emits for PostgreSQL, as text, the same in
    every process: SQLAlchemy takes a table's indexes from a set, so the indexes after each
    table are sorted."""
    from itertools import groupby

    from sqlalchemy import create_mock_engine
    from sqlalchemy.engine import make_url

    statements: list[str] = []

    def record(statement: Any, *_: Any, **__: Any) -> None:
        statements.append(str(statement.compile(dialect=mock.dialect)))

    mock = create_mock_engine(make_url("postgresql+psycopg://"), record)
    Base.metadata.create_all(mock)
    runs = groupby(statements, key=lambda text: " INDEX " in text.split("(", 1)[0])
    return [text for is_index, run in runs for text in (sorted(run) if is_index else run)]


@dataclass(frozen=True)
class ColumnInfo:
    """One column as the catalog describes it."""

    type: str
    not_null: bool
    has_default: bool  # a DEFAULT, an identity or a generated column


@dataclass(frozen=True)
class Constraint:
    """A constraint (or a unique index that backs none) of a table."""

    name: str
    kind: str  # c check, u unique, f foreign key, p primary key, x exclusion, i unique index
    table: str
    columns: tuple[str, ...]
    parent: str | None
    parent_columns: tuple[str, ...]


@dataclass(frozen=True)
class Catalog:
    """The tables, enum types and constraints of the connection's current schema."""

    tables: dict[str, dict[str, ColumnInfo]]
    enums: dict[str, tuple[str, ...]]
    constraints: tuple[Constraint, ...]
    relations: dict[str, str] | None = None  # name -> relkind
    types: dict[str, str] | None = None  # name -> typtype

    def foreign_keys(self, table: str) -> list[Constraint]:
        return [c for c in self.constraints if c.table == table and c.kind == "f"]

    def referenced(self, table: str, column: str) -> str:
        """The column of its parent that `table.column`, a foreign key, points at (`id`
        when the catalog does not say)."""
        for key in self.foreign_keys(table):
            if key.columns == (column,):
                return key.parent_columns[0]
        return "id"


_COLUMNS_QUERY = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> ''
  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
   AND NOT a.attisdropped
 WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')
 ORDER BY c.relname, a.attnum
"""

_TYPES_QUERY = """
SELECT t.typname, t.typtype, array_remove(array_agg(e.enumlabel ORDER BY e.enumsortorder), NULL)
  FROM pg_type t LEFT JOIN pg_enum e ON e.enumtypid = t.oid
 WHERE t.typnamespace = current_schema()::regnamespace
 GROUP BY t.typname, t.typtype
"""

_RELATIONS_QUERY = """
SELECT relname, relkind::text FROM pg_class WHERE relnamespace = current_schema()::regnamespace
"""

_CONSTRAINTS_QUERY = """
SELECT con.conname, con.contype::text, c.relname,
       array(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(n, i)
               JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n
              ORDER BY k.i),
       f.relname,
       array(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(n, i)
               JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n
              ORDER BY k.i)
  FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
  LEFT JOIN pg_class f ON f.oid = con.confrelid
 WHERE c.relnamespace = current_schema()::regnamespace
UNION ALL
SELECT i.relname, 'i', c.relname,
       array(SELECT a.attname FROM pg_attribute a
              WHERE a.attrelid = c.oid AND a.attnum = ANY(x.indkey) ORDER BY a.attnum),
       NULL, '{}'::name[]
  FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class c ON c.oid = x.indrelid
 WHERE x.indisunique AND c.relnamespace = current_schema()::regnamespace
   AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conindid = x.indexrelid)
ORDER BY 3, 1
"""


def read_catalog(connection: psycopg.Connection[Any] | Connection) -> Catalog:
    """The [`Catalog`][pytest_celestra.schema.catalog.Catalog] of the current schema."""
    pg_conn: Any = connection
    if hasattr(pg_conn, "exec_driver_sql"):  # SQLAlchemy's
        pg_conn = pg_conn.connection.driver_connection
    tables: dict[str, dict[str, ColumnInfo]] = {}
    for table, column, kind, not_null, has_default in pg_conn.execute(_COLUMNS_QUERY):
        tables.setdefault(table, {})[column] = ColumnInfo(kind, not_null, has_default)
    type_rows = pg_conn.execute(_TYPES_QUERY).fetchall()
    types = {name: kind for name, kind, _ in type_rows}
    enums = {name: tuple(labels) for name, kind, labels in type_rows if kind == "e"}
    constraints = tuple(
        Constraint(name, kind, table, tuple(columns), parent, tuple(parent_columns))
        for name, kind, table, columns, parent, parent_columns in pg_conn.execute(
            _CONSTRAINTS_QUERY
        )
    )
    relations = dict(pg_conn.execute(_RELATIONS_QUERY).fetchall())
    return Catalog(tables, enums, constraints, relations, types)


_DEFINITIONS_QUERY = """
WITH ns AS (
    SELECT oid, nspname FROM pg_namespace
    WHERE nspname NOT IN ('pg_catalog', 'information_schema')
      AND nspname NOT LIKE 'pg\\_toast%' AND nspname NOT LIKE 'pg\\_temp\\_%'
)
SELECT 'relation', n.nspname || '.' || c.relname || ' ' || c.relkind::text
  FROM pg_class c JOIN ns n ON n.oid = c.relnamespace
UNION ALL
SELECT 'column', n.nspname || '.' || c.relname || '.' || a.attname || ' '
       || format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull::text || ' '
       || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN ns n ON n.oid = c.relnamespace
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'constraint', n.nspname || '.' || c.conname || ' ' || pg_get_constraintdef(c.oid)
  FROM pg_constraint c JOIN ns n ON n.oid = c.connamespace
UNION ALL
SELECT 'index', pg_get_indexdef(i.indexrelid)
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN ns n ON n.oid = c.relnamespace
UNION ALL
SELECT 'enum', n.nspname || '.' || t.typname || ' '
       || (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
             FROM pg_enum e WHERE e.enumtypid = t.oid)
  FROM pg_type t JOIN ns n ON n.oid = t.typnamespace WHERE t.typtype = 'e'
UNION ALL
SELECT 'function', pg_get_functiondef(p.oid)
  FROM pg_proc p JOIN ns n ON n.oid = p.pronamespace WHERE p.prokind IN ('f', 'p')
UNION ALL
SELECT 'trigger', pg_get_triggerdef(t.oid)
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN ns n ON n.oid = c.relnamespace
 WHERE NOT t.tgisinternal
UNION ALL
SELECT 'view', n.nspname || '.' || c.relname || ' ' || pg_get_viewdef(c.oid)
  FROM pg_class c JOIN ns n ON n.oid = c.relnamespace WHERE c.relkind IN ('v', 'm')
UNION ALL
SELECT 'extension', extname || ' ' || extversion FROM pg_extension
ORDER BY 1, 2
"""


def catalog_definitions(pg_conn: psycopg.Connection[Any]) -> list[list[str]]:
    """The definition of everything in the database's schemas, and the Alembic revision:
    what a schema your hook created is keyed by."""
    rows = [list(row) for row in pg_conn.execute(_DEFINITIONS_QUERY)]
    if pg_conn.execute("SELECT to_regclass('alembic_version')").fetchone() != (None,):
        rows += [["alembic", version] for (version,) in pg_conn.execute(
            "SELECT version_num FROM alembic_version"
        )]  # fmt: skip
    return rows


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
    return {
        column.type.name: tuple(column.type.enums)
        for table in Base.metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type, Enum) and column.type.name
    }


@dataclass(frozen=True)
class ExistingSchema:
    """The current schema of a database, measured against Celestra's."""

    tables: tuple[str, ...]  # Celestra tables and enum types there, as Celestra defines them
    types: tuple[str, ...]
    conflicts: tuple[str, ...]  # one per object of ours in the way
    other_tables: int

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
        # business (pytest_celestra.db.drift), not a table of another kind.
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
    """What the current schema holds under Celestra's names (and besides)."""
    catalog = read_catalog(connection)
    relations, types = catalog.relations or {}, catalog.types or {}
    tables = list(celestra_columns())
    differences = {
        name: _table_differences(
            name,
            _RELATION_KINDS.get(relations[name], "relation"),
            {column: info.type for column, info in catalog.tables.get(name, {}).items()},
        )
        for name in tables
        if name in relations
    }
    type_differences = {
        name: _type_difference(name, types[name], catalog.enums.get(name, ()))
        for name in celestra_enums()
        if name in types
    }
    conflicts = [d for d in (*differences.values(), *type_differences.values()) if d is not None]
    same_tables = [name for name, difference in differences.items() if difference is None]
    same_types = [name for name, difference in type_differences.items() if difference is None]
    others = sum(1 for name in catalog.tables if name not in tables)
    return ExistingSchema(tuple(same_tables), tuple(same_types), tuple(conflicts), others)
