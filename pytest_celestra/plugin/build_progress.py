"""What the terminal shows while a template is built, and the run's list of builds.

A build longer than [`QUIET_SECONDS`][pytest_celestra.plugin.build_progress.QUIET_SECONDS]
prints how far it is every
[`EVERY_SECONDS`][pytest_celestra.plugin.build_progress.EVERY_SECONDS], then a line when done.
Every build is listed in the run's summary with its rows and seconds (an xdist worker's,
which prints nothing live, with the worker's id).
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

    from pytest_celestra.plugin.run_info import RunInfo

QUIET_SECONDS = 2.0
"""A build shorter than this prints nothing while it runs."""
EVERY_SECONDS = 1.0
"""At most one progress line per build this often."""


class BuildProgress:
    """The plugin's [`BuildWatcher`][pytest_celestra.db.database.BuildWatcher]."""

    def __init__(self, config: pytest.Config, run: RunInfo) -> None:
        self.config = config
        self.builds = run.builds
        self.live = getattr(config, "workerinput", None) is None
        self._started: dict[str, float] = {}
        self._shown: dict[str, float] = {}

    def building(self, label: str) -> None:
        self._started[label] = time.perf_counter()

    def progress(self, label: str, done: str) -> None:
        started = self._started.get(label)
        if started is None:
            return
        now = time.perf_counter()
        last = self._shown.get(label)
        if now - started < QUIET_SECONDS or (last is not None and now - last < EVERY_SECONDS):
            return
        if self._write(f"celestra: building {label}: {done} ({now - started:.0f} s)"):
            self._shown[label] = now

    def built(self, label: str, rows: int, seconds: float, why: str = "") -> None:
        self._started.pop(label, None)
        line = f"{label}: {rows:,} row{'' if rows == 1 else 's'} in {seconds:.1f} s"
        if why:
            line += f" ({why})"
        self.builds.append(line)
        if self._shown.pop(label, None) is not None or seconds >= QUIET_SECONDS:
            self._write(f"celestra: built {line}")

    def _write(self, line: str) -> bool:
        """Write `line` past pytest's capture; only the main thread of a process that
        owns the terminal may (a background thread would race the capture)."""
        if not self.live or threading.current_thread() is not threading.main_thread():
            return False
        plugins = self.config.pluginmanager
        reporter: Any = plugins.get_plugin("terminalreporter")
        if reporter is None:
            return False
        capture: Any = plugins.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            reporter.ensure_newline()
            reporter.write_line(line)
        return True
