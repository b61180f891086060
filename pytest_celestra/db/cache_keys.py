"""What determines a template's content, as hashes, and a fingerprint of what it holds.

A key must change whenever the content would and never otherwise: the built-in schema is
keyed by the DDL `create_all` emits, yours by its declared version or its catalog, the
scenario by the package's source (and the versions of Faker and factory_boy), the password
hashing, the volume, the seed and the day.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.metadata
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_celestra import __version__

if TYPE_CHECKING:
    from collections.abc import Callable

    import psycopg
    from sqlalchemy.engine import Connection

    from pytest_celestra.schema.volumes import Volume

PACKAGE_DIR = Path(__file__).parent.parent


def digest(*parts: object) -> str:
    """A stable hash of JSON-able `parts`."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def builtin_schema_key() -> str:
    """Hash of the DDL that `Base.metadata.create_all` emits for PostgreSQL."""
    from pytest_celestra.schema.catalog import builtin_ddl

    return digest("builtin", sorted(builtin_ddl()))  # sorted: the keys of earlier releases


def user_schema_key(version: str, project: str) -> str:
    """Key of a schema whose set-up hook declared a version, in the project whose root
    directory is `project`: two projects on one server whose migrations share a revision id
    (`0002`) never share a schema."""
    return digest("user", version, project)


def catalog_schema_key(connection: psycopg.Connection[Any]) -> str:
    """Hash of a database's schema as the catalog describes it (and its Alembic revision)."""
    from pytest_celestra.schema.catalog import catalog_definitions

    return digest("catalog", catalog_definitions(connection))


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
    """The `Fingerprint` of the database `connection` is on (a scan of each table)."""
    from psycopg import sql

    tables = [row[0] for row in connection.execute(_TABLES_QUERY).fetchall()]
    per_table = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT {}, count(*), coalesce(sum(xmin::text::bigint), 0) FROM {}").format(
            sql.Literal(table), sql.SQL(table)
        )
        for table in tables
    )
    # Sorted: the planner may run the branches in parallel, in any order.
    found = sorted(connection.execute(per_table).fetchall()) if tables else []
    counted = [(str(table), int(count), int(total)) for table, count, total in found]
    rows = {table: count for table, count, _ in counted}
    return Fingerprint(rows, digest("fingerprint", counted))


def package_sources(package: Path = PACKAGE_DIR) -> dict[str, str]:
    """Relative path -> SHA-256 of every `.py` file of the package."""
    # Every file, not a list of "data modules": a list goes stale unnoticed when a module
    # is added, and hashing one too many costs only a rebuild after an edit.
    return {
        path.relative_to(package).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(package.rglob("*.py"))
    }


ROW_LIBRARIES = ("faker", "factory-boy")
"""The libraries whose code decides rows too: Faker's name lists and the draws of your
builders' factories, factory_boy's resolution of their declarations."""


def library_versions() -> dict[str, str]:
    """The installed version of each of `ROW_LIBRARIES`."""
    return {name: importlib.metadata.version(name) for name in ROW_LIBRARIES}


def generator_code_key(package: Path = PACKAGE_DIR) -> str:
    """Hash of the package version, the source of every module of the package and the
    versions of `ROW_LIBRARIES`; the installed package's once per process (its files do
    not change while it runs)."""
    if package == PACKAGE_DIR:
        return _installed_code_key()
    return digest(__version__, package_sources(package), library_versions())


@functools.cache
def _installed_code_key() -> str:
    return digest(__version__, package_sources(PACKAGE_DIR), library_versions())


def password_hashing_key() -> dict[str, object]:
    """The password hashing in effect
    ([`pytest_celestra.rows.passwords.configure`][pytest_celestra.rows.passwords.configure])."""
    from pytest_celestra.rows.passwords import current_hasher

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
    """How to create the schema in an empty database, and its key (None: run `create`
    and hash the resulting catalog)."""

    create: Callable[[Connection], None]
    key: str | None


def builtin_schema_setup() -> SchemaSetup:
    """The Celestra schema from
    [`pytest_celestra.schema.models.Base`][pytest_celestra.schema.models.Base]."""
    from pytest_celestra.schema.models import Base

    return SchemaSetup(Base.metadata.create_all, builtin_schema_key())
