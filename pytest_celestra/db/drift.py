"""The drift report: the live schema measured against what the plugin writes into it.

Before any row is written, [`check_drift`][pytest_celestra.db.drift.check_drift] compares the
catalog with the columns, enum labels and constraints the generator and the factories were
written for, and your [`SchemaRules`][pytest_celestra.schema.app_rules.SchemaRules]. Every
difference that would make seeding fail is listed in one
[`SchemaDriftError`][pytest_celestra.db.drift.SchemaDriftError], with the `conftest.py` lines
that teach the plugin the change; the others become lines of the run's summary.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from pytest_celestra.errors import CelestraError

if TYPE_CHECKING:
    import psycopg
    from sqlalchemy.exc import DBAPIError

    from pytest_celestra.schema.app_rules import SchemaRules
    from pytest_celestra.schema.catalog import Catalog, ColumnInfo

_BOOKKEEPING_TABLES = frozenset({"alembic_version"})  # nobody's data


class SchemaDriftError(CelestraError):
    """The database's schema needs rules the plugin was not given; nothing was written."""


@cache
def _builtin_nullable() -> dict[str, dict[str, bool]]:
    from pytest_celestra.rows.loader import COLUMNS
    from pytest_celestra.schema.models import Base

    return {
        table: {name: bool(Base.metadata.tables[table].c[name].nullable) for name in names}
        for table, names in COLUMNS.items()
    }


@cache
def builtin_constraint_names() -> frozenset[str]:
    """Names of the CHECK, UNIQUE and key constraints and the indexes `create_all` makes."""
    from pytest_celestra.schema.catalog import builtin_ddl

    return frozenset(re.findall(r"(?:CONSTRAINT|INDEX) (\w+)", "\n".join(builtin_ddl())))


_STRING_TYPE = re.compile(r"^(?:text|character varying|varchar)(?:\((\d+)\))?$")


def _widened(old: str, new: str) -> bool:
    """Whether a column of type `old` now of type `new` still takes every old value."""
    old_match, new_match = _STRING_TYPE.match(old), _STRING_TYPE.match(new)
    if old_match is None or new_match is None:
        return False
    if new_match.group(1) is None:
        return True
    return old_match.group(1) is not None and int(new_match.group(1)) >= int(old_match.group(1))


@dataclass
class DriftReport:
    """Differences between the catalog and what the plugin writes: those that make seeding
    fail, the `conftest.py` lines that teach the plugin them, and those that do not."""

    breaking: list[str] = field(default_factory=list)
    remedies: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    has_rules: bool = False
    """Your rules hook exists: the remedies go into it, not a new one."""

    def message(self) -> str:
        lines = [
            f"the database's schema differs from what pytest-celestra writes "
            f"({len(self.breaking)} difference{'s' if len(self.breaking) != 1 else ''} "
            "to teach it; no row was written):"
        ]
        lines += [f"  - {line}" for line in self.breaking]
        if self.remedies and self.has_rules:
            # A second hook of that name in the same conftest.py would replace the first.
            lines += ["Add to your pytest_celestra_schema_rules(rules):", ""]
            lines += [f"        {line}" for line in self.remedies]
            lines.append("")
        elif self.remedies:
            lines += ["Add to your conftest.py:", ""]
            lines.append("    def pytest_celestra_schema_rules(rules):")
            lines += [f"        {line}" for line in self.remedies]
            lines.append("")
        if self.notes:
            lines.append("Not breaking:")
            lines += [f"  - {line}" for line in self.notes]
        lines.append("See the docs page 'When your schema changes' (docs/schema-changes.md).")
        return "\n".join(lines)


def compare(catalog: Catalog, rules: SchemaRules) -> DriftReport:
    """Every difference between `catalog` and what the plugin and `rules` write."""
    from pytest_celestra.schema.catalog import celestra_columns, celestra_enums

    report = DriftReport(has_rules=rules.hooked or bool(rules or rules.accepted or rules.empty))
    ours = celestra_columns()
    nullable = _builtin_nullable()
    filled = {table: set(columns) for table, columns in ours.items()}
    for (table, column), rule in rules.columns.items():
        filled.setdefault(table, set()).add(column)
        if column not in catalog.tables.get(table, {}):
            report.breaking.append(
                f"{rule.origin} fills a column the database does not have: remove the rule"
            )

    for table, columns in ours.items():
        found = catalog.tables.get(table)
        if found is None:
            report.breaking.append(
                f"table {table} is gone; the generator writes it (the plugin cannot seed "
                "without its 15 tables)"
            )
            continue
        for column, wanted in columns.items():
            info = found.get(column)
            if info is None:
                report.breaking.append(
                    f"column {table}.{column} is gone; the generator and the factories write it"
                )
            elif info.type != wanted and not _widened(wanted, info.type):
                report.breaking.append(
                    f"column {table}.{column} is {info.type}, no longer {wanted}; the generator "
                    f"writes {wanted} values"
                )
            elif info.not_null and not info.has_default and nullable[table][column]:
                report.breaking.append(
                    f"column {table}.{column} became NOT NULL; the generator leaves it NULL in "
                    "some rows (give it a DEFAULT in the migration)"
                )
        for column, info in found.items():
            if column in filled[table]:
                continue
            if info.not_null and not info.has_default:
                report.breaking.append(
                    f"{table}.{column} ({info.type}) is NOT NULL without a default, and no "
                    "rule fills it"
                )
                report.remedies.append(_column_remedy(table, column, info))
            else:
                report.notes.append(
                    f"new column {table}.{column} ({info.type}) is left to its default"
                )

    _enum_labels(report, catalog, celestra_enums(), rules)
    _new_tables(report, catalog, rules, set(ours))
    _new_constraints(report, catalog, rules, set(ours), filled)
    return report


def _column_remedy(table: str, column: str, info: ColumnInfo) -> str:
    return (
        f'rules.column("{table}", "{column}", values={{"VALUE": 1}})  '
        f"# {info.type}: your values and their weights"
    )


def _enum_labels(
    report: DriftReport, catalog: Catalog, produced: dict[str, tuple[str, ...]], rules: SchemaRules
) -> None:
    for enum, labels in produced.items():
        found = catalog.enums.get(enum)
        if found is None:
            continue  # the columns of that type changed type: reported with them
        if gone := [label for label in labels if label not in found]:
            report.breaking.append(
                f"enum {enum} no longer has {', '.join(gone)}; the generator and the factories "
                "produce them"
            )
        for label in found:
            if label in labels or label in rules.enum_shares.get(enum, {}):
                continue
            report.notes.append(
                f"new label {label} of enum {enum} is never generated; to have it: "
                f'rules.enum_weights("{enum}", {{"{label}": 0.05}})'
            )
    for enum, shares in rules.enum_shares.items():
        if enum not in catalog.enums:
            report.breaking.append(
                f'rules.enum_weights("{enum}", ...) names an enum the database lacks'
            )
            continue
        report.breaking += [
            f'rules.enum_weights("{enum}", ...) gives {label}, which the enum {enum} does not have'
            for label in shares
            if label not in catalog.enums[enum]
        ]


def _new_tables(report: DriftReport, catalog: Catalog, rules: SchemaRules, ours: set[str]) -> None:
    for name, rule in rules.added_tables().items():
        found = catalog.tables.get(name)
        if found is None:
            report.breaking.append(f"{rule.origin} fills a table the database does not have")
            continue
        for column, parent in rule.parents:
            if column not in found:
                report.breaking.append(f"{rule.origin}: {name} has no column {column}")
            if parent not in catalog.tables:
                report.breaking.append(f"{rule.origin}: its parent table {parent} does not exist")
    for name in sorted(catalog.tables):
        if name in ours or name in _BOOKKEEPING_TABLES or name in rules.tables:
            continue
        keys = [fk for fk in catalog.foreign_keys(name) if fk.parent in ours]
        if not keys or name in rules.empty:
            report.notes.append(f"new table {name} stays empty (no rule fills it)")
            continue
        pointers = ", ".join(f"{fk.columns[0]} -> {fk.parent}" for fk in keys)
        report.breaking.append(
            f"new table {name} references ours ({pointers}); the seeded databases would "
            "leave it empty"
        )
        parents = ", ".join(f'"{fk.columns[0]}": "{fk.parent}"' for fk in keys)
        report.remedies.append(
            f'rules.table("{name}", parents={{{parents}}}, '
            'count={"small": 10, "medium": 100, "large": 1000})'
        )
        given = {column for fk in keys for column in fk.columns}
        for column, info in catalog.tables[name].items():
            if column not in given and info.not_null and not info.has_default:
                if info.type == "uuid":
                    continue  # a key without default: filled with random UUIDs
                report.remedies.append(_column_remedy(name, column, info))
        report.remedies.append(f'# or: rules.leave_empty("{name}")')


_KINDS = {"c": "CHECK constraint", "u": "UNIQUE constraint", "x": "exclusion constraint",
          "i": "unique index"}  # fmt: skip


def _new_constraints(
    report: DriftReport,
    catalog: Catalog,
    rules: SchemaRules,
    ours: set[str],
    filled: dict[str, set[str]],
) -> None:
    known = builtin_constraint_names()
    for constraint in catalog.constraints:
        if constraint.table not in ours or constraint.kind not in _KINDS:
            continue
        if constraint.name in known or constraint.name in rules.accepted:
            continue
        columns = set(constraint.columns)
        builtin = set(_builtin_nullable()[constraint.table])
        if columns and not columns & builtin and columns <= filled[constraint.table]:
            continue  # on your rules' columns only: your rules answer for it
        on = f" ({', '.join(constraint.columns)})" if constraint.columns else ""
        report.breaking.append(
            f"new {_KINDS[constraint.kind]} {constraint.name} on {constraint.table}{on}: the "
            "generator was not written for it"
        )
        report.remedies.append(
            f'rules.accept("{constraint.name}")  # if the generated rows satisfy it'
        )


def check_drift(
    pg_conn: psycopg.Connection[Any], rules: SchemaRules, *, before_seeding: bool = True
) -> list[str]:
    """Raise [`SchemaDriftError`][pytest_celestra.db.drift.SchemaDriftError] listing every
    difference that breaks seeding; return the lines of those that do not. Right after the
    schema is created (`before_seeding` False), one without Celestra's tables is not checked:
    it may serve the empty-database fixtures only."""
    from pytest_celestra.rows.loader import COLUMNS
    from pytest_celestra.schema.catalog import read_catalog

    catalog = read_catalog(pg_conn)
    if not before_seeding and not any(table in catalog.tables for table in COLUMNS):
        return []
    report = compare(catalog, rules)
    if report.breaking:
        raise SchemaDriftError(report.message())
    return report.notes


class RowRejectedError(CelestraError):
    """The database refused a row the plugin made; the message holds none of its values."""


@cache
def _rejected_kind(base: type[DBAPIError]) -> type[Any]:
    """A subclass of SQLAlchemy's error `base`, so `pytest.raises(IntegrityError)` still
    catches a factory's refused row; its text is ours, without statement or values."""

    def __init__(self: Any, message: str, orig: BaseException) -> None:
        base.__init__(self, None, None, orig)
        self.message = message

    name = f"RowRejected{base.__name__}"  # its own name, not <locals>, in tracebacks
    methods = {"__init__": __init__, "__str__": lambda self: self.message}
    return type(name, (RowRejectedError, base), {**methods, "__qualname__": name})


_COPY_COLUMN = re.compile(r"\bcolumn (\w+)")


def _refused_where(error: BaseException, table: str) -> tuple[Any, Any, str, str | None]:
    """The driver error, its diagnostics, the table and the column (if one is named)."""
    cause = getattr(error, "orig", None) or error
    diag = getattr(cause, "diag", None)
    table = (diag.table_name if diag is not None else None) or table
    column = diag.column_name if diag is not None else None
    if column is None and diag is not None and diag.context:
        found = _COPY_COLUMN.search(diag.context.splitlines()[0])
        column = found.group(1) if found else None
    return cause, diag, table, column


def describe_refusal(error: BaseException, table: str) -> str:
    """`null value in column "locale" ... [table users, column locale]`: why PostgreSQL
    refused a row, and where, from the error's diagnostics, without any value."""
    cause, diag, table, column = _refused_where(error, table)
    sqlstate = str(getattr(cause, "sqlstate", None) or "")
    constraint = diag.constraint_name if diag is not None else None
    named = {"table": table, "column": column, "constraint": constraint}
    where = ", ".join(f"{kind} {name}" for kind, name in named.items() if name)
    if sqlstate.startswith("23") and diag is not None and diag.message_primary:
        why = diag.message_primary
    else:
        why = f"{type(cause).__name__} (SQLSTATE {sqlstate or 'unknown'})"
    return f"{why} [{where}]"


def rejected_row(
    error: BaseException, table: str, producer: str, rules: SchemaRules | None = None
) -> RowRejectedError:
    """A [`RowRejectedError`][pytest_celestra.db.drift.RowRejectedError] for a driver error
    (psycopg's, or SQLAlchemy's wrapping one) raised writing a row of `table` made by
    `producer` (a factory, a rule, the generator).

    It names the table, column and constraint, never the row's values or the statement's
    parameters (password hashes, tokens): the server's detail line (`Key (email)=(...)`)
    is left out, and so is the primary message of errors other than constraint violations,
    which may quote the value. A SQLAlchemy error becomes a subclass of its class, its
    `orig` kept.
    """
    cause, diag, table, column = _refused_where(error, table)
    rule = None if rules is None else rules.columns.get((table, column or ""))
    if rule is not None and rule.origin not in producer:
        producer = f"{producer} (its {column} from {rule.origin})"
    if not getattr(cause, "sqlstate", None):
        # psycopg's own error (a value it cannot adapt or dump): the server saw nothing.
        return _wrapped(
            error,
            cause,
            f"psycopg could not send a row made by {producer} to PostgreSQL "
            f"[table {table}{f', column {column}' if column else ''}]: a value of the row is "
            f"of a type it cannot send as that column ({type(cause).__name__}). PostgreSQL "
            "never saw the row; its values are not shown.",
        )
    why = describe_refusal(error, table)
    message = f"PostgreSQL refused a row made by {producer}: {why}. The row's values are not shown."
    constraint = diag.constraint_name if diag is not None else None
    if not _ours(table, column, constraint, str(cause.sqlstate)):
        message += (
            " If your migrations changed this table, teach the plugin the change in "
            "pytest_celestra_schema_rules (docs: 'When your schema changes')."
        )
    return _wrapped(error, cause, message)


def _ours(table: str, column: str | None, constraint: str | None, sqlstate: str) -> bool:
    """Whether what refused the row is part of the schema as built (then the row broke the
    schema itself, and no migration is to blame); a trigger's error, naming none, is not."""
    from pytest_celestra.rows.loader import COLUMNS

    if table not in COLUMNS:
        return False
    if constraint:
        return constraint in builtin_constraint_names()
    if sqlstate == "23502" and column:  # not_null_violation names a column, no constraint
        return column in COLUMNS[table]
    return False


def _wrapped(error: BaseException, cause: BaseException, message: str) -> RowRejectedError:
    from sqlalchemy.exc import DBAPIError, IntegrityError

    if isinstance(error, DBAPIError):
        base = IntegrityError if isinstance(error, IntegrityError) else DBAPIError
        rejected: RowRejectedError = _rejected_kind(base)(message, cause)
        return rejected
    return RowRejectedError(message)
