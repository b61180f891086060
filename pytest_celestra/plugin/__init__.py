"""pytest11 entry point of pytest-celestra: options, ini keys, hooks, header and fixtures.

Nothing here touches a database, and loading it is cheap: the fixtures import SQLAlchemy,
Faker and the generator when a test first asks for one (`tests/test_import_cost.py`).
"""

from __future__ import annotations

import functools
import os
import types
import uuid
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import pytest

from pytest_celestra.config import SETTINGS, SPECS, SettingSpec, resolve_config
from pytest_celestra.db.server import describe_server
from pytest_celestra.errors import ConfigError
from pytest_celestra.plugin import fixtures, transactional
from pytest_celestra.plugin.fixtures import SESSION_FIXTURES, reseed_factories
from pytest_celestra.plugin.run_info import (
    CONFIG_KEY,
    MARKER,
    MARKER_HELP,
    RUN_KEY,
    SCENARIO_KEY,
    RunInfo,
    scenario_from_marks,
    scenario_of,
)
from pytest_celestra.urls import MASK, mask_url

if TYPE_CHECKING:
    from collections.abc import Generator

    from sqlalchemy.engine import Connection

    from pytest_celestra.db.user_scenarios import ScenarioBuilder
    from pytest_celestra.schema.app_rules import SchemaRules


class CelestraHookspecs:
    """Hooks a project implements in its `conftest.py` to set up and describe its schema."""

    def pytest_celestra_schema_rules(self, rules: SchemaRules, config: pytest.Config) -> None:
        """Teach the plugin the columns, enum labels and tables your migrations added.

        Called once per test process, before the first database is made; every
        implementation adds to the same
        [`SchemaRules`][pytest_celestra.schema.app_rules.SchemaRules]:

        ```python
        def pytest_celestra_schema_rules(rules):
            rules.column("users", "locale", values={"en-US": 3, "de-DE": 1})
        ```
        """

    @pytest.hookspec(firstresult=True)
    def pytest_celestra_create_schema(
        self, connection: Connection, config: pytest.Config
    ) -> object | None:
        """Create the schema in a new, empty database instead of the built-in `create_all`.

        `connection` is a SQLAlchemy `Connection` in a transaction that is committed
        afterwards. Return anything but None once the schema is there; None falls back to
        the built-in schema. The result becomes a template database, found again by a hash
        of its catalog (or by
        [`pytest_celestra_schema_version`][pytest_celestra.plugin.CelestraHookspecs.pytest_celestra_schema_version]):

        ```python
        def pytest_celestra_create_schema(connection, config):
            alembic_config = alembic.config.Config("alembic.ini")
            alembic_config.attributes["connection"] = connection
            alembic.command.upgrade(alembic_config, "head")
            return True
        ```
        """

    @pytest.hookspec(firstresult=True)
    def pytest_celestra_schema_version(self, config: pytest.Config) -> str | None:
        """A string that changes whenever your schema does, e.g. the Alembic head revision.

        With it, a cached template of that version is used without running
        `pytest_celestra_create_schema` at all; without it, the set-up runs once per
        test process in a scratch database whose catalog is then hashed. The template's key
        also holds your project's root directory (`config.rootpath`), so two projects on one
        server whose migrations share a revision id (`0002`) never share a schema; a revision
        edited in place keeps its id, so a hash of your migration files is the safer version.
        """


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(CelestraHookspecs)
    from pytest_celestra.plugin.row_reports import RowErrorReports

    pluginmanager.register(RowErrorReports(), "celestra-row-reports")


def _ini_type(spec: SettingSpec) -> Any:
    """pytest 9.2+ reads a native TOML table ([tool.pytest]) with its types: a flag may be
    `true`, a seed or a size `42` there, as well as text (the resolver reads its text); an
    INI file's values stay text. None (text) before pytest 9.2."""
    if pytest.version_tuple < (9, 2):
        return None
    if spec.is_flag:
        return str | bool
    return str | int if spec.name in ("seed", "template_max_size") else str


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("celestra", "pytest-celestra (Celestra test databases)")
    for spec in SETTINGS:
        kind: dict[str, Any] = (
            {"action": "store_true"}
            if spec.is_flag
            else {"type": spec.argparse_type, "metavar": spec.metavar}
        )
        group.addoption(spec.option, default=None, dest=spec.ini, help=spec.help, **kind)
        parser.addini(
            spec.ini, f"{spec.help} Environment: {spec.env}.", _ini_type(spec), default=None
        )
    # A mode, like --collect-only, so no ini key or environment variable: either would
    # turn every run into a lint run.
    group.addoption(
        "--celestra-lint",
        action="store_true",
        default=False,
        dest="celestra_lint",
        help="Instead of running the tests, create every factory and every trait "
        "(the built-in ones and CelestraFactory subclasses your conftest and test modules "
        "define) in a rolled-back transaction on the empty schema; print OK/FAIL for "
        "each, naming the constraint a failure breaks; exit 1 if any fails.",
    )


def pytest_configure(config: pytest.Config) -> None:
    try:
        celestra = resolve_config(
            {spec.name: config.getoption(spec.ini) for spec in SETTINGS},
            {spec.name: config.getini(spec.ini) for spec in SETTINGS},
            os.environ,
            None if config.inipath is None else config.inipath.parent,
        )
    except ConfigError as error:
        raise pytest.UsageError(f"pytest-celestra: {error}") from None
    config.stash[CONFIG_KEY] = celestra
    config.addinivalue_line("markers", MARKER_HELP)
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is not None:
        run = RunInfo(
            workerinput["testrunuid"],
            workerinput["workerid"],
            date.fromisoformat(workerinput["celestra_day"]),
        )
    else:
        day = celestra.anchor_day.value or datetime.now(UTC).date()
        run = RunInfo(uuid.uuid4().hex, "main", day)
    config.stash[RUN_KEY] = run
    config.pluginmanager.register(fixtures, "celestra_fixtures")
    config.pluginmanager.register(transactional, "celestra_transactional")
    async_problem = fixtures.async_support_problem(config)
    if async_problem is None:
        from pytest_celestra.plugin import async_fixtures

        config.pluginmanager.register(async_fixtures, "celestra_async_fixtures")
    else:
        config.pluginmanager.register(
            fixtures.AsyncFixturesUnavailable(async_problem), "celestra_async_fixtures"
        )
    if config.getoption("celestra_lint"):
        from pytest_celestra.plugin.lint import LintMode

        config.pluginmanager.register(LintMode(config), "celestra_lint")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist: a worker's run has the day of the main process's."""
    node.workerinput["celestra_day"] = node.config.stash[RUN_KEY].day.isoformat()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """pytest-xdist: what a worker kept, noted and built joins the main process's summary."""
    run, output = node.config.stash[RUN_KEY], getattr(node, "workeroutput", {})
    run.kept.extend(output.get("celestra_kept", []))
    run.notes.extend(output.get("celestra_notes", []))
    name = getattr(getattr(node, "gateway", None), "id", "a worker")
    run.builds.extend(f"{line} [{name}]" for line in output.get("celestra_builds", []))


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, Any]:
    """Check the `@pytest.mark.celestra` markers of the tests a collector made: a bad one
    fails the collector, naming the allowed values; a good one gives the test its scenario."""
    report: pytest.CollectReport = yield
    if not report.passed:
        return report
    run_scenario = collector.config.stash[CONFIG_KEY].scenario
    problems = []
    for item in report.result:
        marks = list(item.iter_markers(MARKER)) if isinstance(item, pytest.Item) else []
        if marks:
            try:
                item.stash[SCENARIO_KEY] = scenario_from_marks(
                    marks, run_scenario, functools.partial(_find_scenario, item)
                )
            except ConfigError as error:
                problems.append(f"pytest-celestra: {item.nodeid}: {error}")
    if problems:
        return pytest.CollectReport(report.nodeid, "failed", "\n".join(problems), [])
    return report


def _find_scenario(item: Any, wanted: object) -> ScenarioBuilder:
    """The scenario `wanted` names, from `item`'s module, else the run's conftest files."""
    from pytest_celestra.db.user_scenarios import scenarios_in

    conftests = [
        plugin
        for plugin in item.config.pluginmanager.get_plugins()
        if isinstance(plugin, types.ModuleType)
        and (getattr(plugin, "__file__", None) or "").endswith("conftest.py")
    ]
    return scenarios_in(conftests).resolve(wanted, getattr(item, "module", None))


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> None:
    # Here, not in pytest_runtest_call: this runs after pytest-randomly reseeds there.
    if not SESSION_FIXTURES.isdisjoint(pyfuncitem.fixturenames):
        reseed_factories(scenario_of(pyfuncitem).seed, pyfuncitem.nodeid, "call")


def pytest_report_header(config: pytest.Config) -> str:
    celestra = config.stash[CONFIG_KEY]
    return f"celestra: {celestra.describe()} server={describe_server(celestra)}"


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput: dict[str, Any] | None = getattr(session.config, "workeroutput", None)
    run = session.config.stash[RUN_KEY]
    if workeroutput is not None:
        for name in ("kept", "notes", "builds"):
            workeroutput[f"celestra_{name}"] = list(getattr(run, name))


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    run = config.stash[RUN_KEY]
    if run.builds:
        terminalreporter.write_sep("-", "celestra: templates built by this run")
        for line in run.builds:
            terminalreporter.write_line(line)
    for note in dict.fromkeys(run.notes):  # once, whichever worker saw it
        terminalreporter.write_line(f"celestra: {note}")
    if run.kept:
        terminalreporter.write_sep("-", "celestra: kept test databases (--celestra-keep)")
        for url in run.kept:
            terminalreporter.write_line(mask_url(url))
        if any(MASK in mask_url(url) for url in run.kept):
            terminalreporter.write_line(
                f"{MASK} stands for the password of your DSN ({SPECS['dsn'].channels})."
            )
        terminalreporter.write_line(
            "Drop them with DROP DATABASE when done; the plugin does not drop kept databases."
        )
