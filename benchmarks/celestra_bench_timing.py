"""pytest plugin loaded by ``bench.py`` into its pytest subprocesses (``-p celestra_bench_timing``).

It writes one JSON file (path in ``CELESTRA_BENCH_TIMINGS``) with:

* ``configured_at``: wall-clock time when ``pytest_configure`` ran (interpreter start,
  imports and plugin loading are before it);
* ``first_call_at``: wall-clock time when the first test's body started;
* ``tests``: per test, the duration of its ``setup``, ``call`` and ``teardown`` phases as
  pytest measured them (``TestReport.duration``), in seconds;
* ``run_id``: the pytest-celestra run id, which the plugin writes into the comment of
  every template this run builds, so ``bench.py`` can drop exactly those afterwards.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Generator

OUTPUT_VARIABLE = "CELESTRA_BENCH_TIMINGS"


class TimingRecorder:
    """Collects phase durations and writes them when the session ends."""

    def __init__(self, output: Path) -> None:
        self.output = output
        self.configured_at = time.time()
        self.first_call_at: float | None = None
        self.tests: dict[str, dict[str, float]] = {}

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, Any, Any]:
        if self.first_call_at is None:
            self.first_call_at = time.time()
        return (yield)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.tests.setdefault(report.nodeid, {})[report.when] = report.duration

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        run_id = None
        try:
            from pytest_celestra.plugin.run_info import RUN_KEY

            run = session.config.stash.get(RUN_KEY, None)
            run_id = None if run is None else run.run_id
        except ImportError:
            pass
        record = {
            "configured_at": self.configured_at,
            "first_call_at": self.first_call_at,
            "tests": self.tests,
            "run_id": run_id,
        }
        self.output.write_text(json.dumps(record))


def pytest_configure(config: pytest.Config) -> None:
    output = os.environ.get(OUTPUT_VARIABLE)
    if output:
        config.pluginmanager.register(TimingRecorder(Path(output)), "celestra_bench_recorder")
