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
  over a test without it (medians over ``--tests`` tests of each kind).

The server is the one ``--dsn`` / ``CELESTRA_DSN`` names, else the plugin's own choice
(``pytest_celestra.server``: a throwaway ``pg_ctl`` server or the embedded one).
Scratch databases are named ``celestra_bench_<run token>_<n>``; they, and any template
the benchmark's pytest runs built, are dropped at the end. Targets are reported, not
asserted: the exit status is 0 unless something failed.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import importlib
import json
import os
import platform
import pstats
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    import psycopg

    from pytest_celestra.server import Server
    from pytest_celestra.volumes import Volume

BENCH_DIR = Path(__file__).resolve().parent
TIMING_PLUGIN = "celestra_bench_timing"
DB_PREFIX = "celestra_bench_"
DEFAULT_VOLUMES = "small,medium,large"
#: Volumes above this many rows get the cold seed, COPY and RSS only (see README).
FULL_MEASURE_MAX_ROWS = 200_000
#: Above this many rows the peer is timed on a sample of PEER_SAMPLE and scaled.
PEER_MAX_ROWS = 20_000
PEER_SAMPLE = 0.1
MB = 1024  # ru_maxrss is in KiB on Linux


# --- small helpers -------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def default_repeats(total_rows: int) -> int:
    """Repetitions of a cold seed / COPY: several where cheap, fewer where not."""
    if total_rows <= 2_000:
        return 3
    if total_rows <= FULL_MEASURE_MAX_ROWS:
        return 2
    return 1


def fmt_s(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value < 10:
        return f"{value:.3f}"
    return f"{value:,.1f}"


def fmt_ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1000:.2f}"


def fmt_mb(kib: float | None) -> str:
    return "n/a" if kib is None else f"{kib / MB:.0f}"


# --- workers: each measurement of one volume in its own process ----------------------


def _connect(url: str, **kwargs: Any) -> psycopg.Connection[Any]:
    import psycopg

    return psycopg.connect(url, **kwargs)


def create_schema_database(admin_url: str, url: str) -> None:
    """CREATE DATABASE (from template0, marked as ours) and the Celestra schema in it."""
    from psycopg import sql
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from pytest_celestra.database import MARK
    from pytest_celestra.models import Base
    from pytest_celestra.server import sqlalchemy_url

    target = sqlalchemy_url(url)
    name = target.database
    assert name is not None
    assert name.startswith(DB_PREFIX)
    with _connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
        admin.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(name), sql.Literal(f"{MARK} benchmark scratch database")
            )
        )
    engine = create_engine(target, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            Base.metadata.create_all(connection)
    finally:
        engine.dispose()


def peak_rss_kib() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def worker_cold(args: argparse.Namespace) -> dict[str, Any]:
    """Seed from nothing: empty database, schema, ``seed_scenario``, commit."""
    from pytest_celestra.scenario import seed_scenario

    volume, anchor = _volume_and_anchor(args)
    started = time.perf_counter()
    create_schema_database(args.admin_url, args.db_url)
    schema_done = time.perf_counter()
    with _connect(args.db_url) as connection:
        seed_scenario(connection, volume, seed=args.seed, anchor=anchor)
        connection.commit()
    finished = time.perf_counter()
    return {
        "seconds": finished - started,
        "schema_seconds": schema_done - started,
        "seed_seconds": finished - schema_done,
        "peak_rss_kib": peak_rss_kib(),
    }


def worker_profile(args: argparse.Namespace) -> dict[str, Any]:
    """The cold seed under cProfile; the stats go to ``--profile-output``."""
    profiler = cProfile.Profile()
    profiler.enable()
    result = worker_cold(args)
    profiler.disable()
    profiler.dump_stats(args.profile_output)
    return result


def worker_copy(args: argparse.Namespace) -> dict[str, Any]:
    """The limit: rows generated into memory first, then only their COPY is timed."""
    from pytest_celestra import loader
    from pytest_celestra.scenario import generate_scenario

    volume, anchor = _volume_and_anchor(args)
    generating = time.perf_counter()
    chunks = [
        (table, list(rows))
        for table, rows in generate_scenario(volume, seed=args.seed, anchor=anchor)
    ]
    generated = time.perf_counter()
    create_schema_database(args.admin_url, args.db_url)
    started = time.perf_counter()
    with _connect(args.db_url) as connection:
        loader.load(connection, chunks)
        connection.commit()
    finished = time.perf_counter()
    return {
        "seconds": finished - started,
        "generate_seconds": generated - generating,
        "rows": sum(len(rows) for _, rows in chunks),
        "peak_rss_kib": peak_rss_kib(),
    }


def worker_peer(args: argparse.Namespace) -> dict[str, Any]:
    """factory_boy ``create()`` per row, same factories, one session, flush per object."""
    from celestra_bench_peer import create_rows_one_by_one

    volume, anchor = _volume_and_anchor(args)
    started = time.perf_counter()
    create_schema_database(args.admin_url, args.db_url)
    schema_done = time.perf_counter()
    created = create_rows_one_by_one(
        args.db_url, volume, fraction=args.fraction, seed=args.seed, anchor=anchor
    )
    finished = time.perf_counter()
    return {
        "schema_seconds": schema_done - started,
        "create_seconds": finished - schema_done,
        "rows_created": created,
        "fraction": args.fraction,
        "peak_rss_kib": peak_rss_kib(),
    }


WORKERS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "cold": worker_cold,
    "copy": worker_copy,
    "peer": worker_peer,
    "profile": worker_profile,
}


def _volume_and_anchor(args: argparse.Namespace) -> tuple[Volume, datetime]:
    from pytest_celestra.volumes import Volume

    return Volume.parse(args.volume), datetime.fromisoformat(args.anchor)


#: Imported before any timer starts: imports are paid once per process by any approach.
WORKER_IMPORTS = (
    "psycopg",
    "sqlalchemy",
    "sqlalchemy.orm",
    "sqlalchemy.pool",
    "pytest_celestra.models",
    "pytest_celestra.server",
    "pytest_celestra.database",
    "pytest_celestra.loader",
    "pytest_celestra.scenario",
)
PEER_IMPORTS = ("factory", "pytest_celestra.factories", "celestra_bench_peer")


def run_worker(args: argparse.Namespace) -> int:
    for module in WORKER_IMPORTS + (PEER_IMPORTS if args.worker == "peer" else ()):
        importlib.import_module(module)
    result = WORKERS[args.worker](args)
    Path(args.worker_output).write_text(json.dumps(result))
    return 0


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
        from pytest_celestra.server import libpq_url

        return libpq_url(self.server.url)

    def url_for(self, name: str) -> str:
        from pytest_celestra.server import libpq_url

        return libpq_url(self.server.url_for(name))

    def new_database_name(self) -> str:
        self.counter += 1
        return f"{DB_PREFIX}{self.token}_{self.counter}"

    def drop_scratch(self, name: str) -> None:
        """Drop one of this run's scratch databases (the name proves it is ours)."""
        from psycopg import sql

        assert name.startswith(f"{DB_PREFIX}{self.token}_")
        with _connect(self.admin_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def cleanup(self) -> list[str]:
        """Drop what is left of ours: scratch databases of this run, and templates that the
        benchmark's own pytest runs built (found by the run id in their comment)."""
        from pytest_celestra.database import _LOCK_KEY, MARK, drop_database

        dropped: list[str] = []
        with _connect(self.admin_url, autocommit=True) as admin:
            rows = admin.execute(
                "SELECT datname, coalesce(shobj_description(oid, 'pg_database'), '') "
                "FROM pg_database WHERE datname LIKE %s OR "
                "shobj_description(oid, 'pg_database') LIKE %s",
                (f"{DB_PREFIX}{self.token}\\_%", MARK + "%"),
            ).fetchall()
            scratch = [name for name, _ in rows if name.startswith(f"{DB_PREFIX}{self.token}_")]
            for name in scratch:
                self.drop_scratch(name)
                dropped.append(name)
            built_here = [
                name
                for name, comment in rows
                if name not in scratch and _built_by(comment, MARK, self.pytest_run_ids)
            ]
            if built_here:
                # Under the plugin's template lock, so no concurrent run is cloning them.
                admin.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
                try:
                    for name in built_here:
                        drop_database(admin, name)
                        dropped.append(name)
                finally:
                    admin.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
        return dropped


def _built_by(comment: str, mark: str, run_ids: set[str]) -> bool:
    """Whether the comment of one of the plugin's databases names one of ``run_ids``."""
    from pytest_celestra.database import _parse_comment

    if not run_ids or not comment.startswith(mark):
        return False
    _, meta = _parse_comment(comment)
    return meta.get("run") in run_ids


@contextlib.contextmanager
def open_server(dsn: str | None, workdir: Path) -> Iterator[BenchServer]:
    """The server as the plugin resolves it: ``--dsn``, else ``CELESTRA_DSN``, else its own."""
    from pytest_celestra.config import parse_dsn, resolve_config
    from pytest_celestra.server import describe_server, start_server

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
class VolumeResult:
    """Every figure measured for one volume (seconds, KiB)."""

    volume: str
    rows: int
    cold: list[float] = field(default_factory=list)
    cold_schema: list[float] = field(default_factory=list)
    cold_seed: list[float] = field(default_factory=list)
    cold_peak_rss_kib: list[int] = field(default_factory=list)
    copy: list[float] = field(default_factory=list)
    copy_generate: list[float] = field(default_factory=list)
    peer: float | None = None
    peer_rows: float | None = None
    peer_fraction: float = 1.0
    peer_rows_created: int = 0
    warm_first_test: list[float] = field(default_factory=list)
    warm_startup: list[float] = field(default_factory=list)
    warm_first_setup: list[float] = field(default_factory=list)
    first_run_first_test: float | None = None
    seeded_setup_teardown: list[float] = field(default_factory=list)
    plain_setup_teardown: list[float] = field(default_factory=list)

    @property
    def cold_median(self) -> float | None:
        return median(self.cold) if self.cold else None

    @property
    def copy_median(self) -> float | None:
        return median(self.copy) if self.copy else None

    @property
    def peak_rss_kib(self) -> int | None:
        return max(self.cold_peak_rss_kib) if self.cold_peak_rss_kib else None

    @property
    def warm_median(self) -> float | None:
        return median(self.warm_first_test) if self.warm_first_test else None

    @property
    def overhead(self) -> float | None:
        """median(setup+teardown with celestra_seeded_db) - median(without)."""
        if not self.seeded_setup_teardown or not self.plain_setup_teardown:
            return None
        return median(self.seeded_setup_teardown) - median(self.plain_setup_teardown)

    @property
    def peer_vs_ours(self) -> float | None:
        """Peer's rows / ours (``seed_scenario`` + commit); database set-up excluded."""
        if self.peer_rows is None or not self.cold_seed:
            return None
        return self.peer_rows / median(self.cold_seed)

    @property
    def peer_vs_ours_total(self) -> float | None:
        """The same with the (identical) database + schema creation on both sides."""
        if self.peer is None or not self.cold:
            return None
        return self.peer / median(self.cold)

    def figures(self) -> dict[str, Any]:
        """The measurements (per-test durations summarised) and derived figures, for --json."""
        raw = asdict(self)
        per_test = {kind: sorted(raw.pop(f"{kind}_setup_teardown")) for kind in ("seeded", "plain")}
        return {
            **raw,
            **{
                f"{kind}_setup_teardown": {
                    "tests": len(values),
                    "median": median(values) if values else None,
                    "p90": values[int(len(values) * 0.9)] if values else None,
                }
                for kind, values in per_test.items()
            },
            "cold_median": self.cold_median,
            "copy_median": self.copy_median,
            "peak_rss_mib": None if self.peak_rss_kib is None else self.peak_rss_kib / MB,
            "warm_first_test_median": self.warm_median,
            "overhead_median": self.overhead,
            "peer_vs_ours": self.peer_vs_ours,
            "peer_vs_ours_total": self.peer_vs_ours_total,
        }


@dataclass
class Bench:
    """One benchmark run: options, server, anchor and where to log progress."""

    server: BenchServer
    seed: int
    anchor: datetime
    tests: int
    repeat: int | None
    workdir: Path
    log: Callable[[str], None]

    def worker(self, kind: str, volume: Volume, **extra: Any) -> dict[str, Any]:
        """Run one worker in a fresh interpreter on a fresh scratch database, then drop it."""
        name = self.server.new_database_name()
        output = self.workdir / f"{name}.json"
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--worker",
            kind,
            "--volume",
            volume.name,
            "--seed",
            str(self.seed),
            "--anchor",
            self.anchor.isoformat(),
            "--admin-url",
            self.server.admin_url,
            "--db-url",
            self.server.url_for(name),
            "--worker-output",
            str(output),
        ]
        for key, value in extra.items():
            command += [f"--{key.replace('_', '-')}", str(value)]
        try:
            completed = subprocess.run(
                command, capture_output=True, text=True, env=_child_env(), check=False
            )
        finally:
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
        for round_ in range(self.repeats(volume)):
            self.log(f"{volume.name}: cold seed #{round_ + 1}")
            cold = self.worker("cold", volume)
            result.cold.append(cold["seconds"])
            result.cold_schema.append(cold["schema_seconds"])
            result.cold_seed.append(cold["seed_seconds"])
            result.cold_peak_rss_kib.append(cold["peak_rss_kib"])
            self.log(f"{volume.name}: COPY-only load #{round_ + 1}")
            copy = self.worker("copy", volume)
            result.copy.append(copy["seconds"])
            result.copy_generate.append(copy["generate_seconds"])
        if not full:
            self.log(f"{volume.name}: beyond {FULL_MEASURE_MAX_ROWS:,} rows: cold, COPY, RSS only")
            return result
        fraction = 1.0 if volume.total_rows <= PEER_MAX_ROWS else PEER_SAMPLE
        self.log(f"{volume.name}: peer, factory_boy create per row ({fraction:.0%} of rows)")
        peer = self.worker("peer", volume, fraction=fraction)
        result.peer_fraction = fraction
        result.peer_rows_created = peer["rows_created"]
        result.peer_rows = peer["create_seconds"] / fraction
        result.peer = peer["schema_seconds"] + result.peer_rows
        self.measure_pytest(volume, result)
        return result

    # --- pytest subprocesses: warm start and per-test overhead -----------------------

    def measure_pytest(self, volume: Volume, result: VolumeResult, warm_runs: int = 3) -> None:
        suite = self.workdir / f"suite_{volume.name}"
        write_suite(suite, self.tests)
        self.log(f"{volume.name}: pytest, first run (builds the template unless cached)")
        first = self.run_pytest(suite, volume)
        result.first_run_first_test = first.first_test
        for round_ in range(warm_runs):
            self.log(f"{volume.name}: pytest, warm run #{round_ + 1} ({self.tests}+{self.tests})")
            warm = self.run_pytest(suite, volume)
            result.warm_first_test.append(warm.first_test)
            result.warm_startup.append(warm.startup)
            result.warm_first_setup.append(warm.first_setup)
            result.seeded_setup_teardown += warm.setup_teardown("seeded")
            result.plain_setup_teardown += warm.setup_teardown("plain")

    def run_pytest(self, suite: Path, volume: Volume) -> PytestRun:
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
            "test_bench_overhead.py",
        ]
        launched = time.time()
        completed = subprocess.run(
            command, cwd=suite, capture_output=True, text=True, env=env, check=False
        )
        if completed.returncode != 0 or not timings.exists():
            raise BenchError(
                f"pytest run for {volume.name} failed (exit {completed.returncode}):\n"
                f"{completed.stdout[-4000:]}{completed.stderr[-4000:]}"
            )
        record = json.loads(timings.read_text())
        if record.get("run_id"):
            self.server.pytest_run_ids.add(record["run_id"])
        return PytestRun(launched, record)


@dataclass
class PytestRun:
    """What the timing plugin recorded in one pytest subprocess."""

    launched: float
    record: dict[str, Any]

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


def _child_env() -> dict[str, str]:
    """This environment without any CELESTRA_* setting: children get theirs explicitly."""
    return {key: value for key, value in os.environ.items() if not key.startswith("CELESTRA_")}


class BenchError(RuntimeError):
    """A measurement could not be made (as opposed to a target being missed)."""


# --- targets -------------------------------------------------------------------------


@dataclass
class Target:
    """One target: what is compared, the figures behind it, the value and its limit."""

    name: str
    figure: str
    value: float | None
    limit: float | None
    at_most: bool = True

    @property
    def verdict(self) -> str:
        if self.value is None or self.limit is None:
            return "n/a"
        holds = self.value <= self.limit if self.at_most else self.value >= self.limit
        return "PASS" if holds else "MISS"

    @property
    def limit_text(self) -> str:
        if self.limit is None:
            return ""
        return f"{'<=' if self.at_most else '>='} {self.limit:g}"


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def _pair(
    results: dict[str, VolumeResult], top: str, bottom: str, value: Callable[[VolumeResult], Any]
) -> tuple[float | None, float | None]:
    """``value`` of two volumes (None for a volume not run or a figure not measured)."""
    a, b = results.get(top), results.get(bottom)
    return (None if a is None else value(a)), (None if b is None else value(b))


def _missing(*names: str) -> str:
    return f"needs {' and '.join(names)}"


def evaluate_targets(results: dict[str, VolumeResult]) -> list[Target]:
    """Every target of the benchmark, "n/a" where a volume it needs was not run."""
    targets: list[Target] = []

    cold = _pair(results, "large", "large", lambda r: r.cold_median)[0]
    copy = _pair(results, "large", "large", lambda r: r.copy_median)[0]
    figure = f"{fmt_s(cold)} / {fmt_s(copy)}" if cold and copy else _missing("large")
    targets.append(Target("large: cold seed / COPY-only load", figure, _ratio(cold, copy), 3))

    for name in ("medium", "large"):
        result = results.get(name)
        if result is None or result.peer_rows is None:
            targets.append(Target(f"{name}: peer / ours", _missing(name), None, 40, False))
            continue
        sample = "" if result.peer_fraction >= 1 else f" ({result.peer_fraction:.0%} sample)"
        figure = (
            f"{fmt_s(result.peer_rows)}{sample} / {fmt_s(median(result.cold_seed))}"
            f"; incl. DB+schema {fmt_s(result.peer)} / {fmt_s(result.cold_median)}"
            f" = {result.peer_vs_ours_total or 0:,.1f}x"
        )
        targets.append(Target(f"{name}: peer / ours", figure, result.peer_vs_ours, 40, False))

    large, small = _pair(results, "large", "small", lambda r: r.warm_median)
    figure = f"{fmt_s(large)} / {fmt_s(small)}" if large and small else _missing("small", "large")
    targets.append(
        Target("warm: time to first test, large / small", figure, _ratio(large, small), 1.5)
    )

    for result in results.values():
        if result.overhead is None:
            continue
        figure = (
            f"{fmt_ms(median(result.seeded_setup_teardown))} - "
            f"{fmt_ms(median(result.plain_setup_teardown))}"
            f" ({len(result.seeded_setup_teardown)} tests each)"
        )
        targets.append(
            Target(f"{result.volume}: per-test overhead, ms", figure, result.overhead * 1000, 2)
        )

    large, small = _pair(results, "large", "small", lambda r: r.overhead)
    figure = (
        f"{fmt_ms(large)} / {fmt_ms(small)}"
        if large is not None and small is not None
        else _missing("small", "large")
    )
    targets.append(Target("per-test overhead, large / small", figure, _ratio(large, small), 1.3))

    large, medium = _pair(results, "large", "medium", lambda r: r.cold_median)
    figure = (
        f"{fmt_s(large)} / {fmt_s(medium)}" if large and medium else _missing("medium", "large")
    )
    targets.append(Target("cold seed, large / medium", figure, _ratio(large, medium), 100))

    rss_large = _pair(results, "large", "large", lambda r: r.peak_rss_kib)[0]
    rss_large_mb = None if rss_large is None else rss_large / MB
    figure = _missing("large") if rss_large is None else f"{fmt_mb(rss_large)} MB"
    targets.append(Target("large: peak RSS of a cold seed, MB", figure, rss_large_mb, 400))

    rss_x1000 = _pair(results, "x1000", "x1000", lambda r: r.peak_rss_kib)[0]
    if rss_x1000 is not None and rss_large_mb is not None:
        figure = f"{fmt_mb(rss_x1000)} MB vs large {fmt_mb(rss_large)} MB + 100"
        targets.append(Target("x1000: peak RSS, MB", figure, rss_x1000 / MB, rss_large_mb + 100))
    else:
        figure = "needs large and x1000 (--volumes ...,x1000)"
        targets.append(Target("x1000: peak RSS <= large + 100 MB", figure, None, None))
    return targets


# --- report --------------------------------------------------------------------------


def render_table(results: dict[str, VolumeResult]) -> str:
    """One line per volume: the medians (and how many repetitions they are of)."""
    rows: list[tuple[str, ...]] = [
        (
            "volume",
            "rows",
            "cold seed s",
            "= schema + seed",
            "COPY only s",
            "peer s",
            "warm 1st test s",
            "overhead ms",
            "peak RSS MB",
        )
    ]
    for r in results.values():
        peer = fmt_s(r.peer)
        if r.peer is not None and r.peer_fraction < 1:
            peer += f" ({r.peer_fraction:.0%} x{1 / r.peer_fraction:.0f})"
        rows.append(
            (
                r.volume,
                f"{r.rows:,}",
                f"{fmt_s(r.cold_median)} n={len(r.cold)}",
                f"{fmt_s(median(r.cold_schema))} + {fmt_s(median(r.cold_seed))}",
                f"{fmt_s(r.copy_median)} n={len(r.copy)}",
                peer,
                "n/a"
                if r.warm_median is None
                else f"{fmt_s(r.warm_median)} n={len(r.warm_first_test)}",
                fmt_ms(r.overhead),
                fmt_mb(r.peak_rss_kib),
            )
        )
    return _columns(rows)


def render_details(results: dict[str, VolumeResult]) -> str:
    """Where the headline figures come from, one line per volume."""
    lines = []
    for r in results.values():
        parts = [f"COPY-only rows generated beforehand in {fmt_s(median(r.copy_generate))} s"]
        if r.peer is not None:
            sample = (
                f"a {r.peer_fraction:.0%} sample ({r.peer_rows_created:,} rows) scaled"
                f" x{1 / r.peer_fraction:.0f}"
                if r.peer_fraction < 1
                else f"all {r.peer_rows_created:,} rows"
            )
            parts.append(f"peer timed on {sample}")
        if r.warm_startup:
            parts.append(
                f"warm: interpreter + imports {fmt_s(median(r.warm_startup))} s of"
                f" {fmt_s(r.warm_median)} s, first test's setup (template clone)"
                f" {fmt_s(median(r.warm_first_setup))} s"
            )
        if r.first_run_first_test is not None:
            parts.append(f"first pytest run (template build) {fmt_s(r.first_run_first_test)} s")
        if not r.warm_first_test and r.rows > FULL_MEASURE_MAX_ROWS:
            parts.append("beyond large: cold seed, COPY and RSS only")
        lines.append(f"  {r.volume}: " + "; ".join(parts))
    return "\n".join(lines)


def render_targets(targets: list[Target]) -> str:
    rows: list[tuple[str, ...]] = [("target", "figures", "value", "limit", "verdict")]
    for target in targets:
        value = "n/a" if target.value is None else f"{target.value:,.2f}"
        rows.append((target.name, target.figure, value, target.limit_text, target.verdict))
    return _columns(rows)


def _columns(rows: list[tuple[str, ...]]) -> str:
    """Rows as aligned columns: the first left-aligned, numbers right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        cells = [
            cell.rjust(width) if column and index and cell[:1].isdigit() else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


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
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to FILE")
    parser.add_argument(
        "--profile",
        default=None,
        metavar="VOLUME",
        help="after the run, profile one cold seed at VOLUME with cProfile and print hot spots",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    worker = parser.add_argument_group("internal (one measurement in a subprocess)")
    worker.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    worker.add_argument("--volume", help=argparse.SUPPRESS)
    worker.add_argument("--anchor", help=argparse.SUPPRESS)
    worker.add_argument("--admin-url", help=argparse.SUPPRESS)
    worker.add_argument("--db-url", help=argparse.SUPPRESS)
    worker.add_argument("--worker-output", help=argparse.SUPPRESS)
    worker.add_argument("--fraction", type=float, default=1.0, help=argparse.SUPPRESS)
    worker.add_argument("--profile-output", help=argparse.SUPPRESS)
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
    from pytest_celestra.volumes import Volume

    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError("no volume given; e.g. small,medium,large")
    for name in names:
        try:
            Volume.parse(name)
        except ConfigError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    return names


def print_profile(path: Path, limit: int = 25) -> None:
    stats = pstats.Stats(str(path))
    stats.strip_dirs()
    print("\nhot spots by own time (cProfile, cold seed):")
    stats.sort_stats("tottime").print_stats(limit)
    print("by cumulative time:")
    stats.sort_stats("cumulative").print_stats(limit)


def run_benchmark(args: argparse.Namespace) -> None:
    """Measure every volume, print the report, write ``--json``; raise on any failure."""
    from pytest_celestra.scenario import DEFAULT_SEED, anchor_for
    from pytest_celestra.volumes import Volume

    def log(message: str) -> None:
        if not args.quiet:
            print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    seed = DEFAULT_SEED if args.seed is None else args.seed
    anchor = anchor_for()
    started = time.perf_counter()
    results: dict[str, VolumeResult] = {}
    with tempfile.TemporaryDirectory(prefix="celestra-bench-") as tmp:
        workdir = Path(tmp)
        profile_path = workdir / "cold.prof"
        with open_server(args.dsn, workdir / "server") as server:
            log(f"server: {server.description}")
            bench = Bench(server, seed, anchor, args.tests, args.repeat, workdir, log)
            try:
                for name in args.volumes:
                    results[name] = bench.measure(Volume.parse(name))
                if args.profile:
                    log(f"{args.profile}: one cold seed under cProfile")
                    bench.worker("profile", Volume.parse(args.profile), profile_output=profile_path)
            finally:
                dropped = server.cleanup()
                log(f"dropped {len(dropped)} leftover database(s) of this run: {dropped}")
        targets = evaluate_targets(results)
        print(
            f"pytest-celestra benchmark: server {server.description}; seed {seed};"
            f" anchor {anchor.date()}; {args.tests}+{args.tests} tests per pytest run;"
            f" Python {platform.python_version()}; took {time.perf_counter() - started:.0f} s"
        )
        print(f"\n{render_table(results)}\n\n{render_details(results)}\n")
        print(render_targets(targets))
        if args.profile:
            print_profile(profile_path)
    if args.json:
        payload = {
            "server": server.description,
            "seed": seed,
            "anchor": anchor.isoformat(),
            "tests": args.tests,
            "python": platform.python_version(),
            "volumes": {name: result.figures() for name, result in results.items()},
            "targets": [{**asdict(t), "verdict": t.verdict} for t in targets],
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status 0 when every figure was measured (targets missed or not), else 1."""
    args = parse_args(argv)
    if args.worker:
        return run_worker(args)
    from pytest_celestra.errors import CelestraError

    try:
        run_benchmark(args)
    except (BenchError, CelestraError) as error:
        print(f"bench.py: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
