"""What determines a template's content, as hashes: the schema, the generator code.

A template is found again by these keys, so they must change whenever the content would
and never otherwise: the built-in schema is keyed by the DDL `create_all` emits, a
user's schema by its declared version or by its catalog after set-up, the scenario by
the source of every module of the package, the password hashing in effect, the volume,
the seed and the anchor day.

A template's *content* is summed up by `content_fingerprint`, recorded when it is
built and compared with every copy made of it, so a template changed by hand is noticed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_celestra import __version__

if TYPE_CHECKING:
    from collections.abc import Callable

    import psycopg
    from sqlalchemy.engine import Connection

    from pytest_celestra.volumes import Volume

PACKAGE_DIR = Path(__file__).parent


def digest(*parts: object) -> str:
    """A stable hash of JSON-able `parts`."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def builtin_schema_key() -> str:
    """Hash of the DDL that `Base.metadata.create_all` emits for PostgreSQL."""
    from sqlalchemy import create_mock_engine
    from sqlalchemy.engine import make_url

    from pytest_celestra.models import Base

    statements: list[str] = []

    def record(statement: Any, *_: Any, **__: Any) -> None:
        statements.append(str(statement.compile(dialect=mock.dialect)))

    mock = create_mock_engine(make_url("postgresql+psycopg://"), record)
    Base.metadata.create_all(mock)
    return digest("builtin", sorted(statements))  # emission order follows set order


def user_schema_key(version: str) -> str:
    """Key of a schema whose set-up hook declared a version."""
    return digest("user", version)


_CATALOG_QUERY = """
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


def catalog_schema_key(connection: psycopg.Connection[Any]) -> str:
    """Hash of a database's schema as the catalog describes it (and its Alembic revision)."""
    rows = connection.execute(_CATALOG_QUERY).fetchall()
    if connection.execute("SELECT to_regclass('alembic_version')").fetchone() != (None,):
        rows += connection.execute("SELECT 'alembic', version_num FROM alembic_version").fetchall()
    return digest("catalog", [list(row) for row in rows])


_TABLES_QUERY = """
SELECT format('%I.%I', n.nspname, c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
 ORDER BY 1
"""


@dataclass(frozen=True)
class Fingerprint:
    """Rows per table and a checksum over every row of a database, to tell copies apart.

    The checksum hashes, per table, the row count and the sum of the rows' `xmin` (the
    transaction that wrote each row). Every row inserted or updated after the build
    carries a newer transaction id than all the build's rows, so any change to the rows
    (a delete, an insert, an update, a reload with other data) changes a count or a sum,
    while a copy (CREATE DATABASE ... TEMPLATE copies the files) matches exactly. It
    costs one scan per table, without reading the rows' text: about 0.1 s for the
    `large` volume, five times less than hashing each row's text.
    """

    rows: dict[str, int]
    checksum: str

    def as_meta(self) -> dict[str, object]:
        """What a template's comment records."""
        return {"rows": self.rows, "checksum": self.checksum}

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> Fingerprint | None:
        """The fingerprint recorded in a template's comment, or None if there is none."""
        rows, checksum = meta.get("rows"), meta.get("checksum")
        if not isinstance(rows, dict) or not isinstance(checksum, str):
            return None
        return cls({str(table): int(count) for table, count in rows.items()}, checksum)

    def differences(self, other: Fingerprint) -> str | None:
        """How `other` (a copy) differs from this one (the original), or None."""
        if other == self:
            return None
        changed = [
            f"{table} {other.rows.get(table, 'missing')} rows (built with {count})"
            for table, count in self.rows.items()
            if other.rows.get(table) != count
        ]
        changed += [f"{table} is new" for table in other.rows if table not in self.rows]
        if not changed:
            return "rows changed (same counts, other content)"
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        return "; ".join(changed[:3]) + more


def content_fingerprint(connection: psycopg.Connection[Any]) -> Fingerprint:
    """The `Fingerprint` of the database `connection` is on: one query per call
    after listing the tables, one sequential scan of each table."""
    from psycopg import sql

    tables = [row[0] for row in connection.execute(_TABLES_QUERY).fetchall()]
    if not tables:
        return Fingerprint({}, digest("fingerprint", []))
    per_table = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT {}, count(*), coalesce(sum(xmin::text::bigint), 0) FROM {}").format(
            sql.Literal(table), sql.SQL(table)
        )
        for table in tables
    )
    # Sorted: the planner may run the branches in parallel, in any order.
    rows = sorted(connection.execute(per_table).fetchall())
    return Fingerprint(
        {str(table): int(count) for table, count, _ in rows},
        digest(
            "fingerprint", [[str(table), int(count), int(total)] for table, count, total in rows]
        ),
    )


def package_sources(package: Path = PACKAGE_DIR) -> dict[str, str]:
    """Relative path -> SHA-256 of every `.py` file of the package."""
    # Every file, not a list of "data modules": a list goes stale unnoticed when a module
    # is added, and hashing one too many costs only a rebuild after an edit.
    return {
        path.relative_to(package).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(package.rglob("*.py"))
    }


def generator_code_key(package: Path = PACKAGE_DIR) -> str:
    """Hash of the package version and the source of every module of the package."""
    return digest(__version__, package_sources(package))


def password_hashing_key() -> dict[str, object]:
    """The password hashing in effect
    ([`pytest_celestra.passwords.configure`][pytest_celestra.passwords.configure])."""
    from pytest_celestra.passwords import current_hasher

    hasher = current_hasher()
    # Every field of the hasher, so one added later is part of the key too.
    return {**dataclasses.asdict(hasher), "cost": hasher.cost}


def scenario_key(schema_key: str | None, volume: Volume, seed: int, day: str) -> str:
    """Key of a seeded template: schema, generator code, password hashing, volume, seed, day."""
    return digest(
        schema_key, generator_code_key(), password_hashing_key(), dict(volume.counts), seed, day
    )


@dataclass(frozen=True)
class SchemaSetup:
    """How to create the schema in an empty database, and its key if known beforehand.

    `key` None means: run `create` and hash the resulting catalog.
    """

    create: Callable[[Connection], None]
    key: str | None


def builtin_schema_setup() -> SchemaSetup:
    """The Celestra schema from [`pytest_celestra.models.Base`][pytest_celestra.models.Base]."""
    from pytest_celestra.models import Base

    return SchemaSetup(Base.metadata.create_all, builtin_schema_key())


# --- what a function of the user's reads ------------------------------------------------

_PLAIN = (type(None), bool, int, float, complex, str, bytes)
_MAX_ITEMS = 10_000
"""A container with more items than this is hashed by its repr alone."""


def callable_fingerprint(fn: Callable[..., Any]) -> str:
    """A hash of `fn` and of what it reads: its source, defaults, closure values,
    `functools.partial` arguments, and every global name its code (nested functions
    included) uses: values, functions and classes of your own (followed the same way),
    your own modules (by their source file).

    Installed libraries and the standard library count by name and version, this package
    by its code key (which every template's key holds). What a function reads at run
    time from files, the environment or a database cannot be seen: give such a builder
    a `version=`, or rebuild with `--celestra-rebuild`.
    """
    return digest("callable", _described(fn, set()))


def _is_library(module_name: str | None) -> bool:
    """Is `module_name` installed code (standard library, site-packages, this package)?"""
    import sys
    import sysconfig

    if not module_name:
        return True
    top = module_name.partition(".")[0]
    if top in sys.stdlib_module_names or top == "builtins":
        return True
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None)
    if path is None:
        return True
    resolved = str(Path(path).resolve())
    if top == "pytest_celestra":
        return True
    paths = sysconfig.get_paths()
    roots = {paths[name] for name in ("stdlib", "platstdlib", "purelib", "platlib")}
    return any(resolved.startswith(str(Path(root).resolve())) for root in roots)


def _library_version(module_name: str | None) -> object:
    import sys

    if not module_name:
        return None
    if module_name.partition(".")[0] == "pytest_celestra":
        return "the package's code key"  # part of every template's key already
    top = sys.modules.get(module_name.partition(".")[0])
    return getattr(top, "__version__", None)


def _source(obj: Any) -> str | None:
    import inspect
    import textwrap

    try:
        return textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError):
        return None


def _names_read(code: Any) -> set[str]:
    """Global (and attribute) names used by `code` and the code nested in it."""
    names = set(code.co_names)
    for constant in code.co_consts:
        if hasattr(constant, "co_names"):
            names |= _names_read(constant)
    return names


def _described(value: Any, seen: set[int]) -> object:
    """A JSON-able description of `value` that changes when what it would do changes."""
    import enum
    import functools
    import inspect
    import types

    if isinstance(value, (*_PLAIN, enum.Enum)):
        return repr(value)
    if id(value) in seen:
        return ["seen", getattr(value, "__qualname__", type(value).__qualname__)]
    seen.add(id(value))
    if isinstance(value, functools.partial):
        return [
            "partial",
            _described(value.func, seen),
            [_described(item, seen) for item in value.args],
            {key: _described(item, seen) for key, item in sorted(value.keywords.items())},
        ]
    if isinstance(value, types.MethodType):
        return ["method", _described(value.__func__, seen), type(value.__self__).__qualname__]
    if isinstance(value, types.ModuleType):
        if _is_library(value.__name__):
            return ["library", value.__name__, _library_version(value.__name__)]
        path = getattr(value, "__file__", None)
        return ["module", value.__name__, _file_hash(path)]
    module_name = getattr(value, "__module__", None)
    if isinstance(value, types.FunctionType):
        if _is_library(module_name):
            return ["library", module_name, value.__qualname__, _library_version(module_name)]
        return _function(value, seen)
    if inspect.isclass(value):
        if _is_library(module_name):
            return ["library", module_name, value.__qualname__, _library_version(module_name)]
        return [
            "class",
            value.__qualname__,
            _source(value),
            [_described(base, seen) for base in value.__bases__],
        ]
    if isinstance(value, list | tuple | set | frozenset | dict):
        if len(value) > _MAX_ITEMS:
            return ["container", type(value).__name__, repr(value)]
        if isinstance(value, dict):
            return [
                "dict",
                sorted([repr(key), _described(item, seen)] for key, item in value.items()),
            ]
        items = [_described(item, seen) for item in value]
        if isinstance(value, set | frozenset):
            items = sorted(items, key=repr)
        return [type(value).__name__, items]
    return ["object", _described(type(value), seen), _state(value, seen)]


def _state(value: Any, seen: set[int]) -> object:
    """An instance's attributes, or its repr when it has none and the repr says more
    than its address."""
    attributes = getattr(value, "__dict__", None)
    if isinstance(attributes, dict):
        return _described(attributes, seen)
    text = repr(value)
    return None if " at 0x" in text else text


def _function(fn: Any, seen: set[int]) -> object:
    import builtins

    code = fn.__code__
    globals_read = {
        name: _described(fn.__globals__[name], seen)
        for name in sorted(_names_read(code))
        if name in fn.__globals__ and not hasattr(builtins, name)
    }
    closure = [
        _described(cell.cell_contents, seen) if _cell_filled(cell) else None
        for cell in fn.__closure__ or ()
    ]
    return [
        "function",
        fn.__qualname__,
        _source(fn) or [code.co_code.hex(), repr(code.co_consts)],
        _described(fn.__defaults__ or (), seen),
        _described(fn.__kwdefaults__ or {}, seen),
        closure,
        globals_read,
    ]


def _cell_filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018 (an empty cell raises)
    except ValueError:
        return False
    return True


def _file_hash(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None
