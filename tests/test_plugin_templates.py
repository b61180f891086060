"""The template cache across runs: seed once, reuse, rebuild on demand, user schemas."""

from __future__ import annotations

import json
import secrets

import pytest
from helpers import schema_hook, templates_with_seed

from pytest_celestra.db.cache_keys import builtin_schema_key, user_schema_key
from pytest_celestra.db.database import template_name

SEEDED_TEST = """
from sqlalchemy import text

def test_seeded(celestra_seeded_db):
    assert celestra_seeded_db.execute(text("SELECT count(*) FROM companies")).scalar() == 5
"""

EMPTY_TEST = """
def test_empty(celestra_session):
    pass
"""


def meta(comment: str) -> dict:
    return json.loads(comment[comment.index("{") :])


@pytest.mark.slow
def test_seeded_once_then_reused_and_rebuilt_on_demand(
    celestra_pytester, run_inner, admin, unique_seed
):
    seed = f"--celestra-seed={unique_seed}"
    celestra_pytester.makepyfile(test_empty=EMPTY_TEST)
    run_inner(seed).assert_outcomes(passed=1)
    assert templates_with_seed(admin, unique_seed) == {}  # no seeded test, no seeding

    celestra_pytester.makepyfile(test_seeded=SEEDED_TEST)
    run_inner(seed).assert_outcomes(passed=2)
    [(name, comment)] = templates_with_seed(admin, unique_seed).items()
    assert name.startswith("celestra_tpl_")
    first = meta(comment)
    assert (first["volume"], first["kind"]) == ("small", "seeded")

    run_inner(seed).assert_outcomes(passed=2)
    [(again, comment)] = templates_with_seed(admin, unique_seed).items()
    assert again == name
    assert (meta(comment)["run"], meta(comment)["built"]) == (first["run"], first["built"])

    run_inner(seed, "--celestra-rebuild").assert_outcomes(passed=2)
    [(rebuilt, comment)] = templates_with_seed(admin, unique_seed).items()
    assert rebuilt == name  # same content, same name
    assert meta(comment)["run"] != first["run"]


def test_other_volume_other_template(celestra_pytester, run_inner, admin, unique_seed):
    celestra_pytester.makepyfile(
        """
        from sqlalchemy import text

        def test_seeded(celestra_seeded_db):
            count = celestra_seeded_db.execute(text("SELECT count(*) FROM companies")).scalar()
            assert count == 7
        """
    )
    run_inner(f"--celestra-seed={unique_seed}", "--celestra-volume=small,companies=7")
    templates = templates_with_seed(admin, unique_seed)
    assert [meta(comment)["volume"] for comment in templates.values()] == ["small,companies=7"]


CUSTOM_SCHEMA = """
from pathlib import Path
from sqlalchemy import text
from pytest_celestra import Base

TABLE = "{table}"
VERSION = {version!r}

def pytest_celestra_create_schema(connection, config):
    Base.metadata.create_all(connection)
    connection.execute(text(f"CREATE TABLE {{TABLE}} (id int PRIMARY KEY)"))
    with (Path(__file__).parent / "setups.log").open("a") as log:
        log.write("set up\\n")
    return True
"""

VERSION_HOOK = """
def pytest_celestra_schema_version(config):
    return VERSION
"""

CUSTOM_SCHEMA_TESTS = """
import json
from pathlib import Path
from sqlalchemy import text
from conftest import TABLE

def test_custom_table_is_there(celestra_session):
    assert celestra_session.execute(text(f"SELECT count(*) FROM {TABLE}")).scalar() == 0
    comment = celestra_session.execute(
        text("SELECT shobj_description(oid, 'pg_database') FROM pg_database"
             " WHERE datname = current_database()")
    ).scalar()
    template = json.loads(comment[comment.index("{"):])["template"]
    with (Path(__file__).parent / "templates.log").open("a") as log:
        log.write(template + "\\n")

def test_the_scenario_loads_into_it(celestra_seeded_db):
    assert celestra_seeded_db.execute(text("SELECT count(*) FROM companies")).scalar() == 5
"""


@pytest.mark.slow
def test_a_user_schema_hook_is_cached_by_its_catalog(celestra_pytester, run_inner):
    table = f"widgets_{secrets.token_hex(4)}"
    celestra_pytester.makeconftest(CUSTOM_SCHEMA.format(table=table, version=None))
    celestra_pytester.makepyfile(CUSTOM_SCHEMA_TESTS)
    run_inner().assert_outcomes(passed=2)
    run_inner().assert_outcomes(passed=2)
    # Without a version the set-up runs once per run, into a scratch database, ...
    assert (celestra_pytester.path / "setups.log").read_text().count("set up") == 2
    # ... whose catalog hash names the same template both times.
    first, second = (celestra_pytester.path / "templates.log").read_text().split()
    assert first == second
    assert first.startswith("celestra_schema_")
    assert first != template_name("schema", builtin_schema_key())


@pytest.mark.slow
def test_a_schema_version_skips_the_set_up_when_cached(celestra_pytester, run_inner):
    version = f"v1-{secrets.token_hex(4)}"
    table = f"widgets_{secrets.token_hex(4)}"
    celestra_pytester.makeconftest(
        CUSTOM_SCHEMA.format(table=table, version=version) + VERSION_HOOK
    )
    celestra_pytester.makepyfile(CUSTOM_SCHEMA_TESTS)
    run_inner().assert_outcomes(passed=2)
    run_inner().assert_outcomes(passed=2)
    log = celestra_pytester.path / "setups.log"
    assert log.read_text().count("set up") == 1
    used = (celestra_pytester.path / "templates.log").read_text().split()
    project = str(celestra_pytester.path)
    assert used == [template_name("schema", user_schema_key(version, project))] * 2

    newer = f"v2-{secrets.token_hex(4)}"
    celestra_pytester.makeconftest(CUSTOM_SCHEMA.format(table=table, version=newer) + VERSION_HOOK)
    run_inner().assert_outcomes(passed=2)
    assert log.read_text().count("set up") == 2


PROJECT_SCHEMA = """
def pytest_celestra_schema_version(config):
    return {version!r}
"""

PROJECT_TEST = """
from sqlalchemy import text

def test_has_its_own_column(celestra_session):
    columns = celestra_session.execute(text(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'users'"
    )).scalars().all()
    assert "{column}" in columns
"""


def test_two_projects_whose_migrations_share_a_revision_id_get_their_own_schema(
    celestra_pytester, run_inner
):
    """A schema's key was its version alone: on a shared server, a second project whose
    head revision was also `0002` got the first one's schema (a new user's team did)."""
    version = f"0002-{secrets.token_hex(4)}"  # one string, as in two projects' alembic heads
    for project, column in (("project_x", "locale"), ("project_y", "nickname")):
        folder = celestra_pytester.mkpydir(project)
        (folder / "pytest.ini").write_text("[pytest]\n")  # its own root directory
        hook = schema_hook(f"ALTER TABLE users ADD COLUMN {column} text")
        (folder / "conftest.py").write_text(hook + PROJECT_SCHEMA.format(version=version))
        (folder / f"test_{project}.py").write_text(PROJECT_TEST.format(column=column))
    for project in ("project_x", "project_y", "project_x"):
        run_inner(project).assert_outcomes(passed=1)


SEEDED_TEST = "def test_seeded(celestra_seeded_db):\n    pass\n"


def test_the_summary_says_why_each_template_was_built(celestra_pytester, run_inner, unique_seed):
    """It listed the builds without a reason: a team could not tell a new day from an
    upgrade, a rebuild or an eviction."""
    celestra_pytester.makepyfile(SEEDED_TEST)
    seed, volume = f"--celestra-seed={unique_seed}", "--celestra-volume=small"

    def built(*args: str) -> str:
        result = run_inner(seed, volume, *args)
        result.assert_outcomes(passed=1)
        label = f"volume small (seed {unique_seed}): "
        return next(line for line in result.outlines if line.startswith(label))

    assert built("--celestra-anchor-day=2025-06-01").endswith(" (none on this server yet)")
    assert built("--celestra-anchor-day=2025-06-02").endswith(
        " (new anchor day 2025-06-02 (was 2025-06-01))"
    )
    assert built("--celestra-anchor-day=2025-06-02", "--celestra-rebuild").endswith(
        " (--celestra-rebuild)"
    )
