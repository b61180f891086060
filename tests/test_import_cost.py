"""Having the plugin installed costs nothing until a test asks for a celestra fixture.

Checked through ``sys.modules`` of fresh interpreters, not by timing (the benchmark
``benchmarks/celestra_bench_import.py`` measures the time).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

#: Packages a suite that asks for no celestra fixture must not import through the plugin.
HEAVY_PACKAGES = ("sqlalchemy", "faker", "passlib", "bcrypt", "factory")
#: Our modules that bring them (the data generator, the factories, their providers).
HEAVY_MODULES = (
    "pytest_celestra.rows.scenario",
    "pytest_celestra.rows.factories",
    "pytest_celestra.rows.providers",
    "pytest_celestra.schema.models",
)


def heavy(modules: list[str]) -> list[str]:
    """The heavy ones among ``modules``."""
    return sorted(
        name for name in modules if name.split(".")[0] in HEAVY_PACKAGES or name in HEAVY_MODULES
    )


def modules_after(code: str) -> list[str]:
    """``sys.modules`` of a fresh interpreter that ran ``code``."""
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    modules: list[str] = json.loads(done.stdout.splitlines()[-1])
    return modules


def test_the_check_sees_a_heavy_import():
    assert heavy(modules_after("import pytest_celestra.rows.factories")) != []


def test_importing_the_plugin_imports_nothing_heavy():
    modules = modules_after("import pytest_celestra.plugin")
    assert "pytest_celestra.plugin.fixtures" in modules  # registered at load: imported
    assert heavy(modules) == []


def test_importing_the_cli_imports_no_pytest():
    modules = modules_after("import pytest_celestra.cli")
    assert "pytest_celestra.rows.scenario" in modules
    assert [name for name in modules if name.split(".")[0] in ("pytest", "_pytest")] == []
    assert "pytest_celestra.plugin.fixtures" not in modules


RECORD_MODULES = """
import json, sys

def pytest_unconfigure(config):
    with open("modules.json", "w") as out:
        json.dump(sorted(sys.modules), out)
"""


def test_a_suite_without_celestra_fixtures_imports_nothing_heavy(pytester: pytest.Pytester):
    """Faker's own plugin imports faker, and pytest-randomly (the test extra) factory_boy
    and faker to reseed them: both are blocked; ours stays loaded."""
    pytester.makeconftest(RECORD_MODULES)
    pytester.makepyfile("def test_nothing():\n    pass\n")
    blocked = ["-p", "no:faker", "-p", "no:randomly"]
    if importlib.util.find_spec("pytest_postgresql") is not None:
        blocked += ["-p", "no:pytest_postgresql"]  # its entry point's name
    result = pytester.runpytest_subprocess(*blocked, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    modules = json.loads((pytester.path / "modules.json").read_text())
    assert "pytest_celestra.plugin" in modules
    assert "pytest_celestra.plugin.fixtures" in modules
    assert heavy(modules) == []


@pytest.mark.slow
def test_the_recorded_modules_include_what_a_test_imports(pytester: pytest.Pytester):
    """The record is taken at the end of the run: a test that reseeds the factories (as
    every celestra session fixture does) shows up in it, so the test above would see the
    generator if the plugin imported it."""
    pytester.makeconftest(RECORD_MODULES)
    pytester.makepyfile(
        """
        from pytest_celestra.plugin import fixtures

        def test_reseed():
            fixtures.reseed_factories(1, "probe", "celestra_session")
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:faker", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    modules = json.loads((pytester.path / "modules.json").read_text())
    assert {"pytest_celestra.rows.factories", "factory", "faker"} <= set(heavy(modules))


def test_importing_the_volumes_and_the_spec_imports_nothing_heavy():
    """Volumes (the settings layer) read the spec's figures: the spec is pure data."""
    modules = modules_after("import pytest_celestra.schema.volumes")
    assert "pytest_celestra.schema.spec" in modules
    assert heavy(modules) == []


def test_importing_the_package_imports_nothing_of_its_own():
    """`import pytest_celestra` (pytest does it for the plugin) loads no module of ours,
    and a top-level name loads only its own module's imports."""
    modules = modules_after("import pytest_celestra")
    assert [name for name in modules if name.startswith("pytest_celestra.")] == []
    assert heavy(modules) == []
    assert heavy(modules_after("from pytest_celestra import Volume")) == []
    assert "sqlalchemy" in heavy(modules_after("from pytest_celestra import User"))
