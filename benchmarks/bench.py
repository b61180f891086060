"""Benchmark of pytest-celestra: how fast a scenario is seeded, served and rolled back.

One command measures every volume in the same run and prints a table, then each target
with its figure, its limit and PASS/MISS::

    python benchmarks/bench.py [--volumes small,medium,large[,x1000]] [--tests 200]
                               [--dsn URL] [--seed N] [--repeat N] [--json FILE]
                               [--profile VOLUME]

Per volume it measures (details in ``benchmarks/README.md``):

* **cold seed**: create an empty database, create the schema, ``seed_scenario``, commit;
  each repetition in a fresh subprocess, which also reports its peak RSS;
* **COPY only** (the limit): the same rows from ``generate_scenario``, built in memory
  first, then only their COPY into an empty schema database is timed;
* **peer**: factory_boy ``create()`` per row with the package's own factories, one
  session, a flush per object, a commit at the end (at large a 10 % sample, scaled);
* **warm**: time from launching pytest to the first test body when the seeded template
  already exists, and the per-test setup + teardown overhead of ``celestra_seeded_db``
  over a test without it (medians over ``--tests`` tests of each kind);
* **factories** (once per run): single factory calls against a plain factory_boy peer,
  ``bulk_create`` batches against ``create_batch``.

The server is the one ``--dsn`` / ``CELESTRA_DSN`` names, else the plugin's own choice
(``pytest_celestra.db.server``: a throwaway ``pg_ctl`` server or the embedded one).
Scratch databases are named ``celestra_bench_<run token>_<n>``; they, and any template
the benchmark's pytest runs built, are dropped at the end. Targets are reported, not
asserted: the exit status is 0 unless something failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import celestra_bench_factories
import celestra_bench_import
import celestra_bench_pertest as pertest
from celestra_bench_report import (
    Target,
    VolumeResult,
    evaluate_targets,
    print_profile,
    render_details,
    render_table,
    render_targets,
)
from celestra_bench_workers import DB_PREFIX

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from datetime import datetime

    import psycopg

    from pytest_celestra.db.server import Server
    from pytest_celestra.schema.volumes import Volume

BENCH_DIR = Path(__file__).resolve().parent
TIMING_PLUGIN = "celestra_bench_timing"
DEFAULT_VOLUMES = "small,medium,large"
#: Volumes above this many rows get the cold seed, COPY and RSS only (see README).
FULL_MEASURE_MAX_ROWS = 200_000
#: Above this many rows the peer is timed on a sample of PEER_SAMPLE and scaled.
PEER_MAX_ROWS = 20_000
PEER_SAMPLE = 0.1
#: Re-runs allowed when a "warm" pytest run found its template gone and rebuilt it.
WARM_RETRIES = 3


def default_repeats(total_rows: int) -> int:
    """Repetitions of a cold seed / COPY: several where cheap, fewer where not."""
    if total_rows <= 2_000:
        return 3
    if total_rows <= FULL_MEASURE_MAX_ROWS:
        return 2
    return 1


# --- the server and our scratch databases --------------------------------------------


@dataclass
class BenchServer:
    """The server under test, and every database this benchmark made on it."""

    server: Server
    description: str
    token: str = field(default_factory=lambda: secrets.token_hex(4))
    counter: int = 0
    pytest_run_ids: set[str] = field(default_factory=set)

    @property
    def admin_url(self) -> str:
        from pytest_celestra.urls import libpq_url

        return libpq_url(self.server.url)

    def url_for(self, name: str) -> str:
        from pytest_celestra.urls import libpq_url

        return libpq_url(self.server.url_for(name))

    def admin(self, database: str | None = None) -> psycopg.Connection[Any]:
        """An autocommit connection to ``database`` (default: the one the URL names)."""
        import psycopg

        if database is None:
            return psycopg.connect(self.admin_url, autocommit=True)
        try:
            return psycopg.connect(self.url_for(database), autocommit=True)
        except psycopg.OperationalError:
            return psycopg.connect(self.admin_url, autocommit=True)

    def new_database_name(self) -> str:
        self.counter += 1
        return f"{DB_PREFIX}{self.token}_{self.counter}"

    def drop_scratch(self, name: str) -> None:
        """Drop one of this run's scratch databases (the name proves it is ours)."""
        from psycopg import sql

        assert name.startswith(f"{DB_PREFIX}{self.token}_")
        with self.admin() as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def built_by(self, run_ids: set[str]) -> list[str]:
        """Databases of pytest-celestra (templates, builds) whose comment names one of
        ``run_ids``: the plugin records the run that built each template."""
        from pytest_celestra.db.database import MARK

        if not run_ids:
            return []
        with self.admin() as admin:
            rows = admin.execute(
                "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database "
                "WHERE shobj_description(oid, 'pg_database') LIKE %s",
                (MARK + "%",),
            ).fetchall()
        return [name for name, comment in rows if _comment_run(comment) in run_ids]

    def cleanup(self) -> list[str]:
        """Drop what is left of ours: this run's scratch databases, and the templates the
        benchmark's own pytest runs built (found by the run id in their comment)."""
        with self.admin() as admin:
            rows = admin.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s",
                (f"{DB_PREFIX}{self.token}\\_%",),
            ).fetchall()
        dropped = [name for (name,) in rows]
        for name in dropped:
            self.drop_scratch(name)
        for name in self.built_by(self.pytest_run_ids):
            if self.drop_template(name):
                dropped.append(name)
        return dropped

    def drop_template(self, name: str) -> bool:
        """Drop a template the benchmark's pytest runs built, unless a session is using it.

        Under the plugin's own lock on that template when its version has one, so a
        concurrent test run is never between checking the template and cloning it.
        """
        import psycopg

        from pytest_celestra.db import database

        holding = getattr(database, "_holding", None)
        with (
            self.admin("postgres") as admin,
            holding(admin, name) if holding else contextlib.nullcontext(),
        ):
            comment = database.database_comment(admin, name)
            if comment is None or not comment.startswith(database.MARK):
                return False
            try:
                database.drop_database(admin, name, force=False)  # unseals a template first
            except psycopg.errors.ObjectInUse:
                print(f"[bench] left template {name}: another session uses it", file=sys.stderr)
                return False
        return True


def _comment_run(comment: str) -> str | None:
    """The ``run`` recorded in a pytest-celestra database comment (``... {json}``)."""
    _, brace, meta = comment.partition("{")
    try:
        run = json.loads(brace + meta).get("run") if brace else None
    except ValueError:
        return None
    return run if isinstance(run, str) else None


@contextlib.contextmanager
def open_server(dsn: str | None, workdir: Path) -> Iterator[BenchServer]:
    """The server as the plugin resolves it: ``--dsn``, else ``CELESTRA_DSN``, else its own."""
    from pytest_celestra.config import parse_dsn, resolve_config
    from pytest_celestra.db.server import describe_server, start_server

    options = {"dsn": None if dsn is None else parse_dsn(dsn)}
    config = resolve_config(options, {}, os.environ)
    description = describe_server(config)
    server = start_server(config, workdir)
    try:
        yield BenchServer(server, description)
    finally:
        server.stop()


# --- measurements driven from the parent process -------------------------------------


@dataclass
class Bench:
    """One benchmark run: options, server, anchor and where to log progress."""

    server: BenchServer
    seed: int
    anchor: datetime
    tests: int
    repeat: int | None
    warm_runs: int
    per_test_runs: int
    per_test_tests: int
    workdir: Path
    log: Callable[[str], None]

    def worker(self, kind: str, volume: Volume, databases: int = 1, **extra: Any) -> dict[str, Any]:
        """Run one worker in a fresh interpreter on fresh scratch databases, then drop them."""
        names = [self.server.new_database_name() for _ in range(databases)]
        output = self.workdir / f"{names[0]}.json"
        command = [
            sys.executable,
            str(BENCH_DIR / "celestra_bench_workers.py"),
            kind,
            f"--volume={volume.name}",
            f"--seed={self.seed}",
            f"--anchor={self.anchor.isoformat()}",
            f"--admin-url={self.server.admin_url}",
            f"--output={output}",
        ]
        command += [f"--db-url={self.server.url_for(name)}" for name in names]
        command += [f"--{key.replace('_', '-')}={value}" for key, value in extra.items()]
        try:
            completed = subprocess.run(
                command, capture_output=True, text=True, env=_child_env(), check=False
            )
        finally:
            for name in names:
                self.server.drop_scratch(name)
        if completed.returncode != 0:
            raise BenchError(
                f"{kind} worker for {volume.name} failed (exit {completed.returncode}):\n"
                f"{completed.stdout}{completed.stderr}"
            )
        result: dict[str, Any] = json.loads(output.read_text())
        return result

    def repeats(self, volume: Volume) -> int:
        return self.repeat or default_repeats(volume.total_rows)

    def measure(self, volume: Volume) -> VolumeResult:
        result = VolumeResult(volume.name, volume.total_rows)
        full = volume.total_rows <= FULL_MEASURE_MAX_ROWS
        repeats = self.repeats(volume)
        for round_ in range(repeats):
            self.log(f"{volume.name}: cold seed #{round_ + 1} of {repeats}")
            cold = self.worker("cold", volume)
            result.cold.append(cold["seconds"])
            result.cold_schema.append(cold["schema_seconds"])
            result.cold_seed.append(cold["seed_seconds"])
            result.cold_peak_rss_kib.append(cold["peak_rss_kib"])
        self.log(f"{volume.name}: COPY-only load x{repeats} (rows generated once)")
        copy = self.worker("copy", volume, databases=repeats)
        result.copy = copy["seconds"]
        result.copy_generate = [copy["generate_seconds"]]
        if not full:
            self.log(f"{volume.name}: beyond {FULL_MEASURE_MAX_ROWS:,} rows: cold, COPY, RSS only")
            result.partial = True
            return result
        fraction = 1.0 if volume.total_rows <= PEER_MAX_ROWS else PEER_SAMPLE
        self.log(f"{volume.name}: peer, factory_boy create per row ({fraction:.0%} of rows)")
        peer = self.worker("peer", volume, fraction=fraction)
        result.peer_fraction = fraction
        result.peer_rows_created = peer["rows_created"]
        result.peer_rows = peer["create_seconds"] / fraction
        result.peer = peer["schema_seconds"] + result.peer_rows
        self.prime_pytest(volume, result)
        return result

    # --- pytest subprocesses: warm start and per-test overhead -----------------------

    def prime_pytest(self, volume: Volume, result: VolumeResult) -> None:
        """Write the volume's test suite and run it once, so its template exists."""
        write_suite(self.suite(volume), self.tests)
        self.log(f"{volume.name}: pytest, first run (builds the template unless cached)")
        first = self.run_pytest(volume)
        result.first_run_first_test = first.first_test
        result.first_run_built = bool(self.server.built_by({first.run_id}))

    def measure_warm(self, volumes: list[Volume], results: dict[str, VolumeResult]) -> None:
        """Warm pytest runs, in rounds over the volumes so that load drifting on the machine
        affects them alike (their ratio is a target)."""
        primed = [v for v in volumes if results[v.name].first_run_first_test is not None]
        for round_ in range(self.warm_runs):
            for volume in primed:
                self.log(
                    f"{volume.name}: pytest, warm run #{round_ + 1} of {self.warm_runs}"
                    f" ({self.tests}+{self.tests} tests)"
                )
                warm = self.warm_run(volume)
                result = results[volume.name]
                result.warm_first_test.append(warm.first_test)
                result.warm_startup.append(warm.startup)
                result.warm_first_setup.append(warm.first_setup)
                result.seeded_setup_teardown += warm.setup_teardown("seeded")
                result.plain_setup_teardown += warm.setup_teardown("plain")

    def warm_run(
        self, volume: Volume, suite: Path | None = None, test_file: str = "test_bench_overhead.py"
    ) -> PytestRun:
        """A pytest run that found its template; one that had to rebuild it is repeated."""
        warm = self.run_pytest(volume, suite, test_file)
        retries = 0
        while rebuilt := self.server.built_by({warm.run_id}):
            # Another run's sweep dropped our template in between: not a warm start.
            retries += 1
            if retries > WARM_RETRIES:
                raise BenchError(f"{volume.name}: no warm run, the template kept vanishing")
            self.log(f"{volume.name}: that run rebuilt {', '.join(rebuilt)}; once more")
            warm = self.run_pytest(volume, suite, test_file)
        return warm

    def measure_per_test(self, volumes: list[Volume], results: dict[str, VolumeResult]) -> None:
        """Whole pytest runs of 1 + N and of 1 test per case, in rounds over the volumes
        (see ``celestra_bench_pertest``)."""
        for volume in volumes:
            pertest.write_suites(self.workdir / f"pertest_{volume.name}", self.per_test_tests)
            # Builds the templates if no earlier run did (with --per-test-only).
            warm_up = pertest.suite_file(pertest.CASES[0], 1)
            self.run_pytest(volume, self.workdir / f"pertest_{volume.name}", warm_up)
        for round_ in range(self.per_test_runs):
            for volume in volumes:
                self.log(
                    f"{volume.name}: per-test cost end to end, round {round_ + 1} of"
                    f" {self.per_test_runs} ({2 * (1 + len(pertest.CASES))} pytest runs)"
                )
                result = results[volume.name]
                for case in (pertest.PLAIN, *pertest.CASES):
                    for count in pertest.counts(self.per_test_tests):
                        run = self.run_pytest(
                            volume,
                            self.workdir / f"pertest_{volume.name}",
                            pertest.suite_file(case, count),
                        )
                        by_count = result.per_test_runs.setdefault(case.key, {})
                        by_count.setdefault(str(count), []).append(run.wall - run.first_setup)
                        if count > 1:
                            phases = pertest.phase_medians(list(run.record["tests"].values()))
                            result.per_test_phases.setdefault(case.key, []).append(phases)

    def suite(self, volume: Volume) -> Path:
        return self.workdir / f"suite_{volume.name}"

    def run_pytest(
        self, volume: Volume, suite: Path | None = None, test_file: str = "test_bench_overhead.py"
    ) -> PytestRun:
        suite = suite or self.suite(volume)
        timings = suite / "timings.json"
        timings.unlink(missing_ok=True)
        env = _child_env()
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BENCH_DIR), env.get("PYTHONPATH")]))
        env["CELESTRA_BENCH_TIMINGS"] = str(timings)
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            TIMING_PLUGIN,
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            f"--rootdir={suite}",
            f"--celestra-dsn={self.server.admin_url}",
            f"--celestra-volume={volume.name}",
            f"--celestra-seed={self.seed}",
            test_file,
        ]
        launched = time.time()
        completed = subprocess.run(
            command, cwd=suite, capture_output=True, text=True, env=env, check=False
        )
        ended = time.time()
        if completed.returncode != 0 or not timings.exists():
            raise BenchError(
                f"pytest run for {volume.name} failed (exit {completed.returncode}):\n"
                f"{_excerpt(completed.stdout)}{_excerpt(completed.stderr)}"
            )
        record = json.loads(timings.read_text())
        if record.get("run_id"):
            self.server.pytest_run_ids.add(record["run_id"])
        return PytestRun(launched, record, ended)


@dataclass
class PytestRun:
    """What the timing plugin recorded in one pytest subprocess."""

    launched: float
    record: dict[str, Any]
    ended: float = 0.0

    @property
    def wall(self) -> float:
        """Seconds from launching pytest to its exit."""
        return self.ended - self.launched

    @property
    def run_id(self) -> str:
        return str(self.record.get("run_id") or "")

    @property
    def first_test(self) -> float:
        """Seconds from launching pytest to the start of the first test's body."""
        return float(self.record["first_call_at"]) - self.launched

    @property
    def startup(self) -> float:
        """Seconds from launching pytest to ``pytest_configure`` (interpreter, imports)."""
        return float(self.record["configured_at"]) - self.launched

    @property
    def first_setup(self) -> float:
        """Setup of the first test: server, template check and the clone of the template."""
        first = next(iter(self.record["tests"].values()))
        return float(first.get("setup", 0.0))

    def setup_teardown(self, kind: str) -> list[float]:
        """setup + teardown seconds of each test of one kind (``seeded`` or ``plain``)."""
        return [
            phases.get("setup", 0.0) + phases.get("teardown", 0.0)
            for nodeid, phases in self.record["tests"].items()
            if f"::test_{kind}_" in nodeid
        ]


SUITE_HEADER = '''"""Generated by benchmarks/bench.py: trivial tests, timed by pytest."""
'''


def write_suite(directory: Path, count: int) -> None:
    """``count`` tests requesting ``celestra_seeded_db`` interleaved with ``count`` without."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "pytest.ini").write_text("[pytest]\naddopts =\n")
    lines = [SUITE_HEADER]
    for index in range(count):
        lines.append(f"\ndef test_seeded_{index:04d}(celestra_seeded_db):\n    pass\n")
        lines.append(f"\ndef test_plain_{index:04d}():\n    pass\n")
    (directory / "test_bench_overhead.py").write_text("".join(lines))


def _excerpt(output: str, head: int = 3000, tail: int = 1500) -> str:
    """The start (first failure) and the end (summary) of a long output."""
    if len(output) <= head + tail:
        return output
    return f"{output[:head]}\n[... {len(output) - head - tail} characters ...]\n{output[-tail:]}"


def _child_env() -> dict[str, str]:
    """This environment without any CELESTRA_* setting: children get theirs explicitly."""
    return {key: value for key, value in os.environ.items() if not key.startswith("CELESTRA_")}


class BenchError(RuntimeError):
    """A measurement could not be made (as opposed to a target being missed)."""


# --- command line --------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/bench.py",
        description="Benchmark pytest-celestra: cold seed, COPY limit, factory_boy peer, "
        "warm start and per-test overhead, at several volumes in one run.",
    )
    parser.add_argument(
        "--volumes",
        default=DEFAULT_VOLUMES,
        type=_volume_list,
        help=f"comma-separated volumes, e.g. small,medium,large,x1000 (default {DEFAULT_VOLUMES})",
    )
    parser.add_argument(
        "--tests",
        type=_positive_int,
        default=200,
        help="trivial tests of each kind (with / without celestra_seeded_db) per pytest run "
        "(default 200)",
    )
    parser.add_argument(
        "--dsn",
        default=None,
        help="PostgreSQL server URL (default: $CELESTRA_DSN, else the plugin's own server)",
    )
    parser.add_argument(
        "--seed", type=_seed, default=None, help="scenario seed (default: the plugin's)"
    )
    parser.add_argument(
        "--repeat",
        type=_positive_int,
        default=None,
        help="repetitions of each cold seed and COPY load "
        "(default: 3 at small/medium, 2 at large, 1 beyond)",
    )
    parser.add_argument(
        "--warm-runs",
        type=_positive_int,
        default=5,
        help="warm pytest runs per volume, in rounds over the volumes (default 5)",
    )
    parser.add_argument(
        "--per-test-runs",
        type=_positive_int,
        default=3,
        help="rounds of the end-to-end per-test runs (1 + 1,000 and 1 test per case, "
        "each case and the plain baseline; default 3)",
    )
    parser.add_argument(
        "--per-test-tests",
        type=_positive_int,
        default=pertest.PER_TEST_TESTS,
        help="N, the tests of the large file of each per-test case (default "
        f"{pertest.PER_TEST_TESTS:,}; fewer gives a noisier figure)",
    )
    parser.add_argument(
        "--per-test-only",
        action="store_true",
        help="measure only the per-test cost end to end (no seeding, peer or warm runs)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to FILE")
    parser.add_argument(
        "--profile",
        default=None,
        metavar="VOLUME",
        help="after the run, profile one cold seed at VOLUME with cProfile and print hot spots",
    )
    parser.add_argument(
        "--factory-rows",
        type=_positive_int,
        default=10_000,
        help="rows of each bulk_create batch; create_batch is timed on up to 1,000 of them "
        "and scaled (default 10000)",
    )
    parser.add_argument(
        "--import-cost",
        action="store_true",
        help="also measure what having the plugin installed costs a run that uses none of "
        "its fixtures (celestra_bench_import.py, with its defaults; a few minutes)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return parser.parse_args(argv)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _seed(text: str) -> int:
    from pytest_celestra.config import parse_seed
    from pytest_celestra.errors import ConfigError

    try:
        return parse_seed(text)
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _volume_list(text: str) -> list[str]:
    from pytest_celestra.errors import ConfigError
    from pytest_celestra.schema.volumes import Volume

    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError("no volume given; e.g. small,medium,large")
    for name in names:
        try:
            Volume.parse(name)
        except ConfigError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    return names


def run_benchmark(args: argparse.Namespace) -> None:
    """Measure every volume, print the report, write ``--json``; raise on any failure."""
    from pytest_celestra.rows.scenario import DEFAULT_SEED, anchor_for
    from pytest_celestra.schema.volumes import Volume

    def log(message: str) -> None:
        if not args.quiet:
            print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    seed = DEFAULT_SEED if args.seed is None else args.seed
    anchor = anchor_for()
    started = time.perf_counter()
    results: dict[str, VolumeResult] = {}
    factory_figures: dict[str, Any] | None = None
    import_figures: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="celestra-bench-") as tmp:
        workdir = Path(tmp)
        profile_path = workdir / "cold.prof"
        generate_path = workdir / "generate.prof"
        with open_server(args.dsn, workdir / "server") as server:
            log(f"server: {server.description}")
            bench = Bench(
                server=server,
                seed=seed,
                anchor=anchor,
                tests=args.tests,
                repeat=args.repeat,
                warm_runs=args.warm_runs,
                per_test_runs=args.per_test_runs,
                per_test_tests=args.per_test_tests,
                workdir=workdir,
                log=log,
            )
            try:
                volumes = [Volume.parse(name) for name in args.volumes]
                for volume in volumes:
                    if args.per_test_only:
                        results[volume.name] = VolumeResult(volume.name, volume.total_rows)
                    else:
                        results[volume.name] = bench.measure(volume)
                if not args.per_test_only:
                    bench.measure_warm(volumes, results)
                    log(f"factories: single calls, then batches of {args.factory_rows:,} rows")
                    factory_figures = bench.worker(
                        "factories", volumes[0], factory_rows=args.factory_rows
                    )
                full = [v for v in volumes if v.total_rows <= FULL_MEASURE_MAX_ROWS]
                bench.measure_per_test(full, results)
                if args.import_cost:
                    log("import cost: fresh interpreters and one-test pytest runs")
                    import_figures = celestra_bench_import.measure(sys.executable)
                if args.profile:
                    profiled = Volume.parse(args.profile)
                    log(f"{args.profile}: one cold seed, then generation alone, under cProfile")
                    bench.worker("profile", profiled, profile_output=profile_path)
                    bench.worker("profile-generate", profiled, profile_output=generate_path)
            finally:
                dropped = server.cleanup()
                log(f"dropped {len(dropped)} leftover database(s) of this run: {dropped}")
        targets = evaluate_targets(results)
        if factory_figures is not None:
            targets += celestra_bench_factories.targets(factory_figures, Target)
        if import_figures is not None:
            targets += celestra_bench_import.targets(import_figures, Target)
        print(
            f"pytest-celestra benchmark: server {server.description}; seed {seed};"
            f" anchor {anchor.date()}; {args.tests}+{args.tests} tests per pytest run;"
            f" Python {platform.python_version()}; took {time.perf_counter() - started:.0f} s"
        )
        print(f"\n{render_table(results)}\n\n{render_details(results)}\n")
        if factory_figures is not None:
            print(f"{celestra_bench_factories.render(factory_figures)}\n")
        if import_figures is not None:
            print(f"{celestra_bench_import.render(import_figures)}\n")
        print(render_targets(targets))
        if args.profile:
            print_profile(profile_path, f"cold seed at {args.profile} (main thread)")
            print_profile(generate_path, f"generate_scenario alone at {args.profile}")
    if args.json:
        payload = {
            "server": server.description,
            "seed": seed,
            "anchor": anchor.isoformat(),
            "tests": args.tests,
            "python": platform.python_version(),
            "volumes": {name: result.figures() for name, result in results.items()},
            "factories": factory_figures,
            "import_cost": import_figures,
            "targets": [{**asdict(t), "verdict": t.verdict} for t in targets],
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status 0 when every figure was measured (targets missed or not), else 1."""
    args = parse_args(argv)
    from pytest_celestra.errors import CelestraError

    try:
        run_benchmark(args)
    except (BenchError, CelestraError) as error:
        print(f"bench.py: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
