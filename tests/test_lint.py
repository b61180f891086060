"""``pytest --celestra-lint``: every factory and trait against the real schema, no tests run."""

from __future__ import annotations

import re

import pytest

from pytest_celestra.plugin.lint import LintCase, factories_to_lint, lint_cases
from pytest_celestra.rows.factories import ALL_FACTORIES, UserFactory, traits_of

#: Would fail if lint mode ran the tests.
FAILING_TEST = "def test_not_run():\n    assert False\n"

BROKEN_FACTORIES = """
import factory
from pytest_celestra.rows.factories import CompanyFactory, UserFactory
from pytest_celestra.schema.models import UserRole

class SuperAdminOfACompanyFactory(UserFactory):
    role = UserRole.SUPER_ADMIN
    company = factory.SubFactory(CompanyFactory)
"""


def lint_lines(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if re.match(r"(OK  |FAIL) ", line)]


def test_a_clean_run_lists_every_factory_and_trait_and_exits_0(celestra_pytester, run_inner):
    celestra_pytester.makepyfile(FAILING_TEST)
    result = run_inner("--celestra-lint")
    assert result.ret == pytest.ExitCode.OK, result.outlines
    expected = [f"OK   {case.label}" for case in lint_cases(list(ALL_FACTORIES))]
    assert lint_lines(result) == expected
    for factory in ALL_FACTORIES:
        assert f"OK   {factory.__name__}" in expected
    traits = sum(len(traits_of(factory)) for factory in ALL_FACTORIES)
    result.stdout.fnmatch_lines(
        [
            f"celestra lint: 15 factories, {traits} traits: {15 + traits} OK, 0 FAIL",
            "*no tests ran*",
        ]
    )


def test_a_broken_factory_of_a_conftest_fails_naming_the_constraint(celestra_pytester, run_inner):
    celestra_pytester.makeconftest(BROKEN_FACTORIES)
    celestra_pytester.makepyfile(FAILING_TEST)
    result = run_inner("--celestra-lint")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    failures = [line for line in lint_lines(result) if line.startswith("FAIL")]
    assert failures[0] == (
        "FAIL conftest.SuperAdminOfACompanyFactory: violates "
        "ck_users_super_admin_has_no_company (CheckViolation on users)"
    )
    assert all("ck_users_super_admin_has_no_company" in line for line in failures)
    assert "OK   UserFactory" in lint_lines(result)
    result.stdout.fnmatch_lines([f"celestra lint: 16 factories, * {len(failures)} FAIL"])


YOUR_TABLE = """
from sqlalchemy import text
from pytest_celestra import Base


def pytest_celestra_create_schema(connection, config):
    Base.metadata.create_all(connection)
    connection.execute(text(
        "CREATE TABLE user_preferences (id uuid PRIMARY KEY,"
        " user_id uuid NOT NULL REFERENCES users (id),"
        " theme text NOT NULL CONSTRAINT known_theme CHECK (theme IN ('light', 'dark')))"
    ))
    return True


def pytest_celestra_schema_rules(rules):
    rules.table(
        "user_preferences", parents={"user_id": "users"}, count=2,
        row=lambda context: {"theme": THEME},
    )
"""


@pytest.mark.parametrize("theme", ["dark", "sepia"])
def test_the_factories_of_your_tables_are_linted(celestra_pytester, run_inner, theme):
    """A table your rules describe has a factory (factory_for) as ours do; the lint left it
    out, though it is the one most worth linting."""
    celestra_pytester.makeconftest(f"THEME = {theme!r}\n{YOUR_TABLE}")
    celestra_pytester.makepyfile(FAILING_TEST)
    result = run_inner("--celestra-lint")
    table_lines = [line for line in lint_lines(result) if "factory_for" in line]
    if theme == "dark":
        assert table_lines == ["OK   factory_for('user_preferences')"]
        assert result.ret == pytest.ExitCode.OK, result.outlines
    else:
        assert table_lines == [
            "FAIL factory_for('user_preferences'): violates known_theme "
            "(CheckViolation on user_preferences)"
        ]
        assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["celestra lint: 16 factories, *"])


def test_factories_of_test_modules_are_linted_abstract_ones_are_not(celestra_pytester, run_inner):
    celestra_pytester.makepyfile(
        test_module="""
        import factory
        from pytest_celestra.rows.factories import CelestraFactory, CompanyFactory
        from pytest_celestra.schema.models import Company

        class NamelessCompanyFactory(CompanyFactory):
            name = None

        class CrashingFactory(CompanyFactory):
            name = factory.LazyFunction(lambda: 1 / 0)

        class BaseOfMine(CelestraFactory):
            class Meta:
                abstract = True

        def test_not_run():
            assert False
        """
    )
    result = run_inner("--celestra-lint")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    lines = lint_lines(result)
    assert "FAIL test_module.CrashingFactory: ZeroDivisionError: division by zero" in lines
    assert (
        'FAIL test_module.NamelessCompanyFactory: NotNullViolation: null value in column "name" '
        'of relation "companies" violates not-null constraint'
    ) in lines
    assert not any("BaseOfMine" in line for line in lines)
    result.stdout.fnmatch_lines(["celestra lint: 17 factories, *"])


def test_collection_errors_stop_before_the_lint(celestra_pytester, run_inner):
    celestra_pytester.makepyfile("import not_a_module_anywhere\n")
    result = run_inner("--celestra-lint")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert lint_lines(result) == []


@pytest.mark.slow
def test_lint_runs_in_one_process(celestra_pytester, run_inner):
    celestra_pytester.makepyfile(FAILING_TEST)
    result = run_inner("--celestra-lint", "-n", "2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--celestra-lint runs in one process: drop -n/--dist" in result.stderr.str()


def test_help_describes_the_lint(run_inner):
    result = run_inner("--help")
    result.stdout.fnmatch_lines(["*--celestra-lint*Instead of running the tests, create every*"])


def test_cases_and_labels():
    cases = lint_cases([UserFactory])
    assert cases[0] == LintCase(UserFactory)
    assert [case.label for case in cases[:2]] == ["UserFactory", "UserFactory(super_admin=True)"]
    assert len(cases) == 1 + len(traits_of(UserFactory))
    assert factories_to_lint()[: len(ALL_FACTORIES)] == list(ALL_FACTORIES)


def test_a_unique_violation_is_named_without_the_values(celestra_pytester, run_inner):
    celestra_pytester.makeconftest(
        """
        import factory
        from pytest_celestra.rows.factories import UserFactory

        class TwinFactory(UserFactory):
            email = "twin.secret@example.com"
            twin = factory.RelatedFactory(UserFactory, email="twin.secret@example.com")
        """
    )
    celestra_pytester.makepyfile(FAILING_TEST)
    result = run_inner("--celestra-lint")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    twin = [line for line in lint_lines(result) if "TwinFactory" in line]
    assert twin
    assert twin[0].startswith("FAIL conftest.TwinFactory: violates ")
    assert "UniqueViolation on users" in twin[0]
    output = result.stdout.str() + result.stderr.str()
    assert "twin.secret" not in output
    assert "Key (" not in output
