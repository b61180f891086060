"""The measurements of ``bench.py`` that run in a fresh interpreter, one per process.

``bench.py`` runs ``python celestra_bench_workers.py KIND --volume ... --output FILE`` on a
scratch database name of its own and drops that database afterwards. Each worker imports
everything it needs before starting its timer (imports are paid once per process, by any
approach) and writes its figures as JSON, including the process's peak RSS.

* ``cold``: CREATE DATABASE, ``create_all``, ``seed_scenario``, commit;
* ``copy``: ``generate_scenario`` into memory (timed apart), then only the COPY load;
* ``peer``: the factory_boy peer of :mod:`celestra_bench_peer`;
* ``profile``: ``cold`` under cProfile;
* ``factories``: single factory calls and ``bulk_create`` batches
  (:mod:`celestra_bench_factories`).
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import json
import resource
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import psycopg

    from pytest_celestra.schema.volumes import Volume

#: Every scratch database of the benchmark has a name starting with this.
DB_PREFIX = "celestra_bench_"


def _connect(url: str, **kwargs: Any) -> psycopg.Connection[Any]:
    import psycopg

    return psycopg.connect(url, **kwargs)


def create_schema_database(admin_url: str, url: str) -> None:
    """CREATE DATABASE (from template0, marked as ours) and the Celestra schema in it."""
    from psycopg import sql
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from pytest_celestra.db.database import MARK
    from pytest_celestra.schema.models import Base
    from pytest_celestra.urls import sqlalchemy_url

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
    from pytest_celestra.rows.scenario import seed_scenario

    volume, anchor = _volume_and_anchor(args)
    started = time.perf_counter()
    create_schema_database(args.admin_url, args.db_url[0])
    schema_done = time.perf_counter()
    with _connect(args.db_url[0]) as connection:
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
    """The cold seed under cProfile; the stats go to ``--profile-output``.

    cProfile sees the calling thread only: row generation that the loader runs in a
    thread of its own shows as waiting here; ``profile-generate`` profiles it alone.
    """
    profiler = cProfile.Profile()
    profiler.enable()
    result = worker_cold(args)
    profiler.disable()
    profiler.dump_stats(args.profile_output)
    return result


def worker_profile_generate(args: argparse.Namespace) -> dict[str, Any]:
    """``generate_scenario`` drained in this thread under cProfile (no database)."""
    from pytest_celestra.rows.scenario import generate_scenario

    volume, anchor = _volume_and_anchor(args)
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    rows = sum(len(chunk) for _, chunk in generate_scenario(volume, seed=args.seed, anchor=anchor))
    profiler.disable()
    finished = time.perf_counter()
    profiler.dump_stats(args.profile_output)
    return {"seconds": finished - started, "rows": rows, "peak_rss_kib": peak_rss_kib()}


def worker_copy(args: argparse.Namespace) -> dict[str, Any]:
    """The limit: rows generated into memory once, then only their COPY is timed, once
    per database given (each a repetition)."""
    from pytest_celestra.rows import loader
    from pytest_celestra.rows.scenario import generate_scenario

    volume, anchor = _volume_and_anchor(args)
    generating = time.perf_counter()
    chunks = [
        (table, list(rows))
        for table, rows in generate_scenario(volume, seed=args.seed, anchor=anchor)
    ]
    generated = time.perf_counter()
    seconds = []
    for url in args.db_url:
        create_schema_database(args.admin_url, url)
        started = time.perf_counter()
        with _connect(url) as connection:
            loader.load(connection, chunks)
            connection.commit()
        seconds.append(time.perf_counter() - started)
    return {
        "seconds": seconds,
        "generate_seconds": generated - generating,
        "rows": sum(len(rows) for _, rows in chunks),
        "peak_rss_kib": peak_rss_kib(),
    }


def worker_peer(args: argparse.Namespace) -> dict[str, Any]:
    """factory_boy ``create()`` per row, same factories, one session, flush per object."""
    from celestra_bench_peer import create_rows_one_by_one

    volume, anchor = _volume_and_anchor(args)
    started = time.perf_counter()
    create_schema_database(args.admin_url, args.db_url[0])
    schema_done = time.perf_counter()
    created = create_rows_one_by_one(
        args.db_url[0], volume, fraction=args.fraction, seed=args.seed, anchor=anchor
    )
    finished = time.perf_counter()
    return {
        "schema_seconds": schema_done - started,
        "create_seconds": finished - schema_done,
        "rows_created": created,
        "fraction": args.fraction,
        "peak_rss_kib": peak_rss_kib(),
    }


def worker_factories(args: argparse.Namespace) -> dict[str, Any]:
    """Single factory calls against a plain factory_boy peer; bulk_create against
    create_batch (the volume is unused)."""
    from celestra_bench_factories import measure

    create_schema_database(args.admin_url, args.db_url[0])
    figures = measure(
        args.db_url[0],
        calls=args.factory_calls,
        rows=args.factory_rows,
        sample=args.factory_sample,
        seed=args.seed,
    )
    return {**figures, "peak_rss_kib": peak_rss_kib()}


WORKERS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "cold": worker_cold,
    "copy": worker_copy,
    "peer": worker_peer,
    "profile": worker_profile,
    "profile-generate": worker_profile_generate,
    "factories": worker_factories,
}


def _volume_and_anchor(args: argparse.Namespace) -> tuple[Volume, datetime]:
    from pytest_celestra.schema.volumes import Volume

    return Volume.parse(args.volume), datetime.fromisoformat(args.anchor)


#: Imported before any timer starts: imports are paid once per process by any approach.
WORKER_IMPORTS = (
    "psycopg",
    "sqlalchemy",
    "sqlalchemy.orm",
    "sqlalchemy.pool",
    "pytest_celestra.schema.models",
    "pytest_celestra.db.server",
    "pytest_celestra.db.database",
    "pytest_celestra.rows.loader",
    "pytest_celestra.rows.scenario",
)
PEER_IMPORTS = ("factory", "pytest_celestra.rows.factories", "celestra_bench_peer")
FACTORY_IMPORTS = ("factory", "pytest_celestra.rows.factories", "celestra_bench_factories")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="celestra_bench_workers.py",
        description="One measurement of benchmarks/bench.py (it runs this; not for direct use).",
    )
    parser.add_argument("worker", choices=sorted(WORKERS))
    parser.add_argument("--volume", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--anchor", required=True, help="ISO datetime of the scenario anchor")
    parser.add_argument("--admin-url", required=True, help="maintenance database URL")
    parser.add_argument(
        "--db-url",
        action="append",
        required=True,
        help="URL of a scratch database to create (copy: one per repetition)",
    )
    parser.add_argument("--output", required=True, help="JSON file for the result")
    parser.add_argument("--fraction", type=float, default=1.0, help="peer: share of each table")
    parser.add_argument("--profile-output", help="profile: file for the cProfile stats")
    parser.add_argument("--factory-calls", type=int, default=300, help="factories: calls")
    parser.add_argument("--factory-rows", type=int, default=10_000, help="factories: batch")
    parser.add_argument(
        "--factory-sample", type=int, default=1_000, help="factories: create_batch rows timed"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    extra = {"peer": PEER_IMPORTS, "factories": FACTORY_IMPORTS}.get(args.worker, ())
    for module in WORKER_IMPORTS + extra:
        importlib.import_module(module)
    result = WORKERS[args.worker](args)
    Path(args.output).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
