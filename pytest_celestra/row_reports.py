"""Tracebacks of a refused row without the rows' values.

pytest's long tracebacks print the arguments of every frame, and the frames between a
test and a factory's INSERT hold the row's values (a password hash among them). For a
[`RowRejectedError`][pytest_celestra.drift.RowRejectedError] the report is redrawn
without them (and without locals, even under `-l`); the message names the table,
column, constraint and factory instead.
"""

from __future__ import annotations

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


class RowErrorReports:
    """Registered by the plugin; touches only reports of a refused row."""

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, Any, Any]:
        report = yield
        excinfo = call.excinfo
        if excinfo is None or not report.failed:
            return report
        from pytest_celestra.drift import RowRejectedError

        if not excinfo.errisinstance(RowRejectedError):
            return report
        style = item.config.getoption("tbstyle", "auto")
        if style in ("auto", "long", "short"):
            report.longrepr = excinfo.getrepr(
                style="short" if style == "short" else "long",
                funcargs=False,
                showlocals=False,
                tbfilter=_outside_pytest,
            )
        return report
