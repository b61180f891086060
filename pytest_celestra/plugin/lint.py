"""`pytest --celestra-lint`: create every factory and every trait against the real schema.

Each case (a factory alone, or with one trait: `UserFactory(super_admin=True)`) runs
`create()` in a rolled-back savepoint on a fresh copy of the empty schema (that of
`celestra_session`, with your schema hook if you have one); a broken constraint is named.

Which factories: every concrete subclass of
[`CelestraFactory`][pytest_celestra.rows.factories.CelestraFactory] once pytest has collected
the tests: the 15 built-in ones and those your `conftest.py` files, test modules and what
they import define at module level (not `class Meta: abstract = True`); then the factory of
each table of yours that your schema rules describe (`factory_for(table)`).
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from pytest_celestra.db.drift import SchemaDriftError
from pytest_celestra.errors import ServerError
from pytest_celestra.plugin.fixtures import concrete_factories
from pytest_celestra.rows.factories import ALL_FACTORIES, CelestraFactory, bound_session, traits_of
from pytest_celestra.urls import error_text

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterator

    from sqlalchemy.engine import Connection

    from pytest_celestra.schema.app_rules import SchemaRules


@dataclass(frozen=True)
class LintCase:
    """One `create()` call: a factory, alone or with one trait."""

    factory: type[Any]
    trait: str | None = None
    table: str | None = None
    """The table of yours whose factory this is (`factory_for(table)`), if it is one."""

    @property
    def label(self) -> str:
        """`UserFactory`, `UserFactory(super_admin=True)`; `module.Name` if not built in;
        `factory_for('user_preferences')` for a table of yours."""
        if self.table is not None:
            return f"factory_for({self.table!r})"
        cls = self.factory
        name = cls.__qualname__
        if cls.__module__ != "pytest_celestra.rows.factories":
            name = f"{cls.__module__}.{name}"
        return name if self.trait is None else f"{name}({self.trait}=True)"


def _still_loaded(cls: type, earlier: Collection[type]) -> bool:
    """Is `cls` what its module, as loaded now, names? A class of a module unloaded or
    imported afresh since (a run before this one in the same process: pytester's
    in-process runs, an IDE) lives on in `__subclasses__` until collected. A class made
    inside a function cannot be looked up: it counts unless it is one of `earlier`."""
    if "<locals>" in cls.__qualname__:
        return cls not in earlier
    found: object = sys.modules.get(cls.__module__)
    for name in cls.__qualname__.split("."):
        found = getattr(found, name, None)
    return found is cls


def factories_to_lint(earlier: Collection[type] = ()) -> list[type[CelestraFactory]]:
    """The built-in factories in FK order, then every other concrete subclass of a module
    loaded now, by name; of the classes made inside a function, those not in `earlier`
    (the factories alive before this run began: an earlier test's, in the same process)."""
    others = {
        subclass
        for subclass in concrete_factories()
        if subclass not in ALL_FACTORIES and _still_loaded(subclass, earlier)
    }
    return [*ALL_FACTORIES, *sorted(others, key=lambda cls: (cls.__module__, cls.__qualname__))]


def lint_cases(factories: list[type[CelestraFactory]]) -> list[LintCase]:
    """Each factory alone, then with each of its traits."""
    return [
        case
        for factory_class in factories
        for case in (
            LintCase(factory_class),
            *(LintCase(factory_class, trait) for trait in traits_of(factory_class)),
        )
    ]


def _problem(error: Exception) -> str:
    """A one-line description of `error`, naming the constraint it broke."""
    original = error.orig if isinstance(error, DBAPIError) and error.orig else error
    kind = type(original).__name__  # CheckViolation, UniqueViolation, ...
    if isinstance(original, psycopg.Error) and original.diag.constraint_name:
        diag = original.diag
        # The server's detail line quotes the row's values ("Key (email)=(...)", "Failing
        # row contains (...)"): name the column instead, never a value.
        where = f", column {diag.column_name}" if diag.column_name else ""
        return f"violates {diag.constraint_name} ({kind} on {diag.table_name}{where})"
    if isinstance(original, psycopg.Error) and original.diag.message_primary:
        return f"{kind}: {' '.join(original.diag.message_primary.split())}"
    return f"{kind}: {error_text(original)}"


def run_lint(
    connection: Connection,
    cases: list[LintCase],
    reseed: Callable[[LintCase], None] = lambda case: None,
    rules: SchemaRules | None = None,
) -> Iterator[tuple[LintCase, str | None]]:
    """Create each case in a savepoint of `connection`'s transaction, which it rolls back
    (`reseed` before each); yield it with its problem, None if it made its rows."""
    transaction = connection.begin()
    try:
        # Deferrable constraints of a user's schema fire per statement, not at a commit.
        connection.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))
        for case in cases:
            session = Session(bind=connection, join_transaction_mode="create_savepoint")
            try:
                reseed(case)
                with bound_session(session, rules):
                    kwargs: dict[str, Any] = {} if case.trait is None else {case.trait: True}
                    case.factory.create(**kwargs)
                    session.flush()
            except Exception as error:
                yield case, _problem(error)
            else:
                yield case, None
            finally:
                session.close()  # rolls back the case's savepoint
    finally:
        transaction.rollback()


class LintMode:
    """Registered for `pytest --celestra-lint`: tests are collected (so your factories
    exist), not run; exit status 0 when every case passes, else 1."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.failed: int | None = None  # None until the lint has run
        self.earlier = frozenset(concrete_factories())  # before collection: not this run's

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if self.config.pluginmanager.hasplugin("dsession"):
            raise pytest.UsageError(
                "--celestra-lint runs in one process: drop -n/--dist (or pass -n 0 or -p no:xdist)."
            )

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool | None:
        if session.testsfailed and not self.config.option.continue_on_collection_errors:
            return None  # pytest's own loop reports the collection errors and stops
        self.failed = self.lint()
        return True

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.failed is not None:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED if self.failed else 0

    def write(self, line: str, **markup: bool) -> None:
        if self.reporter is not None:
            self.reporter.write_line(line, **markup)

    @property
    def reporter(self) -> Any:
        return self.config.pluginmanager.get_plugin("terminalreporter")

    def lint(self) -> int:
        """Lint every case, print one line each and a summary; the number that failed."""
        from pytest_celestra.plugin.fixtures import empty_database, open_databases, reseed_factories
        from pytest_celestra.plugin.run_info import CONFIG_KEY, RUN_KEY

        factories = factories_to_lint(self.earlier)
        cases = lint_cases(factories)
        seed = self.config.stash[CONFIG_KEY].seed.value
        run = self.config.stash[RUN_KEY]
        failed = 0
        try:
            with (
                tempfile.TemporaryDirectory(prefix="celestra-lint-") as workdir,
                open_databases(self.config, Path(workdir)) as manager,
                # The database and connection celestra_session's tests get.
                contextlib.closing(empty_database(manager, run)) as database,
            ):
                # Your hooks ran as the server was opened: your tables' factories after ours.
                rules = run.rules
                assert rules is not None  # set as the server was opened
                tables = [LintCase(rules.factory(t), table=t) for t in rules.added_tables()]
                factories += [case.factory for case in tables]
                cases += tables
                if self.reporter is not None:
                    self.reporter.write_sep("=", f"celestra lint: {len(cases)} cases")
                connection, _ = database.connection()
                for case, problem in run_lint(
                    connection,
                    cases,
                    lambda case: reseed_factories(seed, "celestra-lint", case.label),
                    run.rules,
                ):
                    ok = problem is None
                    failed += not ok
                    line = f"OK   {case.label}" if ok else f"FAIL {case.label}: {problem}"
                    self.write(line, green=ok, red=not ok)
        except (ServerError, SchemaDriftError) as error:
            self.write(f"pytest-celestra: {error}", red=True)
            return max(failed, 1)
        traits = len(cases) - len(factories)
        summary = (
            f"celestra lint: {len(factories)} factories, {traits} traits: "
            f"{len(cases) - failed} OK, {failed} FAIL"
        )
        self.write(summary, green=not failed, red=bool(failed), bold=True)
        return failed
