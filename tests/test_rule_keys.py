"""The seeded template's key covers what a rule reads, not only its source: module
constants, closure values, ``functools.partial`` arguments, parameter defaults, the
functions it calls and the modules of your project it uses."""

from __future__ import annotations

import functools
import importlib
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest
from helpers import templates_with_seed

from pytest_celestra.callables import callable_fingerprint
from pytest_celestra.schema.app_rules import SchemaRules

if TYPE_CHECKING:
    from pathlib import Path

    import psycopg

LOCALES = ["en-US", "de-DE"]


def pick_locale(row: Any, rng: Any) -> str:
    return str(rng.choice(LOCALES))


def calls_pick_locale(row: Any, rng: Any) -> str:
    return pick_locale(row, rng)


def with_weights(row: Any, rng: Any, *, weights: tuple[int, ...] = (1, 1)) -> str:
    return str(rng.choices(LOCALES, weights)[0])


def closure(value: str) -> Any:
    return lambda row, rng: value


def test_a_module_constant_a_rule_reads_is_part_of_its_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = callable_fingerprint(pick_locale)
    assert callable_fingerprint(pick_locale) == before
    monkeypatch.setattr(sys.modules[__name__], "LOCALES", ["en-US", "fr-FR"])
    assert callable_fingerprint(pick_locale) != before
    # Through a function it calls, too.
    monkeypatch.undo()
    called = callable_fingerprint(calls_pick_locale)
    monkeypatch.setattr(sys.modules[__name__], "LOCALES", ["en-US", "fr-FR"])
    assert callable_fingerprint(calls_pick_locale) != called


def test_closure_values_partial_arguments_and_defaults_are_part_of_the_key() -> None:
    assert callable_fingerprint(closure("en-US")) == callable_fingerprint(closure("en-US"))
    assert callable_fingerprint(closure("en-US")) != callable_fingerprint(closure("de-DE"))
    english = functools.partial(with_weights, weights=(3, 1))
    assert callable_fingerprint(english) == callable_fingerprint(
        functools.partial(with_weights, weights=(3, 1))
    )
    assert callable_fingerprint(english) != callable_fingerprint(
        functools.partial(with_weights, weights=(1, 3))
    )
    changed = functools.partial(with_weights)
    before = callable_fingerprint(changed)
    with_weights.__kwdefaults__ = {"weights": (2, 1)}
    try:
        assert callable_fingerprint(changed) != before
    finally:
        with_weights.__kwdefaults__ = {"weights": (1, 1)}


def test_a_module_of_the_project_is_keyed_by_its_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = tmp_path / "celestra_test_locales.py"
    module.write_text("def table():\n    return {'en-US': 3}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "celestra_test_locales", raising=False)
    imported = importlib.import_module("celestra_test_locales")

    def rule(row: Any, rng: Any) -> str:
        return str(rng.choice(list(imported.table())))

    before = callable_fingerprint(rule)
    module.write_text("def table():\n    return {'en-US': 3, 'de-DE': 1}\n")
    assert callable_fingerprint(rule) != before


def test_the_rules_key_follows_what_their_functions_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def key() -> str:
        rules = SchemaRules()
        rules.column("users", "locale", derive=pick_locale)
        return rules.key()

    before = key()
    assert key() == before
    monkeypatch.setattr(sys.modules[__name__], "LOCALES", ["it-IT"])
    assert key() != before


#: A table of the app filled by a rule whose lambda's source never changes; what it
#: reads does (a constant of conftest.py, and a module of the project).
CONFTEST = """
from sqlalchemy import text
from pytest_celestra import Base
import celestra_mottos

THEME = {theme!r}


def pytest_celestra_create_schema(connection, config):
    Base.metadata.create_all(connection)
    connection.execute(text(
        "CREATE TABLE user_notes (id uuid PRIMARY KEY, user_id uuid NOT NULL"
        " REFERENCES users (id), theme text NOT NULL, motto text NOT NULL)"
    ))
    return True


def pytest_celestra_schema_rules(rules):
    rules.table(
        "user_notes", parents={{"user_id": "users"}}, count=2,
        row=lambda context: {{"theme": THEME, "motto": celestra_mottos.MOTTO}},
    )
"""

SEEDED_TEST = """
from sqlalchemy import text

def test_seeded(celestra_seeded_db):
    rows = celestra_seeded_db.execute(text("SELECT DISTINCT theme, motto FROM user_notes"))
    print("NOTES", sorted(tuple(row) for row in rows))
"""


@pytest.mark.slow
def test_a_changed_value_a_rule_reads_builds_a_new_template(
    celestra_pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    admin: psycopg.Connection[Any],
    unique_seed: int,
) -> None:
    celestra_pytester.makepyfile(SEEDED_TEST)
    celestra_pytester.syspathinsert()

    def run(theme: str, motto: str) -> pytest.RunResult:
        celestra_pytester.makeconftest(CONFTEST.format(theme=theme))
        celestra_pytester.makepyfile(celestra_mottos=f"MOTTO = {motto!r}\n")
        result = celestra_pytester.runpytest(
            "-s", "-p", "no:randomly", f"--celestra-seed={unique_seed}"
        )
        result.assert_outcomes(passed=1)
        return result

    run("light", "carpe diem").stdout.fnmatch_lines(["*NOTES [[]('light', 'carpe diem')]"])
    assert len(templates_with_seed(admin, unique_seed)) == 1
    # The conftest constant: without it in the key, the old template would be served.
    run("dark!", "carpe diem").stdout.fnmatch_lines(["*NOTES [[]('dark!', 'carpe diem')]"])
    # A module of the project the rule uses.
    run("dark!", "festina lente").stdout.fnmatch_lines(["*NOTES [[]('dark!', 'festina lente')]"])
    assert len(templates_with_seed(admin, unique_seed)) == 3
    # Nothing changed: the template is found again.
    run("dark!", "festina lente").stdout.fnmatch_lines(["*NOTES [[]('dark!', 'festina lente')]"])
    assert len(templates_with_seed(admin, unique_seed)) == 3


FINGERPRINT_OF_A_SET_TEST = """
from pytest_celestra.callables import callable_fingerprint

SETTINGS = type("Settings", (), {})()
SETTINGS.locales = {"en-US", "de-DE", "fr-FR", "it-IT"}

def rule(row, rng):
    return "eu" if row["locale"] in {"de-DE", "fr-FR", "it-IT", "es-ES"} else SETTINGS.locales

print(callable_fingerprint(rule))
"""


def test_the_key_does_not_change_with_pythons_string_hashing(tmp_path: Path) -> None:
    # Each process orders a set of strings its own way: only a new process shows it.
    script = tmp_path / "fingerprint.py"
    script.write_text(FINGERPRINT_OF_A_SET_TEST)
    prints = {
        subprocess.run(
            [sys.executable, str(script)],
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in (1, 2, 3)
    }
    assert len(prints) == 1
