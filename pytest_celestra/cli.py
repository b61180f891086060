"""`celestra-seed`: a seeded Celestra database, or a SQL script, from the command line.

```bash
celestra-seed --volume large --seed 42      # embedded PostgreSQL, left running
celestra-seed --dsn postgresql://postgres@127.0.0.1:5432/celestra_demo
celestra-seed --volume small --sql celestra.sql
celestra-seed stop                           # stop the embedded server again
```

Without `--dsn` or `--sql` it starts the embedded PostgreSQL in a data directory that
persists (`--data-dir`), seeds `--database` there and leaves the server running. It never
seeds over data (`--reset` empties the 15 Celestra tables, and no others, first) nor
touches a table or type of a Celestra name that is not Celestra's, and never prints a
password. Exit status: 0 done, 1 failed (one line on stderr), 2 bad arguments. See docs/cli.md.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shlex
import shutil
import stat
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from traceback import format_exception
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NoReturn

import platformdirs
import psycopg
from psycopg import sql
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from pytest_celestra import __version__
from pytest_celestra.config import SPECS, is_root, parse_path
from pytest_celestra.db import server
from pytest_celestra.db.database import (
    PROTECTED_DATABASES,
    ensure_database,
    full_disk,
    refuse_plugin_database,
)
from pytest_celestra.db.drift import SchemaDriftError
from pytest_celestra.db.seeding import Seeder, SeedReport, rules_from_file, scenario_from_file
from pytest_celestra.db.server import CONNECT_TIMEOUT, SPACE_PROBLEM, check_room, has_space
from pytest_celestra.errors import CelestraError, ConfigError
from pytest_celestra.rows.scenario import ScenarioSummary, anchor_for, generate_scenario
from pytest_celestra.schema.catalog import ExistingSchema, inspect_schema
from pytest_celestra.schema.models import TABLES_IN_FK_ORDER, Base
from pytest_celestra.urls import (
    MASK,
    error_text,
    host_port,
    mask_text,
    render_url,
    scrub,
    secrets_of,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from datetime import datetime
    from typing import TextIO

    from sqlalchemy.engine import URL

    from pytest_celestra.db.user_scenarios import ScenarioBuilder
    from pytest_celestra.schema.app_rules import SchemaRules
    from pytest_celestra.schema.volumes import Volume

PROG = "celestra-seed"
DEFAULT_DATABASE = "celestra"
EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


def default_data_dir() -> Path:
    """`<user data dir>/pytest-celestra/demo-pgdata`, apart from the plugin's cache so test
    runs never stop or sweep it; the user cache dir where that path has a space (macOS);
    as root, `/var/lib/pytest-celestra/demo-pgdata`, whose parents anyone may enter."""
    if is_root():
        return Path("/var/lib/pytest-celestra/demo-pgdata")
    path = platformdirs.user_data_path("pytest-celestra") / "demo-pgdata"
    if has_space(path):
        path = platformdirs.user_cache_path("pytest-celestra") / "demo-pgdata"
    return path


def _volume(text: str) -> Volume:
    volume: Volume = SPECS["volume"].argparse_type(text)
    try:
        generate_scenario(volume)  # checks feasibility at once; generates nothing yet
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return volume


def _database(text: str) -> str:
    name = text.strip()
    if not name or len(name.encode()) > 63:
        raise argparse.ArgumentTypeError(f"invalid database name {text!r}: use 1 to 63 bytes")
    return name


def _data_dir(text: str) -> Path:
    path = parse_path(text).absolute()
    if has_space(path):
        raise argparse.ArgumentTypeError(f"{str(path)!r}: {SPACE_PROBLEM}")
    return path


def _rules_file(text: str) -> Path:
    path = parse_path(text).absolute()
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{str(path)!r} is not a file")
    return path


class _Parser(argparse.ArgumentParser):
    """Usage errors never echo a password (argparse quotes arguments it does not know)."""

    def error(self, message: str) -> NoReturn:
        super().error(mask_text(message))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Seed a PostgreSQL database with the Celestra scenario (or write it as a "
        "SQL script). Without --dsn or --sql it starts the embedded PostgreSQL in a data "
        "directory that persists, seeds it and leaves it running.",
        epilog=f"Stop the embedded server with: {PROG} stop [--data-dir DIR]. "
        "Exit status: 0 done, 1 failed, 2 bad arguments.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    data = parser.add_argument_group("the scenario")
    data.add_argument(
        "--volume", type=_volume, default=SPECS["volume"].default(), help=SPECS["volume"].help
    )
    data.add_argument(
        "--seed", type=SPECS["seed"].argparse_type, default=SPECS["seed"].default(),
        metavar="INT", help=SPECS["seed"].help,
    )  # fmt: skip
    data.add_argument(
        "--anchor-day", type=SPECS["anchor_day"].argparse_type, metavar="YYYY-MM-DD",
        help="Day the scenario's times are relative to (default: today, UTC).",
    )  # fmt: skip
    where = parser.add_argument_group("where it goes")
    target = where.add_mutually_exclusive_group()
    target.add_argument(
        "--dsn", type=SPECS["dsn"].argparse_type, metavar="URL",
        help="Seed an existing server instead of the embedded one: the database named in "
        "the URL (or --database), created if missing, schema created if absent.",
    )  # fmt: skip
    target.add_argument(
        "--sql", metavar="FILE",
        help="Write the scenario as a PostgreSQL script (schema and COPY data) that "
        "'psql -v ON_ERROR_STOP=1 -f FILE' loads into an empty database; no server needed. "
        "'-' writes to stdout; a name ending in .gz is gzipped.",
    )  # fmt: skip
    where.add_argument(
        "--database", type=_database, metavar="NAME",
        help=f"Database to seed, created if missing (default: {DEFAULT_DATABASE}, or the "
        "one named in --dsn).",
    )  # fmt: skip
    where.add_argument(
        "--data-dir", type=_data_dir, metavar="DIR",
        help=f"Data directory of the embedded server (default: {default_data_dir()}).",
    )  # fmt: skip
    where.add_argument(
        "--reset", action="store_true",
        help="Empty the 15 Celestra tables first (TRUNCATE; no other table is touched and "
        "the database is never dropped). Without it a database holding Celestra rows is "
        "refused.",
    )  # fmt: skip
    data.add_argument(
        "--rules", type=_rules_file, metavar="FILE",
        help="A Python file (e.g. your conftest.py) whose pytest_celestra_schema_rules(rules) "
        "describes what your migrations added; imported without running pytest. With a "
        "server the database's schema is checked against it first (the drift report, exit "
        "1) and the rules' columns, enum labels and tables are filled. With --sql the script "
        "is data only (no DDL): load it into a database whose schema your migrations made.",
    )  # fmt: skip
    data.add_argument(
        "--scenario", metavar="[FILE::]NAME",
        help="Build a scenario of yours (declared with @scenario_builder) instead of a "
        "volume: on its own base (--volume does not apply), with --seed. FILE is the "
        "conftest.py or module that declares it (default: the --rules file, else "
        "./conftest.py). Needs a server (not --sql).",
    )  # fmt: skip
    parser.add_argument(
        "--json", action="store_true",
        help="Print the summary as one JSON object (for scripts) instead of a table.",
    )  # fmt: skip
    return parser


def build_stop_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=f"{PROG} stop",
        description=f"Stop the embedded PostgreSQL that {PROG} left running. Its data stays.",
    )
    parser.add_argument(
        "--data-dir", type=_data_dir, default=None, metavar="DIR",
        help=f"Its data directory (default: {default_data_dir()}).",
    )  # fmt: skip
    parser.add_argument(
        "--force", action="store_true",
        help="Stop it even while a test run uses it (that run's tests then fail).",
    )  # fmt: skip
    return parser


def _check_combinations(parser: argparse.ArgumentParser, options: argparse.Namespace) -> None:
    if options.scenario is not None and options.sql is not None:
        parser.error(
            "--scenario and --sql: a scenario of yours is built by its own code through a "
            "database session, so it needs a server; drop --sql (or --scenario)"
        )
    if options.sql is not None:
        given = {
            "--reset": options.reset,
            "--database": options.database,
            "--data-dir": options.data_dir,
        }
        extra = [flag for flag, value in given.items() if value]
        if extra:
            parser.error(
                f"{', '.join(extra)}: no effect with --sql, whose script loads into whatever "
                "database psql connects to"
            )
        if options.sql == "-" and options.json:
            parser.error("--json and --sql - would both write to stdout; name a --sql FILE")
        problem = sql_target_problem(options.sql)
        if problem is not None:
            parser.error(f"--sql {options.sql}: {problem}")
    if options.dsn is not None and options.data_dir is not None:
        parser.error("--data-dir is for the embedded server: drop it, or drop --dsn")


@dataclass
class Outcome:
    """What one run did: the scenario summary and where it went (for the report)."""

    summary: ScenarioSummary
    target: str  # "embedded", "dsn" or "sql"
    details: dict[str, Any] = field(default_factory=dict)
    total_seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        summary = self.summary
        fields: dict[str, Any] = {
            "volume": self.details.get("volume", summary.volume.name),
            "seed": summary.seed,
            "anchor": summary.anchor.isoformat(),
            "rows": dict(summary.rows),
            "total_rows": summary.total_rows,
            "seconds": round(summary.seconds, 3),
            "total_seconds": round(self.total_seconds, 3),
            "target": self.target,
        }
        keys = (
            "database created_database reset created_tables created_types other_tables "
            "server_version server_address url sqlalchemy_url data_dir stop_command test_runs "
            "sql_file sql_bytes rules_file schema_notes scenario"
        )
        return fields | {key: self.details.get(key) for key in keys.split()}

    def as_text(self) -> str:
        d = self.details
        lines = [str(self.summary), ""]
        if d.get("scenario"):  # not the volume's scenario: say whose
            _, _, rest = lines[0].partition("\n")
            lines[0] = f"Your {d['scenario']}, seed {self.summary.seed}\n{rest}"
        if self.target == "sql":
            where = "stdout" if d["sql_file"] == "-" else d["sql_file"]
            size = f" ({d['sql_bytes'] / 1e6:,.1f} MB)" if d["sql_bytes"] is not None else ""
            rules = d.get("rules_file")
            script = f"the data-only SQL script (rules of {rules})" if rules else "the SQL script"
            into = "a database your migrations made, without rows" if rules else "an empty database"
            lines.append(f"Wrote {script} to {where}{size}. Load it into {into}:")
            shown = shlex.quote(d["sql_file"])
            load = f"psql -v ON_ERROR_STOP=1 -d DATABASE -f {shown}"
            if d["sql_file"].endswith(".gz"):
                load = f"gzip -dc {shown} | psql -v ON_ERROR_STOP=1 -d DATABASE"
            lines.append(f"  {load}" if rules else f"  createdb DATABASE && {load}")
            return "\n".join(lines)
        created = ", created now" if d["created_database"] else ""
        reset = "; its Celestra tables were emptied first" if d["reset"] else ""
        where = (
            f"on the embedded {d['server_version']} in {d['data_dir']}, which keeps running"
            if self.target == "embedded"
            else f"at {d['server_address']} ({d['server_version']})"
        )
        if d.get("test_runs"):
            runs = ", ".join(map(str, d["test_runs"]))
            where += f" until the last test run using it ends (process {runs}), which stops it"
        lines.append(f"Seeded database {d['database']!r}{created}{reset}, {where}.")
        rule_tables = [table for table in self.summary.rows if table not in TABLES_IN_FK_ORDER]
        lines.append(f"  {_created_there(d, rule_tables)}")
        lines.append(f"  psql:        psql {shlex.quote(d['url'])}")
        lines.append(f'  SQLAlchemy:  create_engine("{d["sqlalchemy_url"]}")')
        if MASK in d["url"]:
            lines.append(f"  ({MASK} stands for the password of your --dsn, which is never shown)")
        if self.target == "embedded":
            lines.append(f"  stop it:     {d['stop_command']}")
        if d.get("rules_file"):
            lines.append(f"  rules:       {d['rules_file']}")
        if d.get("scenario"):
            lines.append(f"  scenario:    {d['scenario']}")
        lines += [f"  not breaking: {note}" for note in d.get("schema_notes") or ()]
        return "\n".join(lines)


def server_address(url: URL) -> str:
    """`host:port`, or for a server on a Unix socket the socket's path `DIR/.s.PGSQL.5432`."""
    host = str(url.host or url.query.get("host") or "")
    if host.startswith("/"):
        return f"{host.rstrip('/')}/.s.PGSQL.{url.port or 5432}"
    return host_port(url)


def _created_there(details: Mapping[str, Any], rule_tables: Sequence[str]) -> str:
    """`Created there: 15 tables and 13 enum types of the Celestra schema, beside 3 other
    tables (untouched).`; the tables `--rules` seeded are named apart."""
    tables, types = details["created_tables"], details["created_types"]
    untouched = max(details["other_tables"] - len(rule_tables), 0)
    parts = [f"{', '.join(rule_tables)} (seeded by your rules)"] if rule_tables else []
    if untouched:
        parts.append(f"{untouched} other table{'s' * (untouched != 1)} (untouched)")
    beside = f", beside {' and '.join(parts)}" if parts else ""
    if not tables and not types:
        return f"Created there: nothing, the Celestra schema was there already{beside}."
    return (
        f"Created there: {len(tables)} table{'s' * (len(tables) != 1)} and {len(types)} "
        f"enum type{'s' * (len(types) != 1)} of the Celestra schema{beside}."
    )


class ProgressBars:
    """One bar per table on a terminal, redrawn in place (`progress` callback of
    [`seed_scenario`][pytest_celestra.rows.scenario.seed_scenario])."""

    def __init__(self, stream: TextIO, targets: Mapping[str, int]) -> None:
        self.stream = stream
        self.targets = dict(targets)
        self.done = dict.fromkeys(targets, 0)
        self.drawn = False
        self.last = 0.0
        columns = shutil.get_terminal_size((80, 24)).columns
        self.name_width = max(map(len, targets))
        self.count_width = len(f"{max(targets.values(), default=0):,}")
        self.bar_width = max(10, min(40, columns - self.name_width - 2 * self.count_width - 10))

    def __call__(self, table: str, rows: int) -> None:
        self.done[table] = rows
        now = time.monotonic()
        if now - self.last >= 0.05:  # a redraw per chunk is plenty; cap it at 20 a second
            self.last = now
            self.draw()

    def line(self, table: str) -> str:
        done, target = self.done[table], self.targets[table]
        filled = self.bar_width if target == 0 else self.bar_width * min(done, target) // target
        bar = "=" * filled + " " * (self.bar_width - filled)
        width = self.count_width
        return f"  {table:<{self.name_width}} [{bar}] {done:>{width},}/{target:>{width},}"

    def draw(self) -> None:
        up = f"\x1b[{len(self.targets)}F" if self.drawn else ""
        self.stream.write(up + "".join(f"{self.line(t)}\x1b[K\n" for t in self.targets))
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        self.draw()
        self.stream.write("\n")
        self.stream.flush()


def _on_terminal() -> bool:
    return sys.stdout.isatty() and sys.stderr.isatty() and os.environ.get("TERM") != "dumb"


def seed_database(
    url: URL,
    volume: Volume,
    *,
    seed: int,
    anchor: datetime,
    reset: bool = False,
    progress: Callable[[str, int], None] | None = None,
    rules: SchemaRules | None = None,
    scenario: ScenarioBuilder | None = None,
) -> tuple[SeedReport, ExistingSchema]:
    """Create the schema where absent and seed it, in one transaction. Refuses a database
    holding a table or enum type of a Celestra name that is not Celestra's, and one whose
    Celestra tables hold rows unless `reset` empties them (only them) first. Returns the
    seed's report (the summary, and the differences that do not break) and what the
    database held before (its `missing_*` were created).

    The rows are written by the plugin's [`Seeder`][pytest_celestra.db.seeding.Seeder] of
    `rules` (the scenario of `volume`, or your `scenario`), after the drift check."""
    engine = create_engine(
        url.set(drivername="postgresql+psycopg"),
        poolclass=NullPool,
        connect_args={"connect_timeout": CONNECT_TIMEOUT},
    )
    try:
        with engine.begin() as connection:
            # Two seeds of one database at once: the second waits, then finds the rows.
            connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": PROG})
            existing = inspect_schema(connection)
            if existing.conflicts:
                raise CelestraError(
                    f"database {url.database!r} at {server_address(url)} has tables or types "
                    f"named like Celestra's that are not Celestra's: "
                    f"{'; '.join(existing.conflicts)}. Nothing was written (--reset would not "
                    f"help: {PROG} never changes or empties a table that is not Celestra's). "
                    "Seed another database with --database NAME (created if missing), or "
                    "rename or drop those yourself"
                )
            Base.metadata.create_all(connection)
            quoted = [connection.dialect.identifier_preparer.quote(t) for t in TABLES_IN_FK_ORDER]
            tables = ", ".join(quoted)
            holding = text(" UNION ALL ".join(  # cheap at any size: no counting
                f"SELECT {i} WHERE EXISTS (SELECT FROM {table})" for i, table in enumerate(quoted)
            ))  # fmt: skip
            filled = [TABLES_IN_FK_ORDER[i] for i in connection.execute(holding).scalars()]
            if filled and not reset:
                raise CelestraError(
                    f"database {url.database!r} at {server_address(url)} already holds Celestra "
                    f"data (in {len(filled)} of its 15 tables, {filled[0]} first); nothing "
                    "was written. Run again with --reset to empty the 15 Celestra tables "
                    "first (no other table is touched), or seed another database with "
                    "--database NAME"
                )
            if reset:
                try:
                    connection.execute(text(f"TRUNCATE {tables}"))
                except DBAPIError as error:
                    if not isinstance(error.orig, psycopg.errors.FeatureNotSupported):
                        raise
                    # Another table has a foreign key to one of ours; CASCADE would empty it.
                    raise CelestraError(
                        f"--reset cannot empty the Celestra tables: {error_text(error.orig)}. "
                        f"{PROG} never empties other tables: empty or drop that table yourself "
                        "first, or seed another database with --database NAME"
                    ) from None
            seeder = Seeder(rules)
            try:
                if scenario is None:
                    report = seeder.seed(
                        connection, volume, seed=seed, anchor=anchor, progress=progress
                    )
                else:
                    report = seeder.build(connection, scenario, seed=seed, anchor=anchor)
            except SchemaDriftError as error:
                raise SchemaDriftError(f"{error}\n{_drift_remedy(existing, rules)}") from None
            connection.execute(text(f"ANALYZE {tables}"))
    finally:
        engine.dispose()
    return report, existing


def _drift_remedy(existing: ExistingSchema, rules: SchemaRules | None) -> str:
    """What to do about a drift report the command met, beyond the report's own lines."""
    if existing.missing_tables and rules is not None:
        # The rules describe a migrated schema, and this one is the built-in schema just made.
        return (
            f"{PROG} made the missing Celestra tables from the built-in schema, without your "
            "migrations (it does not run pytest_celestra_create_schema), and rolled them back. "
            "Migrate the database first (e.g. alembic upgrade head), then seed it with --rules."
        )
    if rules is None:
        return f"Then pass that file to {PROG} with --rules FILE (e.g. --rules conftest.py)."
    return "Teach those in the file's pytest_celestra_schema_rules, or migrate the database."


def write_sql(
    path: str,
    volume: Volume,
    *,
    seed: int,
    anchor: datetime,
    progress: Callable[[str, int], None] | None = None,
    rules: SchemaRules | None = None,
) -> tuple[ScenarioSummary, int | None]:
    """Write the script to `path` (`-`: stdout; `.gz`: gzipped); the summary and the file's
    size (None unless a regular file, which is written whole or not at all; see
    [`sql_target_kind`][pytest_celestra.cli.sql_target_kind]). With `rules`, data only."""
    started = time.perf_counter()
    seeder = Seeder(rules)

    def write(out: TextIO) -> dict[str, int]:
        return seeder.write_script(out, volume, seed=seed, anchor=anchor, progress=progress)

    size: int | None = None
    if path == "-":
        counts = write(sys.stdout)
        sys.stdout.flush()
    else:
        whole = sql_target_kind(path) == "file"
        counts = _write_file(Path(path), write, whole=whole)
        size = Path(path).stat().st_size if whole else None
    seconds = time.perf_counter() - started
    return ScenarioSummary(volume, seed, anchor, MappingProxyType(counts), seconds), size


def sql_target_problem(path: str) -> str | None:
    """Why `--sql PATH` cannot be written (a directory, a disk, a socket), or None."""
    if path == "-":
        return None
    try:
        mode = os.stat(path).st_mode  # through a symlink: what it points to
    except OSError:
        return None  # nothing there (or a dangling symlink): created when written
    if stat.S_ISDIR(mode):
        return "it is a directory; name a file in it"
    if stat.S_ISBLK(mode):
        return "it is a block device (a disk); name a file, a FIFO or a character device"
    if stat.S_ISSOCK(mode):
        return "it is a socket; name a file or a FIFO"
    return None


def sql_target_kind(path: str) -> str:
    """How `--sql PATH` is written: `file` (a regular file or a new name: renamed over at
    the end) or `stream` (a symlink, FIFO or character device: written through)."""
    try:
        if os.path.islink(path) or not stat.S_ISREG(os.stat(path).st_mode):
            return "stream"
    except OSError:  # nothing there yet
        pass
    return "file"


def _open_script(path: Path) -> Any:
    """A text stream writing the script to `path` (gzipped for a `.gz` name)."""
    if path.name.endswith(".gz"):
        return gzip.open(path, "wt", encoding="utf-8", newline="\n", compresslevel=6)
    return path.open("w", encoding="utf-8", newline="\n")


def _write_file(
    target: Path, write: Callable[[TextIO], dict[str, int]], *, whole: bool
) -> dict[str, int]:
    """`whole`: write a regular file beside `target` and rename it over at the end, whole or
    not at all (an existing file keeps its permissions). Else write into what `target` is
    (a FIFO, a device, a symlink's target), never replacing it."""
    written = target.with_name(target.name + ".partial") if whole else target
    try:
        with _open_script(written) as out:
            counts = write(out)
        if whole:
            if target.exists():
                shutil.copymode(target, written)
            written.replace(target)
    except BaseException as error:
        if whole:
            written.unlink(missing_ok=True)
        if isinstance(error, OSError) and not isinstance(error, BrokenPipeError):
            message = f"cannot write the SQL script to {target}: {error.strerror or error}"
            raise CelestraError(message) from None
        raise
    return counts


def run_seed(options: argparse.Namespace) -> Outcome:
    started = time.perf_counter()
    volume: Volume = options.volume
    anchor = anchor_for(options.anchor_day)
    on_terminal = _on_terminal() and options.sql != "-"
    rules = rules_from_file(options.rules) if options.rules is not None else None
    rules_file = None if options.rules is None else str(options.rules)
    options.scenario_builder = None
    if options.scenario is not None:
        default = options.rules or Path("conftest.py").absolute()
        options.scenario_builder = scenario_from_file(options.scenario, default)
    # The rules' tables have no bar: with rules or a scenario, the summary only.
    plain = rules is None and options.scenario_builder is None
    bars = ProgressBars(sys.stderr, volume.counts) if on_terminal and plain else None
    if options.sql is not None:
        if bars:
            bars.draw()
        summary, size = write_sql(
            options.sql, volume, seed=options.seed, anchor=anchor, progress=bars, rules=rules
        )
        if bars:
            bars.close()
        written = {"sql_file": options.sql, "sql_bytes": size, "rules_file": rules_file}
        return Outcome(summary, "sql", written, time.perf_counter() - started)
    if options.dsn is not None:
        given = make_url(options.dsn)
        url = given.set(database=options.database or given.database or DEFAULT_DATABASE)
        return _seed_server(options, url, anchor, {}, bars, started, rules)
    data_dir = options.data_dir or default_data_dir()
    if on_terminal:
        print(f"Starting the embedded PostgreSQL in {data_dir} ...", file=sys.stderr, flush=True)
    maintenance = server.start_embedded(data_dir, "--data-dir", keep_running=True).url
    url = maintenance.set(database=options.database or DEFAULT_DATABASE)
    stop = f"{PROG} stop"
    if data_dir != default_data_dir():
        stop += f" --data-dir {shlex.quote(str(data_dir))}"
    details: dict[str, Any] = {"data_dir": str(data_dir), "stop_command": stop}
    try:
        outcome = _seed_server(options, url, anchor, details, bars, started, rules)
        # Test runs on the same data directory (the plugin's): the last to end stops it.
        outcome.details["test_runs"] = server.live_users(data_dir)
        return outcome
    except (CelestraError, DBAPIError, psycopg.Error) as error:
        raise CelestraError(
            f"{failure_text(error)}. The embedded PostgreSQL in {data_dir} is left running; "
            f"stop it with: {stop}"
        ) from None


def _seed_server(
    options: argparse.Namespace,
    url: URL,
    anchor: datetime,
    details: dict[str, Any],
    bars: ProgressBars | None,
    started: float,
    rules: SchemaRules | None,
) -> Outcome:
    """Seed database `url` (created if missing) of a running server."""
    database = str(url.database)
    if database in PROTECTED_DATABASES:
        raise CelestraError(
            f"refusing to seed {database!r}, a database PostgreSQL itself relies on; name "
            "the database for the scenario with --database NAME (created if missing)"
        )
    refuse_plugin_database(url)
    scenario = options.scenario_builder
    volume = options.volume if scenario is None else scenario.volume or options.volume
    check_room(url, volume, copies=1)
    created, version = ensure_database(url, f"seeded by {PROG} {__version__}")
    if bars:
        print(f"Seeding database {database!r} at {server_address(url)}:", file=sys.stderr)
        bars.draw()
    data_directory = server.data_directory_at(url)  # to tell a full disk from a lost server
    try:
        report, existing = seed_database(
            url, volume, seed=options.seed, anchor=anchor, reset=options.reset,
            progress=bars, rules=rules, scenario=scenario,
        )  # fmt: skip
    except (DBAPIError, psycopg.Error) as error:
        cause = error.orig if isinstance(error, DBAPIError) and error.orig else error
        full = full_disk(url, cause, data_directory)
        if full is None:
            raise
        raise CelestraError(_disk_full_text(url, full, database if created else None)) from None
    if bars:
        bars.close()
    details |= {
        "database": database,
        "created_database": created,
        "reset": options.reset,
        "created_tables": list(existing.missing_tables),
        "created_types": list(existing.missing_types),
        "other_tables": existing.other_tables,
        "server_version": version,
        "server_address": server_address(url),
        "url": render_url(url),
        "sqlalchemy_url": render_url(url, driver="postgresql+psycopg"),
        "rules_file": None if options.rules is None else str(options.rules),
        "schema_notes": report.notes,
        "scenario": None if scenario is None else scenario.describe(),
    }
    if scenario is not None:  # its base's volume, if it has one
        details["volume"] = None if scenario.volume is None else scenario.volume.name
    target = "dsn" if options.dsn is not None else "embedded"
    return Outcome(report.summary, target, details, time.perf_counter() - started)


def _disk_full_text(url: URL, full: str, created: str | None) -> str:
    """The error for a seed that filled the server's disk; drops the database created for
    it (`created`), empty as the seed was one transaction."""
    dropped = ""
    if created is not None:
        try:
            with server.connect(url.set(database="postgres"), autocommit=True) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(created)))
            dropped = f" Database {created!r}, created for it, was dropped again."
        except psycopg.Error:
            dropped = (
                f" Database {created!r}, created for it, could not be dropped (the server "
                "is gone); drop it once the server is back."
            )
    return (
        f"{full}. Nothing was written (the seed is one transaction).{dropped} Free some space "
        "on that disk, or use a smaller --volume"
    )


def run_stop(options: argparse.Namespace) -> int:
    data_dir = options.data_dir or default_data_dir()
    if server.stop_embedded(data_dir, force=options.force):
        print(f"Stopped the embedded PostgreSQL in {data_dir} (its data stays).")
    else:
        print(f"The embedded PostgreSQL in {data_dir} is not running.")
    return 0


def failure_text(error: BaseException) -> str:
    """The one line a failure of ours or of the driver becomes."""
    if isinstance(error, DBAPIError | psycopg.Error):
        return error_text(getattr(error, "orig", None) or error)
    return str(error)


def _secrets_in(arguments: Sequence[str]) -> frozenset[str]:
    """Every password in the command line (`--dsn URL` or `--dsn=URL`), to scrub."""
    found: set[str] = set()
    for argument in arguments:
        found |= secrets_of(argument) | secrets_of(argument.partition("=")[2])
    return frozenset(found)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `celestra-seed` and `python -m pytest_celestra`; the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    secrets = _secrets_in(arguments)
    try:
        if arguments[:1] == ["stop"]:
            return run_stop(build_stop_parser().parse_args(arguments[1:]))
        parser = build_parser()
        options = parser.parse_args(arguments)
        _check_combinations(parser, options)
        outcome = run_seed(options)
    except BrokenPipeError:  # e.g. --sql - | head
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - so the exit flush stays quiet
        return EXIT_ERROR
    except (CelestraError, DBAPIError, psycopg.Error, OSError) as error:
        print(f"{PROG}: error: {mask_text(scrub(failure_text(error), secrets))}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:
        # A bug of ours: its traceback helps, but never with a password in it.
        traceback = "".join(format_exception(*sys.exc_info()))
        print(mask_text(scrub(traceback, secrets)), file=sys.stderr, end="")
        return EXIT_ERROR
    shown = json.dumps(outcome.as_json(), indent=2) if options.json else outcome.as_text()
    print(shown, file=sys.stderr if options.sql == "-" else sys.stdout)
    return 0
