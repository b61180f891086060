"""Reports of our errors at your code's frames, and of a refused row without its values.

An error of ours ([`CelestraError`][pytest_celestra.errors.CelestraError]: an unknown factory
keyword, a refused row, a failed rule of yours ...) says what was wrong and how to fix it;
the frames of the plugin, factory_boy and SQLAlchemy between your call and the raise say
nothing more, so the report shows the test's and your code's frames only.

pytest's long tracebacks also print every frame's arguments, and the frames between a test
and a factory's INSERT hold the row's values (a password hash among them). For a
[`RowRejectedError`][pytest_celestra.db.drift.RowRejectedError] or a failed rule of yours
([`RuleError`][pytest_celestra.errors.RuleError]) the report is drawn without them (and
without locals, even under `-l`); the message names table, column, constraint and rule.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Generator

    from _pytest._code.code import Traceback


def _outside_pytest(excinfo: pytest.ExceptionInfo[BaseException]) -> Traceback:
    """The frames of the test and the code it calls, as pytest's own report shows."""
    traceback = excinfo.traceback.filter(
        lambda entry: not any(part in str(entry.path) for part in ("_pytest", "pluggy"))
    )
    return traceback.filter(excinfo)


def _callers(excinfo: pytest.ExceptionInfo[BaseException]) -> Traceback:
    """The frames of the test and your code, down to the call into the plugin (whose and
    SQLAlchemy's frames say nothing about your rule)."""
    package = str(Path(__file__).parent.parent)
    traceback = _outside_pytest(excinfo)
    kept = traceback.filter(
        lambda entry: (
            not str(entry.path).startswith(package) and "site-packages" not in str(entry.path)
        )
    )
    return kept if len(kept) else traceback


DRIFT_SEEN = (
    "pytest-celestra: the database's schema differs from what pytest-celestra writes; "
    "no row was written. See the report under the first test that needed a database, above "
    "(--celestra-lint prints it alone)."
)
"""What the tests after the first say about the drift report (it is shown once per process)."""


class RowErrorReports:
    """Registered by the plugin; touches only reports of a refused row, and of the drift
    report, which it shows in full for the first test only."""

    def __init__(self) -> None:
        self.drift_shown = False

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, Any, Any]:
        report = yield
        excinfo = call.excinfo
        if excinfo is None or not report.failed:
            return report
        if getattr(excinfo.value, "celestra_drift", False):
            if self.drift_shown:
                report.longrepr = DRIFT_SEEN
            self.drift_shown = True
            return report
        from pytest_celestra.db.drift import RowRejectedError
        from pytest_celestra.errors import CelestraError, RuleError

        # A rule of yours failing in a flush of your own reaches the test inside
        # SQLAlchemy's StatementError, whose frames hold the row's values.
        statement_error = getattr(sys.modules.get("sqlalchemy.exc"), "StatementError", ())
        rule_failed = excinfo.errisinstance(RuleError) or (
            excinfo.errisinstance(statement_error)
            and isinstance(getattr(excinfo.value, "orig", None), RuleError)
        )
        if not rule_failed and not excinfo.errisinstance(CelestraError):
            return report
        row_values = rule_failed or excinfo.errisinstance(RowRejectedError)
        style = item.config.getoption("tbstyle", "auto")
        if style in ("auto", "long", "short"):
            report.longrepr = excinfo.getrepr(
                style="short" if style == "short" else "long",
                funcargs=not row_values,
                showlocals=not row_values and item.config.getoption("showlocals", False),
                tbfilter=_callers,
                chain=not rule_failed,  # the rule's error is in the message already
            )
        return report
