"""The documentation is tested: every Python example runs, and every table that mirrors the
code (settings, fixtures, factories and traits, volumes, benchmark figures) must match it.

Every fenced ```` ```python ```` block of ``docs/*.md`` and ``README.md`` runs, in one of
three ways decided by what it defines at top level:

* ``test_*`` functions: it is a test file. The blocks of a page run together in one pytest
  subprocess (pytester, plugin loaded through its entry point, this suite's server,
  ``--celestra-volume=small``); every test function of every block must pass, and nothing
  may fail, error or be skipped.
* ``pytest_*`` hooks: it is a ``conftest.py``. It runs with :data:`CONFTEST_CHECK` as the
  test file, next to a ``schema.sql`` holding the Celestra schema's DDL (what a hook
  example that reads ``schema.sql`` expects), with ``--celestra-rebuild``.
* anything else: it is executed as a script, in a fresh namespace, its output captured.
  **Substitution:** the demo database URL :data:`DEMO_URL` (and its ``postgresql://``
  form) is replaced with the URL of a scratch database created on this suite's server for
  that block and dropped after it; no other server address may appear in a script.

``<!-- docs-test: skip: REASON -->`` on the line before a block skips it; the reason is
required, and meant for examples that need what a test machine cannot have
(pytest-factoryboy). ``<!-- docs-test: file: PATH -->`` before a block (of any language)
says it shows the file ``PATH`` of this repository, which it must equal; the tests that
run that file run the example. A conftest example runs in a folder of its own, with
pytest started from the folder above it; one that mentions Alembic runs next to the
Alembic project ``tests/alembic_app``: all its migrations when the example has schema
rules, else the first (Celestra's schema).
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import io
import re
import secrets
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from pytest_celestra.config import SETTINGS
from pytest_celestra.rows.factories import ALL_FACTORIES, traits_of
from pytest_celestra.rows.sqlscript import schema_statements
from pytest_celestra.schema.volumes import VOLUME_NAMES, Volume
from pytest_celestra.urls import libpq_url

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
#: An Alembic project (its first migration creates Celestra's schema) for the examples.
ALEMBIC_PROJECT = ROOT / "tests" / "alembic_app"

#: The database URL examples use; a script using it gets a scratch database instead.
DEMO_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/celestra_demo"
DEMO_LIBPQ_URL = "postgresql://postgres@127.0.0.1:5432/celestra_demo"

#: The test file a conftest example runs with: the hook must leave a usable schema.
CONFTEST_CHECK = """
from sqlalchemy import func, select
from pytest_celestra.schema.models import User


def test_a_schema_hook_is_registered(request):
    hooks = request.config.hook
    assert hooks.pytest_celestra_create_schema.get_hookimpls()


def test_the_empty_database_has_the_schema(celestra_session):
    assert celestra_session.scalar(select(func.count()).select_from(User)) == 0


def test_the_scenario_loads_into_it(celestra_seeded_db):
    assert celestra_seeded_db.scalar(select(func.count()).select_from(User)) > 0
"""

FENCE = re.compile(
    r"^(?P<indent>[ ]*)```python[^\n]*\n(?P<body>.*?)^(?P=indent)```[ ]*$",
    re.MULTILINE | re.DOTALL,
)
SKIP = re.compile(r"<!--\s*docs-test:\s*skip:\s*(?P<reason>\S.*?)\s*-->")
SHOWN_FILE = re.compile(r"<!--\s*docs-test:\s*file:\s*(?P<path>\S+)\s*-->")
#: Before a test block: it runs with the page's conftest example above it, not alone.
WITH_CONFTEST = re.compile(r"<!--\s*docs-test:\s*with the conftest above\s*-->")
#: A block of any language after a ``docs-test: file`` marker.
FILE_BLOCK = re.compile(
    r"^<!--\s*docs-test:\s*file:\s*(?P<path>\S+)\s*-->\n```[^\n]*\n(?P<body>.*?)^```[ ]*$",
    re.MULTILINE | re.DOTALL,
)


@dataclass(frozen=True)
class Example:
    page: Path
    line: int
    source: str
    skip: str | None
    with_conftest: bool = False

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def module_name(self) -> str:
        stem = re.sub(r"\W", "_", self.page.stem.lower())
        return f"test_{stem}_line{self.line}"

    def top_level_functions(self) -> list[str]:
        tree = ast.parse(self.source, self.name)
        return [
            node.name
            for node in tree.body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        ]

    @property
    def tests(self) -> list[str]:
        return [name for name in self.top_level_functions() if name.startswith("test_")]

    @property
    def hooks(self) -> list[str]:
        return [name for name in self.top_level_functions() if name.startswith("pytest_")]

    @property
    def kind(self) -> str:
        if self.tests and self.hooks:
            raise AssertionError(f"{self.name}: an example is a test file or a conftest, not both")
        return "tests" if self.tests else "conftest" if self.hooks else "script"


def examples_of(page: Path) -> list[Example]:
    text = page.read_text()
    found = []
    for match in FENCE.finditer(text):
        indent = len(match["indent"])
        source = "\n".join(line[indent:] for line in match["body"].splitlines()) + "\n"
        before = text[: match.start()].rstrip().rsplit("\n", 1)[-1]
        if SHOWN_FILE.search(before):
            continue  # a file of the repository: see test_shown_files_are_the_files
        skip, with_conftest = SKIP.search(before), bool(WITH_CONFTEST.search(before))
        if "docs-test" in before and skip is None and not with_conftest:
            raise AssertionError(
                f"{page}: a docs-test marker needs the form 'skip: REASON', 'file: PATH' or "
                "'with the conftest above'"
            )
        line = text.count("\n", 0, match.start()) + 1
        found.append(Example(page, line, source, skip["reason"] if skip else None, with_conftest))
    return found


EXAMPLES = [example for page in PAGES for example in examples_of(page)]


def examples(kind: str) -> list[Any]:
    return [
        pytest.param(
            example,
            id=example.name,
            marks=[pytest.mark.skip(reason=example.skip)] if example.skip else [],
        )
        for example in EXAMPLES
        if example.kind == kind
    ]


def test_the_docs_have_examples_of_every_kind():
    kinds = {example.kind for example in EXAMPLES if example.skip is None}
    assert kinds == {"tests", "conftest", "script"}
    skipped = [example.name for example in EXAMPLES if example.skip]
    assert len(skipped) <= 3, f"keep skips rare: {skipped}"


# --- test files: one pytest run per page ---------------------------------------------------


def companions(conftest: Example) -> list[Example]:
    """The test blocks that run with `conftest` (marked 'with the conftest above')."""
    found = []
    for example in EXAMPLES:
        if example.page != conftest.page or not example.with_conftest:
            continue
        above = [
            e
            for e in EXAMPLES
            if e.page == example.page and e.kind == "conftest" and e.line < example.line
        ]
        if above and max(above, key=lambda e: e.line) == conftest:
            found.append(example)
    return found


def pages_with_tests() -> list[Any]:
    pages = sorted({e.page for e in EXAMPLES if e.kind == "tests" and not e.with_conftest})
    return [pytest.param(page, id=str(page.relative_to(ROOT))) for page in pages]


@pytest.mark.parametrize("page", pages_with_tests())
@pytest.mark.slow
def test_test_examples_pass(page, celestra_pytester, run_inner):
    blocks = [
        e
        for e in EXAMPLES
        if e.page == page and e.kind == "tests" and not e.skip and not e.with_conftest
    ]
    if not blocks:
        pytest.skip(f"every test example of {page.name} is skipped")
    celestra_pytester.makepyfile(**{block.module_name: block.source for block in blocks})
    result = run_inner("-p", "celestra", "--celestra-volume=small", "-v")
    passed = re.findall(r"^(\w+)\.py::(\w+)(?:\[.*\])? PASSED", result.stdout.str(), re.MULTILINE)
    # Every test function of every block passed (a parametrized one at least once) ...
    expected = {(block.module_name, test) for block in blocks for test in block.tests}
    assert set(passed) == expected
    # ... and nothing failed, errored or was skipped.
    result.assert_outcomes(passed=len(passed))


# --- conftest examples -----------------------------------------------------------------------


def schema_sql() -> str:
    before, after = schema_statements()
    return "".join(f"{statement};\n\n" for statement in before + after)


@pytest.mark.parametrize("example", examples("conftest"))
@pytest.mark.slow
def test_conftest_examples_work(example, celestra_pytester, run_inner, run_inner_process):
    # The project in a folder of its own, pytest started from the one above: files the
    # hooks read are found from pytest's root (config.rootpath), not the current directory.
    project = celestra_pytester.mkdir("myapp")
    (project / "conftest.py").write_text(example.source)
    (project / "test_check.py").write_text(CONFTEST_CHECK)
    for block in companions(example):  # the test blocks that run with it
        (project / f"{block.module_name}.py").write_text(block.source)
    (project / "pyproject.toml").write_text("[tool.pytest.ini_options]\n")
    (project / "schema.sql").write_text(schema_sql())
    if "alembic" in example.source:  # the Alembic project of test_drift_alembic:
        # all its migrations for an example that has the rules they need, else the first.
        later = () if "pytest_celestra_schema_rules" in example.source else ("000[234]_*",)
        shutil.copytree(
            ALEMBIC_PROJECT, project, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*later)
        )
    # Rebuilt: an example's schema version stays the same while the models change, and a
    # template cached under it by an earlier run would hold yesterday's schema.
    # An Alembic project in a child process: its env.py configures the logging of the
    # process it runs in. (A conftest with schema rules goes to one by itself, see run_inner.)
    run = run_inner_process if "alembic" in example.source else run_inner
    result = run("-p", "celestra", "--celestra-volume=small", "--celestra-rebuild", "myapp")
    result.assert_outcomes(passed=3 + sum(len(block.tests) for block in companions(example)))


def shown_files() -> list[Any]:
    found = []
    for page in PAGES:
        text = page.read_text()
        for match in FILE_BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 2
            found.append(
                pytest.param(match["path"], match["body"], id=f"{page.relative_to(ROOT)}:{line}")
            )
    return found


@pytest.mark.parametrize(("path", "shown"), shown_files())
def test_shown_files_are_the_files(path, shown):
    """A block marked ``docs-test: file: PATH`` is that file, which the tests run."""
    assert shown == (ROOT / path).read_text()


def test_every_file_marker_is_read():
    markers = sum(len(SHOWN_FILE.findall(page.read_text())) for page in PAGES)
    assert markers == len(shown_files()) > 0


# --- scripts -----------------------------------------------------------------------------------


@pytest.fixture
def scratch_database(admin: psycopg.Connection, admin_dsn: str) -> Iterator[str]:
    """SQLAlchemy URL of a new, empty database on this suite's server; dropped after."""
    name = f"celestra_docs_{secrets.token_hex(4)}"
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = make_url(admin_dsn).set(drivername="postgresql+psycopg", database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.mark.parametrize("example", examples("script"))
def test_script_examples_run(example, request):
    source = example.source
    elsewhere = source.replace(DEMO_URL, "").replace(DEMO_LIBPQ_URL, "")
    assert "127.0.0.1" not in elsewhere, f"{example.name}: use {DEMO_URL} for a database"
    if elsewhere != source:
        url = request.getfixturevalue("scratch_database")
        source = source.replace(DEMO_URL, url)
        source = source.replace(DEMO_LIBPQ_URL, libpq_url(make_url(url)))
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile(source, example.name, "exec"), {"__name__": "__docs__"})


# --- tables that mirror the code ---------------------------------------------------------------


def table_after(text: str, heading: str) -> list[list[str]]:
    """The cells of the first Markdown table after ``heading``, header row included."""
    section = text[text.index(heading) :]
    lines = section.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not all(set(cell) <= set("-: ") for cell in cells):
            rows.append(cells)
    return rows


def code_spans(text: str) -> list[str]:
    """The contents of the inline code spans of ``text`` (fenced blocks left out)."""
    return re.findall(r"(?<!`)`([^`\n]+)`(?!`)", FENCE.sub("", text))


@pytest.mark.parametrize(
    "page", [README, DOCS / "getting-started.md"], ids=["README.md", "docs/getting-started.md"]
)
def test_settings_tables_list_exactly_the_settings(page):
    header, *rows = table_after(page.read_text(), "## Settings")
    assert header[:3] == ["option", "ini key", "environment"]
    listed = [tuple(code_spans(" ".join(row[:3]))) for row in rows]
    expected = [(spec.option, spec.ini, spec.env) for spec in SETTINGS]
    assert sorted(listed) == sorted(expected)


def test_every_fixture_of_the_plugin_is_documented(pytester):
    result = pytester.runpytest_inprocess(
        "-p", "celestra", "-o", "asyncio_default_fixture_loop_scope=function", "--fixtures"
    )
    registered = set(re.findall(r"^(celestra_\w+)\b", result.stdout.str(), re.MULTILINE))
    assert {"celestra_session", "celestra_seeded_db", "celestra_user"} <= registered
    documented = set(code_spans((DOCS / "fixtures.md").read_text()))
    assert sorted(registered - documented) == []


def test_factories_page_lists_every_factory_and_its_traits():
    header, *rows = table_after((DOCS / "factories.md").read_text(), "## Every factory")
    assert header[:3] == ["factory", "table", "traits"]
    listed = {code_spans(row[0])[0]: (row[1], code_spans(row[2])) for row in rows}
    expected = {
        factory.__name__: (factory._meta.model.__tablename__, list(traits_of(factory)))
        for factory in ALL_FACTORIES
    }
    assert listed == expected


def _requirement_names(extras: list[str], optional: dict[str, list[str]]) -> set[str]:
    """The distributions the extras of pytest-celestra install (theirs, not theirs')."""
    names: set[str] = set()
    for extra in extras:
        for requirement in optional[extra]:
            name = re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower()
            if name == "pytest-celestra":
                inner = requirement.split("[", 1)[1].split("]", 1)[0].split(",")
                names |= _requirement_names(inner, optional)
            else:
                names.add(name)
    return names


def test_the_readmes_first_command_runs_every_example():
    """No example is skipped for a package the README's first command leaves out."""
    command = re.search(
        r"pip install -e '\.\[(?P<extras>[\w,]+)\]' && python -m pytest examples",
        README.read_text(),
    )
    assert command is not None
    optional = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    installed = _requirement_names(command["extras"].split(","), optional)
    examples = "".join(path.read_text() for path in (ROOT / "examples").glob("*.py"))
    needed = set(re.findall(r"importorskip\(\s*\"(\w+)\"", examples))
    assert needed, "the examples no longer skip for a missing package: drop this test"
    assert needed <= installed


def test_the_navigation_lists_each_page_once():
    nav = (ROOT / "mkdocs.yml").read_text().split("\nnav:\n", 1)[1].split("\n\n", 1)[0]
    pages = re.findall(r"([\w/-]+\.md)\s*$", nav, re.MULTILINE)
    assert len(pages) > 10
    assert sorted(page for page in set(pages) if pages.count(page) > 1) == []


def test_the_lint_sample_counts_every_factory_and_trait():
    """The sample output of --celestra-lint in factories.md, which went stale once."""
    factories = len(ALL_FACTORIES)
    traits = sum(len(traits_of(factory)) for factory in ALL_FACTORIES)
    text = (DOCS / "factories.md").read_text()
    assert f" celestra lint: {factories + traits} cases " in text
    summary = f"celestra lint: {factories} factories, {traits} traits: {factories + traits} OK"
    assert f"\n{summary}, 0 FAIL\n" in text


@pytest.mark.parametrize(
    ("page", "heading"),
    [
        (README, "## Volumes"),
        (DOCS / "volumes.md", "## The named volumes"),
    ],
    ids=["README.md", "docs/volumes.md"],
)
def test_volume_tables_match_the_volumes(page, heading):
    header, *rows = table_after(page.read_text(), heading)
    assert header == ["table", *VOLUME_NAMES]
    listed = {row[0]: [int(cell.replace(",", "")) for cell in row[1:]] for row in rows}
    expected = {
        table: [Volume.named(name).counts[table] for name in VOLUME_NAMES]
        for table in Volume.named("small").counts
    }
    assert listed == expected


def test_performance_page_matches_the_benchmark_json():
    spec = importlib.util.spec_from_file_location("bench_plot", DOCS / "bench_plot.py")
    assert spec is not None
    assert spec.loader is not None
    bench_plot = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_plot)
    stale = [str(path.relative_to(ROOT)) for path in bench_plot.stale_files()]
    assert stale == [], "run: python docs/bench_plot.py"
