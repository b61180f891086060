"""Benchmark of your own scenarios (``@scenario_builder``): 10,000 users with their sessions.

    python benchmarks/bench_scenarios.py [--users 10000] [--tests 40] [--dsn URL]

The scenario is made with ``bulk_create`` (a company, ``--users`` users, one session each)
on the empty schema. Real pytest subprocesses measure, with a seed of this run's own (so
the first build is cold):

* **first build**: the seconds the run's summary gives for the scenario's template;
* **warm time to the first test**: from the session's start to the end of the first
  test, in a second run that finds the template (beside the same for the run's volume,
  ``small``, and for a test that builds the data itself);
* **per-test cost**: the median of tests 2..N, set-up to teardown, each running one
  trivial query (the first test checks the rows): the scenario in ``celestra_seeded_db`` and in
  ``celestra_transactional_db``, the volume ``small`` in both, and the
  same 10,000 users and sessions built by ``bulk_create`` in every test (``celestra_session``).

Figures are printed with the machine's load average; nothing is asserted. The templates
this run built are dropped at the end (only those, found by this run's seed).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFTEST = """
import json
import os
import time
from pathlib import Path

import factory
import pytest

from pytest_celestra.rows.factories import CompanyFactory, UserFactory, UserSessionFactory
from pytest_celestra.db.user_scenarios import scenario_builder

USERS = {users}


def build_users(session):
    company = CompanyFactory(name="Bench")
    users = UserFactory.bulk_create(USERS, company=company)
    UserSessionFactory.bulk_create(len(users), user=factory.Iterator(users.objects()))


users_with_sessions = scenario_builder(name="users_with_sessions")(build_users)

TIMES = {{"tests": []}}


def pytest_sessionstart(session):
    TIMES["start"] = time.perf_counter()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    started = time.perf_counter()
    try:
        return (yield)
    finally:
        ended = time.perf_counter()
        TIMES["tests"].append(ended - started)
        TIMES.setdefault("first_done", ended - TIMES["start"])


def pytest_sessionfinish(session):
    Path(os.environ["BENCH_TIMES"]).write_text(json.dumps(TIMES))
"""

# The first test of each run checks the data; the others run one trivial query, so what
# is measured is the fixture's cost, not a scan of 10,000 rows.
TESTS = {
    "scenario_rollback": """
import pytest
from sqlalchemy import text

@pytest.mark.celestra(scenario="users_with_sessions")
@pytest.mark.parametrize("n", range({tests}))
def test_read(celestra_seeded_db, n):
    query = "SELECT count(*) FROM users" if n == 0 else "SELECT {users}"
    assert celestra_seeded_db.execute(text(query)).scalar() == {users}
""",
    "scenario_transactional": """
import pytest
from sqlalchemy import text

@pytest.mark.celestra(scenario="users_with_sessions")
@pytest.mark.parametrize("n", range({tests}))
def test_read(celestra_transactional_db, n):
    query = "SELECT count(*) FROM users" if n == 0 else "SELECT {users}"
    assert celestra_transactional_db.execute(text(query)).scalar() == {users}
""",
    "volume_rollback": """
import pytest
from sqlalchemy import text

@pytest.mark.parametrize("n", range({tests}))
def test_read(celestra_seeded_db, n):
    assert celestra_seeded_db.execute(text("SELECT 1")).scalar() == 1
""",
    "volume_transactional": """
import pytest
from sqlalchemy import text

@pytest.mark.parametrize("n", range({tests}))
def test_read(celestra_transactional_db, n):
    assert celestra_transactional_db.execute(text("SELECT 1")).scalar() == 1
""",
    "built_in_every_test": """
import pytest
from sqlalchemy import text

from conftest import build_users

@pytest.mark.parametrize("n", range({few}))
def test_read(celestra_session, n):
    build_users(celestra_session)
    assert celestra_session.execute(text("SELECT count(*) FROM users")).scalar() == {users}
""",
}


def run_pytest(folder: Path, module: str, seed: int, env: dict[str, str]) -> dict[str, object]:
    """One pytest run of `module`; its timings, and its output."""
    times = folder / "times.json"
    times.unlink(missing_ok=True)
    command = [
        sys.executable, "-m", "pytest", f"{module}.py", "-q", "-p", "no:randomly",
        "-p", "no:cacheprovider", "--celestra-volume=small", f"--celestra-seed={seed}",
        "-W", "ignore",
    ]  # fmt: skip
    result = subprocess.run(
        command,
        cwd=folder,
        env={**env, "BENCH_TIMES": str(times)},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"pytest {module} failed:\n{result.stdout[-3000:]}{result.stderr[-2000:]}")
    found: dict[str, object] = json.loads(times.read_text())
    found["output"] = result.stdout
    return found


def built_seconds(output: str, label: str) -> float | None:
    """The seconds the summary gives for the template whose line starts with `label`."""
    for line in output.splitlines():
        if line.startswith(label) and " rows in " in line:
            return float(line.rsplit(" rows in ", 1)[1].split()[0])
    return None


def per_test_ms(times: dict[str, object]) -> float:
    tests = times["tests"]
    assert isinstance(tests, list)
    return 1000 * statistics.median(tests[1:] or tests)


def drop_templates(dsn: str, seed: int) -> int:
    """Drop the templates built with this run's seed (ours: they carry our comment)."""
    import psycopg

    from pytest_celestra.db.database import drop_database

    with psycopg.connect(dsn, autocommit=True) as admin:
        names = [
            row[0]
            for row in admin.execute(
                "SELECT datname FROM pg_database WHERE datistemplate AND "
                "shobj_description(oid, 'pg_database') LIKE %s",
                (f'%"seed": {seed},%',),
            )
        ]
        for name in names:
            drop_database(admin, name)
    return len(names)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--tests", type=int, default=40, help="tests per rollback run")
    parser.add_argument("--few", type=int, default=4, help="tests that build the data each")
    parser.add_argument("--dsn", default=os.environ.get("CELESTRA_DSN"))
    options = parser.parse_args()
    if not options.dsn:
        parser.error("give --dsn URL or set CELESTRA_DSN")
    seed = 50_000_000 + secrets.randbelow(10**9)
    env = {key: value for key, value in os.environ.items() if not key.startswith("CELESTRA_")} | {
        "CELESTRA_DSN": options.dsn
    }
    figures: dict[str, float | None] = {}
    with tempfile.TemporaryDirectory(prefix="celestra-bench-scenarios-") as temp:
        folder = Path(temp)
        (folder / "conftest.py").write_text(CONFTEST.format(users=options.users))
        for name, text in TESTS.items():
            source = text.format(users=options.users, tests=options.tests, few=options.few)
            (folder / f"{name}.py").write_text(source)
        try:
            started = time.perf_counter()
            cold = run_pytest(folder, "scenario_rollback", seed, env)
            figures["cold run, wall (s)"] = time.perf_counter() - started
            figures["first build of the scenario (s)"] = built_seconds(
                str(cold["output"]), "scenario 'users_with_sessions'"
            )
            warm = run_pytest(folder, "scenario_rollback", seed, env)
            figures["warm: session start to first test done, scenario (s)"] = float(
                str(warm["first_done"])
            )
            figures["per test, scenario in celestra_seeded_db (ms)"] = per_test_ms(warm)
            volume = run_pytest(folder, "volume_rollback", seed, env)
            volume = run_pytest(folder, "volume_rollback", seed, env)  # warm
            figures["warm: session start to first test done, volume small (s)"] = float(
                str(volume["first_done"])
            )
            figures["per test, volume small in celestra_seeded_db (ms)"] = per_test_ms(volume)
            volume_tx = run_pytest(folder, "volume_transactional", seed, env)
            figures["per test, volume small in celestra_transactional_db (ms)"] = per_test_ms(
                volume_tx
            )
            transactional = run_pytest(folder, "scenario_transactional", seed, env)
            figures["per test, scenario in celestra_transactional_db (ms)"] = per_test_ms(
                transactional
            )
            every = run_pytest(folder, "built_in_every_test", seed, env)
            figures["warm: session start to first test done, built in the test (s)"] = float(
                str(every["first_done"])
            )
            figures["per test, the same data built in every test (ms)"] = per_test_ms(every)
        finally:
            dropped = drop_templates(options.dsn, seed)
    load = os.getloadavg()
    print(
        f"Scenario of {options.users:,} users with their sessions (bulk_create), "
        f"seed {seed}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, "
        f"{os.cpu_count()} CPUs"
    )
    width = max(len(name) for name in figures)
    for name, value in figures.items():
        shown = "n/a" if value is None else f"{value:,.3f}" if value < 10 else f"{value:,.1f}"
        print(f"  {name:<{width}}  {shown:>10}")
    print(f"  ({dropped} templates of this run dropped)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
