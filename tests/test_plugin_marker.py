"""``@pytest.mark.celestra(volume=..., seed=...)``: another scenario for some tests."""

from __future__ import annotations

import pytest

MARKED_TESTS = """
import pytest
from pathlib import Path
from sqlalchemy import text

pytestmark = pytest.mark.celestra(volume="small,users=30")

def record(session, test):
    name = session.execute(text("SELECT current_database()")).scalar()
    companies = session.execute(text("SELECT string_agg(name, ',' ORDER BY name) FROM companies"))
    line = f"{test} {name} {companies.scalar()}\\n"
    with (Path(__file__).parent / "scenarios.log").open("a") as log:
        log.write(line)

def users(session):
    return session.execute(text("SELECT count(*) FROM users")).scalar()

def test_module_marker(celestra_seeded_db):
    assert users(celestra_seeded_db) == 30
    record(celestra_seeded_db, "module")

class TestSeed3:
    pytestmark = pytest.mark.celestra(seed=3)

    def test_class_marker_keeps_the_module_volume(self, celestra_seeded_db):
        assert users(celestra_seeded_db) == 30
        record(celestra_seeded_db, "class")

    @pytest.mark.celestra(volume="small")
    def test_function_marker(self, celestra_seeded_db):
        assert users(celestra_seeded_db) == 20
        record(celestra_seeded_db, "function")

    @pytest.mark.celestra(volume="small")
    def test_function_marker_again(self, celestra_seeded_db):
        record(celestra_seeded_db, "function")
"""

UNMARKED_TESTS = """
import pytest
from test_marked import record, users

def test_unmarked(celestra_seeded_db, celestra_seeded_dsn):
    assert users(celestra_seeded_db) == 20
    record(celestra_seeded_db, "unmarked")

@pytest.mark.celestra(volume="small", seed=1234)
def test_marker_with_the_run_scenario_is_the_run_database(celestra_seeded_db):
    record(celestra_seeded_db, "unmarked")
"""


def test_each_test_gets_the_scenario_of_its_closest_markers(celestra_pytester, run_inner):
    celestra_pytester.makepyfile(test_marked=MARKED_TESTS, test_unmarked=UNMARKED_TESTS)
    run_inner("-p", "no:randomly", "--strict-markers").assert_outcomes(passed=6)
    log = (celestra_pytester.path / "scenarios.log").read_text().splitlines()
    databases: dict[str, set[str]] = {}
    companies: dict[str, set[str]] = {}
    for line in log:
        test, database, names = line.split(" ", 2)
        databases.setdefault(test, set()).add(database)
        companies.setdefault(test, set()).add(names)
    # One database per scenario and process, reused by every test of that scenario.
    assert all(len(names) == 1 for names in databases.values())
    assert len({name for names in databases.values() for name in names}) == 4
    # Seed 3 and the default seed draw other companies.
    assert companies["class"] == companies["function"]
    assert companies["module"] == companies["unmarked"]
    assert companies["class"] != companies["module"]


def test_a_marked_test_cannot_use_the_run_scenario_engine(celestra_pytester, run_inner):
    celestra_pytester.makepyfile(
        """
        import pytest

        @pytest.mark.celestra(seed=3)
        def test_both(celestra_seeded_db, celestra_seeded_engine):
            pass
        """
    )
    result = run_inner()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*this test's @pytest.mark.celestra asks for volume=small seed=3, but "
            "celestra_seeded_engine holds the run's scenario (volume=small seed=1234)*"
            "celestra_seeded_db.get_bind().engine*"
        ]
    )


BAD_MARKERS = [
    ('volume="huge"', "(volume='huge'): invalid volume 'huge': use small, medium or large"),
    ("seed=-1", "(seed=-1): invalid seed '-1': use an integer from 0 to 9223372036854775807"),
    ("seed=1.5", "(seed=1.5): invalid seed 1.5: use an integer from 0 to 9223372036854775807"),
    (
        'volumes="small"',
        "(volumes=...): unknown argument; use volume=..., seed=... and/or scenario=...",
    ),
    (
        '"small"',
        "('small',): takes keyword arguments only, volume=..., seed=... and/or scenario=...",
    ),
]
MARKED_TEST = """
import pytest

@pytest.mark.celestra({marker})
def test_marked(celestra_seeded_db):
    pass
"""
_XDIST_RUN: list[pytest.RunResult] = []
"""The one xdist run of all the bad markers (a module each), shared by their tests: three
interpreters per run, where the in-process runs cost next to nothing."""


@pytest.mark.parametrize(("marker", "message"), BAD_MARKERS)
@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one process", "xdist"])
@pytest.mark.slow
def test_bad_marker_arguments_are_collection_errors(
    celestra_pytester, run_inner, marker, message, workers
):
    if not workers:
        module = "test_bad_marker_arguments_are_collection_errors"
        celestra_pytester.makepyfile(MARKED_TEST.format(marker=marker))
        result = run_inner()
        # pytest stops on a collection error.
        assert result.ret == pytest.ExitCode.INTERRUPTED
        result.assert_outcomes(errors=1)
    else:
        module = f"test_bad_{BAD_MARKERS.index((marker, message))}"
        if not _XDIST_RUN:
            celestra_pytester.makepyfile(
                **{
                    f"test_bad_{index}": MARKED_TEST.format(marker=bad)
                    for index, (bad, _) in enumerate(BAD_MARKERS)
                }
            )
            _XDIST_RUN.append(run_inner(*workers))
        result = _XDIST_RUN[0]
        # xdist reports each module's collection error as a failure of the run.
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        result.assert_outcomes(errors=len(BAD_MARKERS))
    result.stdout.fnmatch_lines(
        [
            f"*ERROR collecting {module}.py*",
            f"pytest-celestra: {module}.py::test_marked: @pytest.mark.celestra{message}*",
        ]
    )


def test_the_marker_is_registered(run_inner):
    result = run_inner("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.celestra(volume=None, seed=None, scenario=None): *"])
