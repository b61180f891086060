"""The scenario as a plain PostgreSQL script that `psql` loads, without a server at
generation time:

```bash
celestra-seed --volume large --sql celestra.sql
createdb celestra && psql -v ON_ERROR_STOP=1 -d celestra -f celestra.sql
```

The script holds the models' DDL, one text-format `COPY ... FROM stdin;` block per run of
rows of a table, then the indexes, in one transaction, and `ANALYZE`. Same volume, seed
and anchor give the same bytes.
"""

from __future__ import annotations

import enum
import itertools
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_mock_engine
from sqlalchemy.engine import make_url

from pytest_celestra import __version__
from pytest_celestra.schema.catalog import builtin_ddl
from pytest_celestra.schema.models import TABLES_IN_FK_ORDER

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from typing import TextIO

    from pytest_celestra.rows.loader import Row

_DIALECT = create_mock_engine(make_url("postgresql+psycopg://"), lambda *_, **__: None).dialect
NULL = r"\N"
# Text COPY format: a backslash starts an escape, tab separates columns, newline ends a row.
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})

_SETTINGS = (
    "SET client_encoding = 'UTF8';",
    "SET standard_conforming_strings = on;",
    "SET client_min_messages = warning;",
    "SET TimeZone = 'UTC';",
)


def copy_text(value: Any) -> str:
    """`value` as one field of a text-format COPY row."""
    if value is None:
        return NULL
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return str(value).translate(_ESCAPES)


def copy_line(row: Row) -> str:
    return "\t".join([copy_text(value) for value in row]) + "\n"


def _quote(name: str) -> str:
    return str(_DIALECT.identifier_preparer.quote(name))


def copy_header(table: str, columns: Sequence[str]) -> str:
    return f"COPY {_quote(table)} ({', '.join(map(_quote, columns))}) FROM stdin;\n"


def schema_statements() -> tuple[list[str], list[str]]:
    """The DDL of `Base.metadata` without semicolons: before the data (enum types, tables)
    and after it (the indexes, built once over the loaded rows)."""
    ddl = ["\n".join(map(str.rstrip, text.strip().splitlines())) for text in builtin_ddl()]
    index = ("CREATE INDEX", "CREATE UNIQUE INDEX")
    types = [text for text in ddl if text.startswith("CREATE TYPE")]
    tables = [text for text in ddl if not text.startswith(("CREATE TYPE", *index))]
    # Enum types and indexes come out in set order, which varies between processes.
    return sorted(types) + tables, sorted(text for text in ddl if text.startswith(index))


def write_script(
    out: TextIO,
    parts: Iterable[tuple[str, Sequence[str], Sequence[Row]]],
    *,
    title: str = "Celestra scenario",
    schema: bool = True,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Write the script of `parts`, each `(table, columns, rows)`, to `out`; the rows written
    per table. Without `schema` (the built-in DDL), data only, for a schema your migrations
    made. `progress(table, rows_so_far)` is called after every part."""
    before, after = schema_statements() if schema else ([], [])
    if schema:
        what, load = "", "(celestra-seed --sql). Load it into an empty database:"
    else:
        what = " (data only)"
        load = (
            "(celestra-seed --sql --rules). Load it into a database whose schema your "
            "migrations made, without rows:"
        )
    out.write(
        f"-- {title}{what}\n-- Written by pytest-celestra {__version__} {load}\n"
        "--   psql -v ON_ERROR_STOP=1 -d DATABASE -f FILE\n\n"
    )
    out.write("\n".join(_SETTINGS) + "\n\nBEGIN;\n\n")
    out.writelines(f"{statement};\n\n" for statement in before)
    counts = dict.fromkeys(TABLES_IN_FK_ORDER, 0) if schema else {}
    written = parts if schema else (part for part in parts if part[2])
    for (table, columns), group in itertools.groupby(written, key=lambda part: part[:2]):
        out.write(copy_header(table, columns))
        for _, _, rows in group:
            out.writelines([copy_line(tuple(row)) for row in rows])
            counts[table] = counts.get(table, 0) + len(rows)
            if progress is not None:
                progress(table, counts[table])
        out.write("\\.\n\n")
    out.writelines(f"{statement};\n" for statement in after)
    out.write("\nCOMMIT;\n\n" if after else "COMMIT;\n\n")
    out.write(f"ANALYZE {', '.join(map(_quote, counts))};\n")
    return counts
