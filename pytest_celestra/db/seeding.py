"""One way to seed: the plugin's templates and `celestra-seed` both fill a database here.

A [`Seeder`][pytest_celestra.db.seeding.Seeder] holds your schema rules. Given a connection,
it checks the schema for drift, writes the scenario (or one of yours) into the connection's
transaction (it never commits) and reports what it wrote; given a text stream, it writes
the same rows as a SQL script.

```python
from pytest_celestra import Volume, anchor_for
from pytest_celestra.db.seeding import Seeder

with psycopg.connect(dsn) as connection:  # the schema exists
    report = Seeder().seed(connection, Volume.named("small"), seed=42, anchor=anchor_for())
    connection.commit()
print(report.summary, *report.notes, sep="\n")
```
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from pytest_celestra.errors import CelestraError

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime
    from types import ModuleType
    from typing import TextIO

    from pytest_celestra.db.user_scenarios import ScenarioBuilder
    from pytest_celestra.rows.scenario import ScenarioSummary
    from pytest_celestra.schema.app_rules import SchemaRules
    from pytest_celestra.schema.volumes import Volume


@dataclass(frozen=True)
class SeedReport:
    """What a seed wrote, and the schema's differences that did not stop it (one line each)."""

    summary: ScenarioSummary
    notes: list[str]


class Seeder:
    """Fills databases with the scenario extended by `rules` (none: the scenario as is).
    `key` (empty without rules) is part of every seeded template's key."""

    def __init__(self, rules: SchemaRules | None = None) -> None:
        from pytest_celestra.schema.app_rules import SchemaRules

        self.rules = rules if rules is not None else SchemaRules()
        self.key = self.rules.key() if self.rules else ""

    def schema_notes(self, connection: Any) -> list[str]:
        """Right after the schema was created: raise
        [`SchemaDriftError`][pytest_celestra.db.drift.SchemaDriftError] if it cannot be
        seeded, else the lines of its differences."""
        from pytest_celestra.db.drift import check_drift
        from pytest_celestra.rows.loader import raw_connection

        return check_drift(raw_connection(connection), self.rules, before_seeding=False)

    def seed(
        self,
        connection: Any,
        volume: Volume,
        *,
        seed: int,
        anchor: datetime,
        progress: Callable[[str, int], None] | None = None,
    ) -> SeedReport:
        """Check the schema for drift, then write the scenario of `volume`, extended by
        the rules, into `connection`'s transaction (a psycopg connection, or a SQLAlchemy
        Connection or Session on psycopg). `progress(table, rows_so_far)` follows each
        chunk. Raises [`SchemaDriftError`][pytest_celestra.db.drift.SchemaDriftError] or
        [`RowRejectedError`][pytest_celestra.db.drift.RowRejectedError]; a lost server or a
        full disk is the driver's `OperationalError`."""
        import psycopg

        from pytest_celestra.db.app_seed import write_with_rules
        from pytest_celestra.db.drift import check_drift, rejected_row
        from pytest_celestra.rows.loader import raw_connection
        from pytest_celestra.rows.scenario import ScenarioSummary, seed_scenario

        pg_conn = raw_connection(connection)
        notes = check_drift(pg_conn, self.rules)
        started = time.perf_counter()
        if self.rules:
            counts = write_with_rules(pg_conn, volume, seed, anchor, self.rules, progress)
        else:
            try:
                # The caller's connection: a Ctrl-C during the COPY invalidates a SQLAlchemy one.
                written = seed_scenario(
                    connection, volume, seed=seed, anchor=anchor, progress=progress
                )
                counts = dict(written.rows)
            except psycopg.Error as error:
                if isinstance(error, psycopg.OperationalError):
                    raise
                table = error.diag.table_name or "?"
                raise rejected_row(
                    error, table, f"the generator's {table} rows", self.rules
                ) from None
        seconds = time.perf_counter() - started
        return SeedReport(
            ScenarioSummary(volume, seed, anchor, MappingProxyType(counts), seconds), notes
        )

    def build(
        self, connection: Any, scenario: ScenarioBuilder, *, seed: int, anchor: datetime
    ) -> SeedReport:
        """Write a scenario of yours into `connection`'s transaction (a SQLAlchemy
        Connection, begun): its base volume as [`seed`][pytest_celestra.db.seeding.Seeder.seed]
        writes it (without one, the schema is checked), then each of its layers' builders.
        The summary counts the rows of the 15 tables at the end."""
        from sqlalchemy import text

        from pytest_celestra.db.user_scenarios import layers_of
        from pytest_celestra.rows.scenario import ScenarioSummary
        from pytest_celestra.schema.tables import TABLES_IN_FK_ORDER
        from pytest_celestra.schema.volumes import Volume

        started = time.perf_counter()
        volume = scenario.volume
        if volume is None:
            notes = self.schema_notes(connection)
        else:
            notes = self.seed(connection, volume, seed=seed, anchor=anchor).notes
        for layer in layers_of(scenario, self.rules):
            layer.write(connection, seed=seed)
        counted = ", ".join(f'(SELECT count(*) FROM "{table}")' for table in TABLES_IN_FK_ORDER)
        counts = connection.execute(text(f"SELECT {counted}")).one()
        rows = MappingProxyType(dict(zip(TABLES_IN_FK_ORDER, counts, strict=True)))
        summary = ScenarioSummary(
            volume or Volume.named("medium"), seed, anchor, rows, time.perf_counter() - started
        )
        return SeedReport(summary, notes)

    def write_script(
        self,
        out: TextIO,
        volume: Volume,
        *,
        seed: int,
        anchor: datetime,
        progress: Callable[[str, int], None] | None = None,
    ) -> dict[str, int]:
        """Write the scenario as a `psql -f` script to `out`; with rules, a data-only script
        of the scenario extended by them, for a database your migrations made. The rows
        per table."""
        from pytest_celestra.rows.sqlscript import write_script

        title = f"Celestra scenario {volume.name!r}, seed {seed}, anchor {anchor.isoformat()}"
        if self.rules:
            from pytest_celestra.db.app_seed import extended_rows

            parts = extended_rows(volume, seed, anchor, self.rules)
            return write_script(out, parts, title=title, schema=False)
        from pytest_celestra.rows.loader import COLUMNS
        from pytest_celestra.rows.scenario import generate_scenario

        chunks = generate_scenario(volume, seed=seed, anchor=anchor)
        plain = ((table, COLUMNS[table], rows) for table, rows in chunks)
        return write_script(out, plain, title=title, progress=progress)


def import_user_file(path: Path, what: str) -> ModuleType:
    """The module of the Python file `path`, imported with its directory first on
    `sys.path`, as pytest imports a conftest; `what` (`--rules conftest.py`) begins the
    message of the CelestraError a failed import raises."""
    spec = importlib.util.spec_from_file_location(f"celestra_user_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise CelestraError(f"{what}: {path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        raise CelestraError(
            f"{what}: importing {path} failed: {type(error).__name__}: {error}"
        ) from error
    return module


def rules_from_file(path: Path) -> SchemaRules:
    """The rules that `path`'s `pytest_celestra_schema_rules(rules[, config])` gives,
    called with `config=None`; pytest is not run."""
    from pytest_celestra.schema.app_rules import SchemaRules

    hook = getattr(import_user_file(path, f"--rules {path}"), "pytest_celestra_schema_rules", None)
    if not callable(hook):
        raise CelestraError(f"--rules {path}: it defines no pytest_celestra_schema_rules function")
    rules = SchemaRules(hooked=True)
    given = {"rules": rules, "config": None}
    try:
        hook(**{name: given[name] for name in inspect.signature(hook).parameters if name in given})
    except CelestraError:
        raise
    except Exception as error:
        raise CelestraError(
            f"--rules {path}: pytest_celestra_schema_rules failed: {type(error).__name__}: {error}"
        ) from None
    return rules


def scenario_from_file(text: str, default_file: Path | None = None) -> ScenarioBuilder:
    """The scenario `FILE::NAME` names (or `NAME`, in `default_file`)."""
    from pytest_celestra.db.user_scenarios import ScenarioBuildError, scenarios_in

    file_text, separator, name = text.rpartition("::")
    path = Path(file_text).absolute() if separator else default_file
    if path is None or not path.is_file():
        shown = file_text if separator else "(none given)"
        raise ScenarioBuildError(
            f"--scenario {text}: no file {shown} to find it in; write FILE::NAME, e.g. "
            "--scenario tests/conftest.py::acme"
        )
    module = import_user_file(path, f"--scenario {text}")
    return scenarios_in([module]).resolve(name, module)
