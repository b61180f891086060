"""The drift report as a run shows it: in full once, the notes that do not break on
every run (a cached template's too), and the report's placeholder refused if pasted."""

from __future__ import annotations

from typing import Any

import pytest

#: A migration that breaks seeding (a NOT NULL column no rule fills) ...
BREAKING = """
from sqlalchemy import text
from pytest_celestra import Base

def pytest_celestra_create_schema(connection, config):
    Base.metadata.create_all(connection)
    connection.execute(text("ALTER TABLE users ADD COLUMN locale text NOT NULL"))
    return True
"""

#: ... and one that does not.
NOT_BREAKING = """
from sqlalchemy import text
from pytest_celestra import Base

def pytest_celestra_create_schema(connection, config):
    Base.metadata.create_all(connection)
    connection.execute(text("ALTER TABLE companies ADD COLUMN nickname_{tag} text"))
    connection.execute(text("CREATE TABLE app_settings_{tag} (key text PRIMARY KEY)"))
    return True

def pytest_celestra_schema_version(config):
    return "{tag}"  # as an Alembic head: a cached run does not create the schema again
"""

TESTS = """
def test_one(celestra_session):
    pass

def test_two(celestra_session):
    pass

def test_seeded(celestra_seeded_db):
    pass
"""


def test_the_drift_report_is_shown_once_then_pointed_at(
    celestra_pytester: pytest.Pytester,
) -> None:
    celestra_pytester.makeconftest(BREAKING)
    celestra_pytester.makepyfile(TESTS)
    result = celestra_pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(errors=3)
    # Above pytest's short summary, which repeats each error's message in full where it is
    # not cut to the terminal's width (under CI=true, for one).
    output = result.stdout.str().partition("short test summary info")[0]
    assert output.count("users.locale (text) is NOT NULL without a default") == 1
    assert output.count('rules.column("users", "locale", values={"VALUE": 1})') == 1
    later = (
        "pytest-celestra: the database's schema differs from what pytest-celestra writes; no "
        "row was written. See the report under the first test that needed a database, above "
        "(--celestra-lint prints it alone)."
    )
    assert output.count(later) == 2  # test_two (the cached fixture error) and test_seeded
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_one*",
            "pytest-celestra: the database's schema differs from what pytest-celestra writes (1 "
            "difference to teach it; no row was written):",
            "*ERROR at setup of test_two*",
            later,
            "*ERROR at setup of test_seeded*",
            later,
        ]
    )


@pytest.mark.slow
def test_the_notes_that_do_not_break_are_shown_on_cached_runs_too(
    celestra_pytester: pytest.Pytester, unique_seed: int
) -> None:
    tag = str(unique_seed)  # a schema of this test's own: its first run builds the template
    celestra_pytester.makeconftest(NOT_BREAKING.format(tag=tag))
    celestra_pytester.makepyfile(TESTS)
    notes = [
        f"celestra: new column companies.nickname_{tag} (text) is left to its default",
        f"celestra: new table app_settings_{tag} stays empty (no rule fills it)",
    ]
    for _ in range(2):  # the template is built, then found in the cache
        result: Any = celestra_pytester.runpytest("-p", "no:randomly", f"--celestra-seed={tag}")
        result.assert_outcomes(passed=3)
        result.stdout.fnmatch_lines(notes)
        assert result.stdout.str().count(notes[0]) == 1


def test_the_reports_placeholder_pasted_unchanged_is_refused(
    celestra_pytester: pytest.Pytester,
) -> None:
    celestra_pytester.makeconftest(
        BREAKING
        + """
def pytest_celestra_schema_rules(rules):
    rules.column("users", "locale", values={"VALUE": 1})
"""
    )
    celestra_pytester.makepyfile(TESTS)
    result = celestra_pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(errors=1)  # one message, then the run stops
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_one*",
            "pytest-celestra: rules.column('users', 'locale', values={\"VALUE\": 1}): \"VALUE\" "
            "is the drift report's placeholder. Put your own values and their weights in its "
            'place, e.g. values={"en-US": 3, "de-DE": 1}, or compute each value with '
            "derive=lambda row, rng: ...",
            "*Interrupted: pytest-celestra cannot use your schema rules (see above)*",
        ],
        consecutive=False,
    )
    assert "def column(" not in result.stdout.str()  # no traceback into the plugin
