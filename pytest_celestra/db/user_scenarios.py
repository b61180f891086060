"""Your own scenarios: data built once by your code, cached as a template, isolated per test
(the guide: docs/scenarios.md).

The builder runs once, in a transaction on a copy of its base's template; the plugin
commits and seals the result as a template keyed by the builder's source and what it reads
([`callable_fingerprint`][pytest_celestra.callables.callable_fingerprint]), its base, the
schema and rules, the seed and the package's code. Tests get clones of it. Factories inside
the builder draw from the scenario's seed, so the same key gives the same rows.
"""

from __future__ import annotations

import contextlib
import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from pytest_celestra.errors import CelestraError, ConfigError, did_you_mean
from pytest_celestra.schema.volumes import Volume

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from datetime import datetime

    from sqlalchemy.engine import URL, Connection
    from sqlalchemy.orm import Session

    from pytest_celestra.config import ScenarioSettings
    from pytest_celestra.db.database import DatabaseManager
    from pytest_celestra.schema.app_rules import SchemaRules

    Builder = Callable[[Session], object]


class ScenarioBuildError(CelestraError):
    """A scenario's builder misused its session, or a scenario cannot be found."""


@dataclass(frozen=True, eq=False)
class ScenarioBuilder:
    """A scenario of yours, as
    [`scenario_builder`][pytest_celestra.db.user_scenarios.scenario_builder] makes it.

    `base` is the volume it is built on (a [`Volume`][pytest_celestra.schema.volumes.Volume]),
    another scenario (its layers come first), or None (the empty schema). `version` is
    any text you change to force a rebuild when something the key cannot see changed
    (a file the builder reads).
    """

    build: Builder
    name: str
    base: Volume | ScenarioBuilder | None = None
    version: str | None = None

    def __call__(self, session: Session) -> object:
        return self.build(session)

    @property
    def layers(self) -> list[ScenarioBuilder]:
        """This scenario and those it is built on, bottom first."""
        below = self.base.layers if isinstance(self.base, ScenarioBuilder) else []
        return [*below, self]

    @property
    def volume(self) -> Volume | None:
        """The volume at the bottom of its layers, or None (the empty schema)."""
        base = self.layers[0].base
        return base if isinstance(base, Volume) else None

    @functools.cached_property
    def key(self) -> str:
        """Hash of the builder's code and what it reads, and of `version` (once per process)."""
        from pytest_celestra.callables import callable_fingerprint
        from pytest_celestra.db.cache_keys import digest

        return digest(self.name, callable_fingerprint(self.build), self.version)

    def describe(self) -> str:
        """`scenario 'acme' on volume small` and the like."""
        if isinstance(self.base, ScenarioBuilder):
            on = f"on scenario {self.base.name!r}"
        elif isinstance(self.base, Volume):
            on = f"on volume {self.base.name}"
        else:
            on = "on the empty schema"
        return f"scenario {self.name!r} {on}"


@overload
def scenario_builder(build: Builder, /) -> ScenarioBuilder: ...
@overload
def scenario_builder(
    *,
    name: str | None = None,
    base: Volume | ScenarioBuilder | str | None = None,
    version: str | None = None,
) -> Callable[[Builder], ScenarioBuilder]: ...
def scenario_builder(
    build: Builder | None = None,
    /,
    *,
    name: str | None = None,
    base: Volume | ScenarioBuilder | str | None = None,
    version: str | None = None,
) -> ScenarioBuilder | Callable[[Builder], ScenarioBuilder]:
    """Declare a scenario: a function that writes rows into the session it is given.

    Use it bare (`@scenario_builder`: on the empty schema, named after the function) or
    with arguments: `name`, `base` (a volume's text such as `"small"` or `"x10"`, a
    `Volume`, another scenario, or None for the empty schema) and `version` (change it
    to force a rebuild). Tests ask for it by name or object:
    `@pytest.mark.celestra(scenario="acme")`.

    The builder may use the factories (`create`, `create_batch`, `bulk_create`), the
    session (`add`, `execute`, `flush`) and SQL through `session.execute(text(...))`;
    it must not commit, roll back or close the session: the plugin commits what it
    wrote once it returns.
    """
    if isinstance(base, str):
        try:
            base = Volume.parse(base)
        except ConfigError as error:
            raise ScenarioBuildError(
                f"scenario_builder(base={base!r}): {error}. To build on a scenario of yours, "
                "pass the scenario itself, not its name (import it from the conftest.py or "
                "module that declares it)"
            ) from None
    if base is not None and not isinstance(base, Volume | ScenarioBuilder):
        raise ScenarioBuildError(
            f"scenario_builder(base={base!r}): use a volume ('small', 'x10', a Volume), "
            "another scenario made with @scenario_builder, or None for the empty schema"
        )

    def declare(function: Builder) -> ScenarioBuilder:
        if not callable(function):
            raise ScenarioBuildError(
                f"@scenario_builder decorates a function taking a session, not {function!r}"
            )
        chosen = name or getattr(function, "__name__", None)
        if not chosen:
            raise ScenarioBuildError(
                f"@scenario_builder: {function!r} has no __name__; give it one with name=..."
            )
        return ScenarioBuilder(function, chosen, base, version)

    return declare if build is None else declare(build)


@dataclass
class ScenarioRegistry:
    """The scenarios of a run's conftest files by name."""

    by_name: dict[str, list[tuple[ScenarioBuilder, str]]] = field(default_factory=dict)

    def add_module(self, module: object) -> None:
        """Remember every scenario a module defines at its top level (and those below it)."""
        where = str(getattr(module, "__file__", None) or getattr(module, "__name__", "?"))
        for value in list(vars(module).values()):
            if isinstance(value, ScenarioBuilder):
                for builder in value.layers:
                    found = self.by_name.setdefault(builder.name, [])
                    if all(known is not builder for known, _ in found):
                        found.append((builder, where))

    def resolve(self, wanted: object, module: object | None = None) -> ScenarioBuilder:
        """The scenario `wanted` names (or is), looked up in `module`, then in the conftests
        (of a name several conftests declare, the one nearest `module`'s file)."""
        if isinstance(wanted, ScenarioBuilder):
            return wanted
        if not isinstance(wanted, str):
            raise ScenarioBuildError(
                f"scenario={wanted!r}: give the name of a scenario declared with "
                "@scenario_builder, or the scenario itself"
            )
        for value in getattr(module, "__dict__", {}).values():  # the test's module first
            if isinstance(value, ScenarioBuilder) and value.name == wanted:
                return value
        found = self.by_name.get(wanted, [])
        if len(found) > 1 and (test := getattr(module, "__file__", None)):
            # As pytest's fixtures: the conftest nearest the test, among those above it.
            above = [(b, w) for b, w in found if Path(test).is_relative_to(Path(w).parent)]
            if above:
                found = [max(above, key=lambda pair: len(Path(pair[1]).parts))]
        if len(found) == 1:
            return found[0][0]
        if found:
            places = ", ".join(where for _, where in found)
            raise ScenarioBuildError(
                f"scenario={wanted!r}: several scenarios have that name ({places}); "
                "rename one (@scenario_builder(name=...)) or pass the scenario object"
            )
        values = getattr(module, "__dict__", {}).values()
        here = [value.name for value in values if isinstance(value, ScenarioBuilder)]
        known = sorted({*self.by_name, *here})
        raise ScenarioBuildError(
            f"scenario={wanted!r}: no scenario of that name in the test's module or in a "
            "conftest.py (another test module's is not seen)."
            f"{did_you_mean(wanted, known)} Declare one with @scenario_builder"
            + (f" (known: {', '.join(known)})" if known else "")
        )


def _refusal(scenario: str, what: str, done: str) -> ScenarioBuildError:
    return ScenarioBuildError(
        f"the builder of scenario {scenario!r} {done} its session: a scenario's rows are "
        "committed by the plugin once the builder returns (and rolled back if it raises). "
        f"Remove the session.{what}() call; use session.flush() to send rows to the "
        "database, session.begin_nested() for a savepoint."
    )


def _builder_session(bind: Any, scenario: str) -> Session:
    from sqlalchemy.orm import Session

    class ScenarioSession(Session):
        """A session whose transaction belongs to the plugin."""

        def commit(self) -> None:
            raise _refusal(scenario, "commit", "committed")

        def rollback(self) -> None:
            raise _refusal(scenario, "rollback", "rolled back")

        def close(self) -> None:
            raise _refusal(scenario, "close", "closed")

    return ScenarioSession(bind=bind, join_transaction_mode="create_savepoint")


@dataclass(frozen=True)
class BuilderLayer:
    """A [`TemplateLayer`][pytest_celestra.db.database.TemplateLayer]: runs one scenario's
    builder in a transaction on a copy of the template below it, and commits."""

    builder: ScenarioBuilder
    rules: SchemaRules | None = field(default=None, compare=False)  # the factories follow them

    @property
    def key(self) -> str:
        return self.builder.key

    @property
    def label(self) -> str:
        return self.builder.describe()

    def __call__(
        self, url: URL, *, seed: int, anchor: datetime, progress: Callable[[str], None]
    ) -> Sequence[str]:
        from sqlalchemy import create_engine, event
        from sqlalchemy.pool import NullPool

        engine = create_engine(url, poolclass=NullPool)
        started = time.perf_counter()
        done = {"statements": 0, "rows": 0}

        def count(statements: int = 0, rows: int = 0) -> None:
            done["statements"] += statements
            done["rows"] += rows
            copied = f", {done['rows']:,} rows by bulk_create" if done["rows"] else ""
            seconds = time.perf_counter() - started
            progress(f"{done['statements']:,} statements{copied}, {seconds:.0f} s")

        try:
            with engine.connect() as connection:
                event.listen(connection, "after_cursor_execute", lambda *_: count(statements=1))
                transaction = connection.begin()
                self.write(connection, seed=seed, rows_written=lambda rows: count(rows=rows))
                transaction.commit()
        finally:
            engine.dispose()
        return []

    def write(
        self,
        connection: Connection,
        *,
        seed: int,
        rows_written: Callable[[int], None] | None = None,
    ) -> None:
        """Run the builder in `connection`'s transaction (begun), which it must leave
        open; commits nothing. `rows_written` hears the rows each COPY of a `bulk_create`
        wrote. Raises ScenarioBuildError if the builder ended it."""
        import psycopg
        from sqlalchemy.exc import OperationalError
        from sqlalchemy.orm import Session

        from pytest_celestra.plugin.fixtures import IsolationGuard, reseed_factories
        from pytest_celestra.rows.factories import bound_session

        name = self.builder.name
        guard = IsolationGuard(connection)
        guard.start()
        session = _builder_session(connection, name)
        if rows_written is not None:
            from pytest_celestra.rows.batches import ROWS_WRITTEN

            session.info[ROWS_WRITTEN] = rows_written
        # Same rows for the same key, whatever ran before in this process.
        reseed_factories(seed, f"scenario {name}", "build")
        try:
            with bound_session(session, self.rules):
                self.builder(session)
            ended_by = guard.ended()
            if ended_by is None:
                Session.commit(session)  # releases its savepoint: ends no transaction
        except (OperationalError, psycopg.OperationalError) as error:
            # Not "the server is lost" (how the manager reads these): the builder's.
            raise ScenarioBuildError(f"the builder of scenario {name!r} failed: {error}") from error
        finally:
            # After a COMMIT of the builder's, its savepoint is gone: the rollback that
            # closing tries fails, and the connection is thrown away anyway.
            with contextlib.suppress(Exception):
                Session.close(session)
        if ended_by is not None:
            raise ScenarioBuildError(
                f"the builder of scenario {name!r} ended the transaction it runs in "
                f"({ended_by.strip()[:200]}): nothing it wrote is kept. Do not run COMMIT "
                "or ROLLBACK: the plugin commits once the builder returns."
            )


def layers_of(builder: ScenarioBuilder, rules: SchemaRules | None = None) -> list[BuilderLayer]:
    """The template layers of `builder`, bottom first, their factories following `rules`."""
    return [BuilderLayer(layer, rules) for layer in builder.layers]


def clone_scenario(
    manager: DatabaseManager,
    scenario: ScenarioSettings,
    anchor: datetime,
    *,
    name: str | None = None,
    label: str = "seeded",
    strategy: str | None = None,
) -> URL:
    """A new database holding `scenario`: the volume's, or that of its builder."""
    builder = scenario.builder
    if builder is None:
        return manager.create_seeded(
            scenario.volume, scenario.seed, anchor, name=name, label=label, strategy=strategy
        )
    return manager.create_layered(
        builder.volume,
        layers_of(builder, manager.seeder.rules),
        scenario.seed,
        anchor,
        name=name,
        label=label,
        strategy=strategy,
    )


class ScenarioTemplates:
    """The templates of your scenarios this process needs, each built (or found) once by
    the first test that needs it; a builder that failed is not run again: the later
    tests get an error naming the first."""

    def __init__(self, manager: DatabaseManager, anchor: datetime) -> None:
        self.manager = manager
        self.anchor = anchor
        self.ready: dict[ScenarioSettings, str] = {}
        self.failed: dict[ScenarioSettings, str] = {}

    def ensure(self, scenario: ScenarioSettings, nodeid: str) -> None:
        """Make sure the template of `scenario` exists (nothing to do without a builder)."""
        builder = scenario.builder
        if builder is None or scenario in self.ready:
            return
        if scenario in self.failed:
            raise ScenarioBuildError(
                f"{builder.describe()} could not be built: {self.failed[scenario]}. "
                "Fix the builder; the traceback is that test's error."
            )
        try:
            self.ready[scenario] = self.manager.prepare_layered(
                builder.volume,
                layers_of(builder, self.manager.seeder.rules),
                scenario.seed,
                self.anchor,
            )
        except Exception as error:
            self.failed[scenario] = f"{type(error).__name__} in {nodeid}"
            raise


def scenarios_in(modules: Iterable[object]) -> ScenarioRegistry:
    """A registry of the scenarios `modules` define."""
    registry = ScenarioRegistry()
    for module in modules:
        registry.add_module(module)
    return registry
