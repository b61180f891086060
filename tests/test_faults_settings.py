"""Issue 8, section 4: every impossible setting is a usage error, at start, from every
channel; memory stays flat at any volume; Ctrl-C stops a seed and leaves nothing behind.

Each "Seen" of the issue is reproduced: ``small,companies=0`` (was a ZeroDivisionError),
``small,knowledge_types=50`` and ``small,audit_change_logs=100000`` (were accepted, then
failed the first seeded test), ``x99999999`` (was accepted and grew memory to GBs), a
5000-digit seed (was "use a non-negative integer"), and a seed interrupted with Ctrl-C.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from helpers import INNER_TIMEOUT, sigint_as_in_a_terminal, templates_with_seed

from pytest_celestra import cli
from pytest_celestra.config import MAX_SEED, SPECS, resolve_config
from pytest_celestra.db.server import data_directory_at, disk_free, room_problem
from pytest_celestra.errors import ConfigError
from pytest_celestra.rows import scenario
from pytest_celestra.rows.steps import draw
from pytest_celestra.schema.models import TABLES_IN_FK_ORDER
from pytest_celestra.schema.volumes import (
    BYTES_PER_ROW,
    MAX_TOTAL_ROWS,
    Volume,
    feasibility_problem,
    largest_multiplier,
)
from pytest_celestra.urls import libpq_url

if TYPE_CHECKING:
    from pathlib import Path

    from pytest_celestra.db.database import DatabaseManager

#: Each impossible volume of the issue -> what its message must say.
SEEN_VOLUMES = {
    "small,companies=0": "companies must be at least 1",
    "small,knowledge_types=50": "use knowledge_types <= 12",
    "small,audit_change_logs=100000": "needs at least 33334 audit_logs",
    "x99999999": f"more than the {MAX_TOTAL_ROWS:,} rows a volume may hold",
    "x" + "9" * 5000: "a count of 5,000 digits",
    "small,users=" + "9" * 5000: "a count of 5,000 digits",
    # Issue 17: digits other than ASCII's (int() reads them), a table counted twice.
    "x\uff11\uff10": "use small, medium or large; xN",
    "small,users=\uff12\uff10": "(a count in the digits 0-9)",
    "small,users=20,users=30": "users is counted twice (users=20 and users=30)",
}
HUGE_SEED = "9" * 5000
SEED_BOUND = f"use an integer from 0 to {MAX_SEED} (2**63 - 1)"


# --- one check, every channel -------------------------------------------------------


@pytest.mark.parametrize("text", SEEN_VOLUMES)
def test_each_impossible_volume_is_refused_on_every_channel_with_its_reason(text):
    reason = SEEN_VOLUMES[text]
    spec = SPECS["volume"]
    escaped = re.escape(reason)
    with pytest.raises(ConfigError, match=f"^environment variable {spec.env}: .*{escaped}"):
        resolve_config({}, {}, {spec.env: text})
    with pytest.raises(ConfigError, match=f"^ini option {spec.ini}: .*{escaped}"):
        resolve_config({}, {"volume": text}, {})
    with pytest.raises(Exception, match=escaped) as from_option:
        spec.argparse_type(text)  # what --celestra-volume runs: argparse makes it exit 4
    assert type(from_option.value).__name__ == "ArgumentTypeError"
    assert len(str(from_option.value)) < 400, "a long value is cut, not echoed"


def test_a_huge_seed_gets_the_real_bound():
    for text in (HUGE_SEED, str(MAX_SEED + 1), "-1", "abc"):
        with pytest.raises(ConfigError, match=re.escape(SEED_BOUND)) as refused:
            resolve_config({}, {}, {"CELESTRA_SEED": text})
        assert len(str(refused.value)) < 300
    assert resolve_config({}, {}, {"CELESTRA_SEED": str(MAX_SEED)}).seed.value == MAX_SEED


def _edge_counts(rng: random.Random) -> dict[str, int]:
    """Random counts at or next to the edges of the rules (some just outside them)."""

    def near(low: int, high: int) -> int:
        high = max(low, high)
        return rng.choice((low, high, rng.randint(low, high), low - 1, high + 1))

    c: dict[str, int] = {"companies": rng.randint(0, 4), "knowledge_types": near(1, 12)}
    c["users"] = near(c["companies"] + 1, c["companies"] + 12)
    c["agents"] = near(c["companies"], c["companies"] + 4)
    c["knowledge_bases"] = near(c["companies"], c["companies"] + 4)
    pairs = c["agents"] * c["knowledge_bases"] // max(c["companies"], 1)
    c["agent_knowledge_bases"] = near(0, pairs)
    c["failed_logins"] = rng.randint(0, 12)
    c["user_lockouts"] = near(0, c["failed_logins"])
    c["audit_logs"] = rng.randint(0, 12)
    c["audit_change_logs"] = near(0, 3 * c["audit_logs"])
    for table in TABLES_IN_FK_ORDER:
        c.setdefault(table, rng.choice((0, 1, 2, 7)))
    return {table: max(0, n) for table, n in c.items()}


def test_every_volume_the_check_accepts_is_generated_exactly():
    """The check is the only one: whatever it accepts, the generator makes, row for row
    (random volumes at the rules' edges); what it refuses, Volume refuses with the reason."""
    rng = random.Random(8)
    accepted = refused = 0
    for _ in range(160):
        counts = _edge_counts(rng)
        problem = feasibility_problem(counts)
        if problem is not None:
            refused += 1
            with pytest.raises(ConfigError, match=re.escape(problem)):
                Volume("edge", counts)
            continue
        accepted += 1
        made = dict.fromkeys(TABLES_IN_FK_ORDER, 0)
        for table, rows in scenario.generate_scenario(Volume("edge", counts), seed=accepted):
            made[table] += len(rows)
        assert made == counts
    assert accepted >= 20
    assert refused >= 10


def test_the_ceiling_is_the_largest_multiplier():
    top = largest_multiplier()
    assert Volume.parse(f"x{top}").total_rows <= MAX_TOTAL_ROWS
    with pytest.raises(ConfigError, match=f"about .* on disk.*\\(x{top}\\)"):
        Volume.parse(f"x{top + 1}")


# --- inner runs: exit 4 at start, a collection error for the marker -----------------

DATABASE_TEST = "def test_seeded(celestra_seeded_db):\n    assert False, 'never reached'\n"


@pytest.mark.parametrize(
    ("channel", "text"),
    [
        # The ini file goes the environment's way (resolve_config, tested above).
        ("option", "small,companies=0"),
        ("env", "small,audit_change_logs=100000"),
    ],
)
def test_inner_run_stops_at_start_with_exit_4(
    celestra_pytester, run_inner, monkeypatch, channel, text
):
    celestra_pytester.makepyfile(DATABASE_TEST)
    monkeypatch.delenv("CELESTRA_VOLUME")
    args: list[str] = []
    if channel == "option":
        args.append(f"--celestra-volume={text}")
    elif channel == "ini":
        celestra_pytester.makeini(f"[pytest]\ncelestra_volume = {text}\n")
    else:
        monkeypatch.setenv("CELESTRA_VOLUME", text)
    result = run_inner(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    output = result.stderr.str()
    where = {
        "option": "argument --celestra-volume",
        "ini": "ini option celestra_volume",
        "env": "environment variable CELESTRA_VOLUME",
    }[channel]
    assert where in output
    assert SEEN_VOLUMES[text] in output
    assert "Traceback" not in output + result.stdout.str()


def test_marker_with_an_impossible_volume_is_a_collection_error(celestra_pytester, run_inner):
    celestra_pytester.makepyfile(
        "import pytest\n"
        + "".join(
            f"@pytest.mark.celestra(volume={text!r})\ndef test_{i}(celestra_seeded_db):\n    pass\n"
            for i, text in enumerate(list(SEEN_VOLUMES)[:4])
        )
        + "@pytest.mark.celestra(seed=10**5000)\ndef test_seed(celestra_seeded_db):\n    pass\n"
    )
    result = run_inner("-p", "no:randomly")
    assert result.ret == pytest.ExitCode.INTERRUPTED  # collection errors stop the run
    output = result.stdout.str()
    assert "1 error" in output
    for reason in list(SEEN_VOLUMES.values())[:4]:
        assert reason in output
    assert "<an integer of about 5,001 digits>" in output
    assert "ZeroDivisionError" not in output


# --- celestra-seed: exit 2 ------------------------------------------------------------


@pytest.mark.parametrize("text", SEEN_VOLUMES)
def test_celestra_seed_refuses_each_impossible_volume_with_exit_2(capsys, text):
    with pytest.raises(SystemExit) as exited:
        cli.main(["--volume", text, "--sql", "-"])
    assert exited.value.code == cli.EXIT_USAGE
    assert SEEN_VOLUMES[text] in capsys.readouterr().err


def test_celestra_seed_gives_the_seed_bound(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["--seed", HUGE_SEED, "--sql", "-"])
    assert exited.value.code == cli.EXIT_USAGE
    error = capsys.readouterr().err
    assert SEED_BOUND in error
    assert len(error) < 1500


# --- flat memory: every table streams in chunks -------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "x3",
        # Everything in one company: per-company loops must chunk inside a company.
        "x3,companies=1",
        "small,companies=40,users=300,agents=60,knowledge_bases=60",
        "small,failed_logins=90,user_lockouts=60,password_history=200,users=21",
    ],
)
def test_no_chunk_exceeds_the_chunk_limit(monkeypatch, text):
    # The generator's one chunker reads its limit from its own module.
    monkeypatch.setattr(draw, "CHUNK_ROWS", 16)
    volume = Volume.parse(text)
    made = dict.fromkeys(TABLES_IN_FK_ORDER, 0)
    for table, rows in scenario.generate_scenario(volume):
        # knowledge_types is bounded by its catalogue (12 rows), never by the volume.
        assert len(rows) <= 16 or table == "knowledge_types", (table, len(rows))
        made[table] += len(rows)
    assert made == dict(volume.counts)


@pytest.mark.slow
def test_the_largest_volume_starts_in_chunks():
    """The first chunks of the largest volume (76,330 companies, once one chunk) come
    in chunks of CHUNK_ROWS; nothing else of it is generated."""
    chunks = scenario.generate_scenario(f"x{largest_multiplier()}")
    try:
        first = [next(chunks) for _ in range(3)]
    finally:
        chunks.close()
    assert [(table, len(rows)) for table, rows in first] == [("companies", scenario.CHUNK_ROWS)] * 3


# --- room on the server's disk ------------------------------------------------------


def test_a_volume_larger_than_the_free_disk_is_refused_with_the_estimate():
    volume = Volume.parse("x1000")
    problem = room_problem(volume, free=100_000_000)
    assert problem is not None
    assert f"{volume.total_rows:,} rows at about {BYTES_PER_ROW} bytes each" in problem
    # Two copies (802 MB), as much write-ahead log, 64 MB and a tenth: 1.7 GB.
    assert "needs about 1.7 GB: 2 copies of 1,310,010 rows" in problem
    assert "at about 300 bytes each (802.0 MB), their write-ahead log (as much again)" in problem
    assert "100.0 MB free" in problem
    capped = room_problem(volume, free=100_000_000, max_wal=1024**3)
    assert capped is not None
    assert "up to the server's max_wal_size of 1.1 GB" in capped
    assert room_problem(volume, free=2_000_000_000) is None
    assert room_problem(volume, free=None) is None  # unknown: the ceiling still holds
    assert room_problem(Volume.parse("small"), free=100_000_000) is None
    # One copy is one copy (the empty schema under a scenario of yours said "1 copies").
    one = room_problem(None, free=1, copies=1)
    assert one is not None
    assert "the empty schema needs about" in one
    assert ": 1 copy" in one
    assert "1 copies" not in one


@pytest.mark.server_path
def test_free_disk_is_read_from_a_local_server(suite_databases: DatabaseManager):
    url = suite_databases.server.url
    free = disk_free(data_directory_at(url))
    if url.host not in ("localhost", "127.0.0.1", "::1", None):
        assert free is None
        return
    with psycopg.connect(libpq_url(url)) as connection:
        row = connection.execute("SELECT current_setting('data_directory', true)").fetchone()
    if row is None or not row[0] or not os.path.isdir(row[0]):
        assert free is None  # a role that may not see it, or a server elsewhere
    else:
        assert free is not None
        assert free > 0


# --- Ctrl-C ---------------------------------------------------------------------------


def _wait_for(
    admin: psycopg.Connection[Any], process: subprocess.Popen[str], query: str, *params: Any
) -> Any:
    """The first row of ``query`` once it has one (for up to a minute); else ``process``
    is interrupted, not left running, and the failure shows its output."""
    for _ in range(600):
        row = admin.execute(query, params).fetchone()
        if row is not None:
            return row
        time.sleep(0.1)
    _, output = _interrupt(process)
    raise AssertionError(f"nothing came of {query}; the run said:\n{output}")


def _interrupt(process: subprocess.Popen[str]) -> tuple[float, str]:
    """SIGINT to the process group (what Ctrl-C in a terminal does); seconds until it
    exited, and its output."""
    sent = time.monotonic()
    os.killpg(process.pid, signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    return time.monotonic() - sent, output


@pytest.mark.slow
def test_ctrl_c_stops_celestra_seed_and_writes_nothing(admin, suite_databases, tmp_path):
    name = f"celestra_ctrlc_{os.getpid()}"
    admin.execute(f"CREATE DATABASE {name}")
    app = f"celestra-ctrlc-{os.getpid()}"
    try:
        url = libpq_url(suite_databases.server.url_for(name))
        process = subprocess.Popen(
            [sys.executable, "-m", "pytest_celestra", "--dsn", url, "--volume", "x2000"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PGAPPNAME": app},
            start_new_session=True,
            preexec_fn=sigint_as_in_a_terminal,
        )
        _wait_for(
            admin,
            process,
            "SELECT 1 FROM pg_stat_activity WHERE application_name = %s AND query LIKE 'COPY%%'",
            app,
        )
        seconds, output = _interrupt(process)
        print(f"celestra-seed x2000: exited {seconds:.2f} s after SIGINT")
        # Stopped, not finished: a seed that went on after Ctrl-C would exit 0 with rows
        # written; a hang is communicate's timeout. The seconds are printed, not asserted.
        assert process.returncode == cli.EXIT_INTERRUPTED, output
        assert "interrupted; nothing was written" in output
        with psycopg.connect(url) as target:
            tables = target.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            assert tables.fetchone() == (0,)
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


#: A conftest whose hashes cost ~250 ms each: the scenario's thread hashing passwords ahead
#: (24 of them) is sure to be in bcrypt when Ctrl-C lands and when the run exits.
COSTLY_HASHES = "from pytest_celestra.rows import passwords\n\npasswords.configure('bcrypt', 12)\n"


@pytest.mark.slow
@pytest.mark.parametrize("conftest", [None, COSTLY_HASHES], ids=["default", "costly-hashes"])
def test_ctrl_c_stops_a_template_build_and_drops_it(
    admin, celestra_pytester, monkeypatch, tmp_path: Path, conftest
):
    """An inner pytest run building an x2000 template is interrupted: its build database
    is dropped, no template comes of it (a seed that went on after Ctrl-C would finish
    one), and the run ends as interrupted. With costly hashes, the hashing thread is still
    at work then: left running (a daemon, its generator never closed), the interpreter
    ended it at exit inside bcrypt and the run died of SIGABRT (exit -6, "FATAL: exception
    not rethrown"); at the default cost only if the hashes lagged seconds behind."""
    celestra_pytester.makepyfile(DATABASE_TEST)
    if conftest is not None:
        celestra_pytester.makeconftest(conftest)
    app = f"celestra-ctrlc-{os.getpid()}"
    env = {**os.environ, "PGAPPNAME": app, "CELESTRA_VOLUME": "x2000"}
    seed = random.randrange(10**9)
    env["CELESTRA_SEED"] = str(seed)  # a template of this test's own
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"],
        cwd=celestra_pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
        preexec_fn=sigint_as_in_a_terminal,
    )
    (build,) = _wait_for(
        admin,
        process,
        "SELECT datname FROM pg_stat_activity WHERE application_name = %s "
        "AND datname LIKE 'celestra_build_%%' AND query LIKE 'COPY%%'",
        app,
    )
    sent = time.monotonic()
    os.killpg(process.pid, signal.SIGINT)
    output, _ = process.communicate(timeout=INNER_TIMEOUT)
    # About 1 s on an idle machine (most of it DROP DATABASE of ~100 MB). Printed, not
    # asserted: a bound in seconds fails on a busy machine (it did, at 5.1 s).
    print(f"pytest x2000 build: exited {time.monotonic() - sent:.2f} s after SIGINT")
    gone = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (build,)).fetchone()
    # Each with the inner run's output: a failure seen once under -n 2 left no clue.
    assert gone is None, f"{build} is still there; the run said:\n{output}"
    assert templates_with_seed(admin, seed) == {}, output
    assert process.returncode == pytest.ExitCode.INTERRUPTED, output
    assert "KeyboardInterrupt" in output, output
