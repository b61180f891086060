"""How many databases, and how much disk, writing transactional tests keep on the server.

    python benchmarks/bench_transactional_disk.py [--tests 1000] [--volume large]
                                                  [--dsn URL] [--interval 0.5]

Runs one pytest subprocess of N tests, each committing an UPDATE of one user through
``celestra_transactional_db`` (as ``bench_transactional.py``'s writing tests do: at
``large`` a write means a fresh clone, since the tables to reload are too big to restore),
and samples the server every ``--interval`` seconds: the number of test databases of that
run and their total size (``pg_database_size``). Prints the peak of both, and how many
databases were left when the run ended (none expected). Only the run's own databases are
counted (their comment names its run id), so other runs on the server do not count.

Ctrl-C (SIGINT) stops it early: the pytest run is interrupted (it drops its databases) and
the figures so far are printed, with the number of tests done. Exit status 1 if the run
failed, was stopped, or left databases behind.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg

if TYPE_CHECKING:
    from collections.abc import Sequence

CONFTEST = """
import pathlib
import pytest
from pytest_celestra.plugin.run_info import RUN_KEY

@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    pathlib.Path(__file__).with_name("run_id").write_text(config.stash[RUN_KEY].run_id)

def pytest_runtest_logfinish(nodeid):
    with pathlib.Path(__file__).with_name("done").open("a") as done:
        done.write(".")
"""
HEADER = "from sqlalchemy import text\n"
WRITE_TEST = """
def test_{index:04d}(celestra_transactional_db):
    celestra_transactional_db.execute(text(
        "UPDATE users SET name = name || '!' "
        "WHERE id = (SELECT id FROM users ORDER BY email LIMIT 1)"
    ))
    celestra_transactional_db.commit()
"""
SAMPLE = """
SELECT count(*), coalesce(sum(pg_database_size(oid)), 0) FROM pg_database
WHERE datname LIKE 'celestra\\_transactional\\_%%'
  AND shobj_description(oid, 'pg_database') LIKE %s
"""


class Sampler(threading.Thread):
    """Polls the server for the run's databases until stopped; keeps the peaks."""

    def __init__(self, dsn: str, run_id_file: Path, interval: float, progress: bool) -> None:
        super().__init__(daemon=True)
        self.progress = progress
        self.dsn = dsn
        self.run_id_file = run_id_file
        self.interval = interval
        self.stopped = threading.Event()
        self.peak_count = 0
        self.peak_bytes = 0
        self.samples = 0

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as admin:
            while not self.stopped.wait(self.interval):
                if not self.run_id_file.exists():
                    continue
                pattern = f'%"run": "{self.run_id_file.read_text()}"%'
                try:
                    row = admin.execute(SAMPLE, (pattern,)).fetchone()
                except psycopg.errors.UndefinedObject:  # dropped while measured
                    continue
                assert row is not None
                self.samples += 1
                self.peak_count = max(self.peak_count, int(row[0]))
                self.peak_bytes = max(self.peak_bytes, int(row[1]))
                if self.progress and self.samples % 120 == 0:  # a line a minute or so
                    print(
                        f"{self.tests_done()} tests done, {self.samples} samples: "
                        f"now {row[0]} databases "
                        f"({int(row[1]) / 2**20:.0f} MB), peak {self.peak_count} "
                        f"({self.peak_bytes / 2**20:.0f} MB)",
                        file=sys.stderr,
                        flush=True,
                    )

    def tests_done(self) -> int:
        done = self.run_id_file.with_name("done")
        return done.stat().st_size if done.exists() else 0

    def left(self) -> int:
        with psycopg.connect(self.dsn, autocommit=True) as admin:
            pattern = f'%"run": "{self.run_id_file.read_text()}"%'
            row = admin.execute(SAMPLE, (pattern,)).fetchone()
        return 0 if row is None else int(row[0])


def _interruptible() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _stop_early(_signal: int, _frame: object) -> None:
    raise KeyboardInterrupt


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", type=int, default=1000, help="writing tests (default 1000)")
    parser.add_argument("--volume", default="large", help="scenario volume (default large)")
    parser.add_argument(
        "--dsn",
        default=os.environ.get("CELESTRA_DSN"),
        help="server (default: CELESTRA_DSN); the benchmark needs one it can poll",
    )
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between samples")
    parser.add_argument(
        "--progress", action="store_true", help="print the peaks so far about once a minute"
    )
    arguments = parser.parse_args(argv)
    if not arguments.dsn:
        parser.error("give --dsn or set CELESTRA_DSN")
    return arguments


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_args(argv)
    signal.signal(signal.SIGINT, _stop_early)
    signal.signal(signal.SIGTERM, _stop_early)
    with tempfile.TemporaryDirectory(prefix="celestra-bench-disk-") as folder:
        directory = Path(folder)
        (directory / "conftest.py").write_text(CONFTEST)
        body = "".join(WRITE_TEST.format(index=index) for index in range(arguments.tests))
        (directory / "test_writes.py").write_text(HEADER + body)
        environment = {k: v for k, v in os.environ.items() if not k.startswith("CELESTRA_")}
        environment |= {
            "CELESTRA_SERVER": "dsn",
            "CELESTRA_DSN": arguments.dsn,
            "CELESTRA_VOLUME": arguments.volume,
        }
        sampler = Sampler(
            arguments.dsn, directory / "run_id", arguments.interval, arguments.progress
        )
        sampler.start()
        started = time.monotonic()
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:xdist"]
        with subprocess.Popen(
            [*command, "-p", "no:cacheprovider", "test_writes.py"],
            cwd=directory,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_interruptible,  # even when started in the background (SIGINT ignored)
        ) as run:
            try:
                stdout, stderr = run.communicate()
            except KeyboardInterrupt:  # stop early: pytest drops its databases, then a report
                run.send_signal(signal.SIGINT)
                stdout, stderr = run.communicate()
        elapsed = time.monotonic() - started
        sampler.stopped.set()
        sampler.join()
        left = sampler.left() if (directory / "run_id").exists() else 0
        done = sampler.tests_done()
    summary = {
        "tests": arguments.tests,
        "tests_done": done,
        "volume": arguments.volume,
        "exit_status": run.returncode,
        "seconds": round(elapsed, 1),
        "samples": sampler.samples,
        "peak_databases": sampler.peak_count,
        "peak_size_mb": round(sampler.peak_bytes / 2**20, 1),
        "databases_left": left,
    }
    print(json.dumps(summary, indent=2))
    if run.returncode != 0:
        print(stdout[-3000:], stderr[-3000:], sep="\n", file=sys.stderr)
    return 0 if run.returncode == 0 and left == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
