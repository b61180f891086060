"""Your own scenarios (``@scenario_builder``): built once as templates, keyed by their code,
deterministic, and refused cleanly when their builder misbehaves."""

from __future__ import annotations

import json
import textwrap
from typing import TYPE_CHECKING, Any

import pytest
from helpers import sigint_as_in_a_terminal

# Imported before any in-process inner run: pytester forgets the modules a run imports,
# and a second import would make factory classes that the first import's modules reject.
import pytest_celestra.rows.batches
import pytest_celestra.rows.factories
from pytest_celestra.db.user_scenarios import ScenarioBuilder, ScenarioBuildError, scenario_builder
from pytest_celestra.schema.volumes import Volume

if TYPE_CHECKING:
    import psycopg

# The inner runs' conftest: two layers of scenario and the run id, for the checks.
CONFTEST = """
from pathlib import Path

import factory
from sqlalchemy import select, text

from pytest_celestra.rows.factories import CompanyFactory, UserFactory, UserSessionFactory
from pytest_celestra.schema.models import Company
from pytest_celestra.plugin.run_info import RUN_KEY
from pytest_celestra.db.user_scenarios import scenario_builder

USERS = {users}
COMPANY = "Acme"


def company_name():
    return COMPANY


@scenario_builder
def acme(session):
    company = CompanyFactory(name=company_name())
    users = UserFactory.bulk_create(USERS, company=company)
    UserSessionFactory.bulk_create(len(users), user=factory.Iterator(users.objects()))
    session.execute(text("UPDATE users SET name = upper(name)"))


@scenario_builder(base=acme)
def acme_with_admin(session):
    UserFactory(email="admin@acme.example", company=session.scalar(select(Company)))


def pytest_sessionfinish(session):
    Path("run_id.txt").write_text(session.config.stash[RUN_KEY].run_id)
"""

TESTS = """
import json
from pathlib import Path

import pytest
from sqlalchemy import text


def dump(session, name):
    rows = session.execute(text(
        "SELECT u.id::text, u.email, u.name, c.name FROM users u "
        "JOIN companies c ON c.id = u.company_id ORDER BY u.id")).all()
    Path(name).write_text(json.dumps([list(row) for row in rows]))


@pytest.mark.celestra(scenario="acme")
def test_rolled_back(celestra_seeded_db):
    count = celestra_seeded_db.execute(text("SELECT count(*) FROM users")).scalar()
    assert count == {users}
    assert celestra_seeded_db.execute(text("SELECT count(*) FROM user_sessions")).scalar() == count
    dump(celestra_seeded_db, "acme.json")
    celestra_seeded_db.execute(text("DELETE FROM user_sessions"))


@pytest.mark.celestra(scenario="acme")
def test_rollback_undid_the_delete(celestra_seeded_db):
    count = celestra_seeded_db.execute(text("SELECT count(*) FROM user_sessions")).scalar()
    assert count == {users}


@pytest.mark.celestra(scenario="acme_with_admin")
def test_layer(celestra_seeded_db, celestra_scenario):
    emails = celestra_seeded_db.execute(text("SELECT email FROM users")).scalars().all()
    assert len(emails) == {users} + 1 and "admin@acme.example" in emails
    assert celestra_scenario.builder.name == "acme_with_admin"


@pytest.mark.celestra(scenario="acme")
def test_transactional(celestra_transactional_db):
    celestra_transactional_db.execute(text("DELETE FROM user_sessions"))
    celestra_transactional_db.commit()
    count = celestra_transactional_db.execute(text("SELECT count(*) FROM user_sessions")).scalar()
    assert count == 0


@pytest.mark.celestra(scenario="acme")
def test_transactional_again(celestra_transactional_db):
    count = celestra_transactional_db.execute(text("SELECT count(*) FROM user_sessions")).scalar()
    assert count == {users}
"""


def meta(comment: str) -> dict[str, Any]:
    return json.loads(comment[comment.index("{") :])


def scenario_templates(admin: psycopg.Connection[Any], seed: int) -> dict[str, dict[str, Any]]:
    """Name -> comment meta of the templates of scenarios of yours built with `seed`."""
    rows = admin.execute(
        "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database "
        "WHERE shobj_description(oid, 'pg_database') LIKE %s",
        (f'%"kind": "scenario"%"seed": {seed},%',),
    ).fetchall()
    return {name: meta(comment) for name, comment in rows}


def databases_of_run(admin: psycopg.Connection[Any], run_id: str) -> dict[str, dict[str, Any]]:
    """Name -> comment meta of every database the run `run_id` created and left."""
    rows = admin.execute(
        "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database "
        "WHERE shobj_description(oid, 'pg_database') LIKE %s",
        (f'%"run": "{run_id}"%',),
    ).fetchall()
    return {name: meta(comment) for name, comment in rows}


@pytest.fixture
def inner(celestra_pytester: pytest.Pytester, unique_seed: int) -> Any:
    """Run pytest in process in the pytester directory, with this test's own seed."""

    def run(*args: str) -> pytest.RunResult:
        return celestra_pytester.runpytest(
            f"--celestra-seed={unique_seed}",
            "-p",
            "no:randomly",
            "-p",
            "no:cacheprovider",
            *args,
            no_reraise_ctrlc=True,  # an interrupted inner run is a result, not our Ctrl-C
        )

    return run


def write(pytester: pytest.Pytester, users: int = 40, **files: str) -> None:
    pytester.makeconftest(CONFTEST.format(users=users))
    if files:
        pytester.makepyfile(**{name: text.format(users=users) for name, text in files.items()})


@pytest.mark.slow
def test_a_name_two_conftests_declare_is_the_nearest_ones(celestra_pytester, inner):
    """As pytest's fixtures: each directory's tests get their own conftest's `team`."""
    for directory, users in (("north", 2), ("south", 3)):
        folder = celestra_pytester.mkpydir(directory)
        (folder / "conftest.py").write_text(
            textwrap.dedent(
                f"""
                from pytest_celestra import UserFactory, scenario_builder

                @scenario_builder
                def team(session):
                    UserFactory.create_batch({users})
                """
            )
        )
        (folder / f"test_{directory}.py").write_text(
            textwrap.dedent(
                f"""
                import pytest
                from sqlalchemy import text

                @pytest.mark.celestra(scenario="team")
                def test_team(celestra_seeded_db):
                    count = celestra_seeded_db.scalar(text("SELECT count(*) FROM users"))
                    assert count == {users}
                """
            )
        )
    inner().assert_outcomes(passed=2)


@pytest.mark.slow
def test_built_once_layered_and_reused(celestra_pytester, inner, admin, unique_seed):
    write(celestra_pytester, test_scenarios=TESTS)
    first = inner()
    first.assert_outcomes(passed=5)
    first.stdout.fnmatch_lines(
        [
            "*celestra: templates built by this run*",
            "scenario 'acme' on the empty schema: * rows in * s*",
            "scenario 'acme_with_admin' on scenario 'acme': * rows in * s*",
        ]
    )
    templates = scenario_templates(admin, unique_seed)
    labels = sorted(found["scenario"] for found in templates.values())
    assert labels == [
        "scenario 'acme' on the empty schema",
        "scenario 'acme_with_admin' on scenario 'acme'",
    ]
    # 1 company, 40 users, 40 sessions; the layer adds one user.
    rows = {found["scenario"]: sum(found["rows"].values()) for found in templates.values()}
    assert rows == {
        "scenario 'acme' on the empty schema": 81,
        "scenario 'acme_with_admin' on scenario 'acme'": 82,
    }

    second = inner()
    second.assert_outcomes(passed=5)
    assert "templates built by this run" not in second.stdout.str()
    again = scenario_templates(admin, unique_seed)
    assert {name: found["built"] for name, found in again.items()} == {
        name: found["built"] for name, found in templates.items()
    }


@pytest.mark.slow
def test_a_batch_written_in_chunks_builds_whole(celestra_pytester, inner, monkeypatch):
    """A builder's `bulk_create` of more rows than a chunk is written while it is made, in
    a savepoint of the build's session (no commit the build refuses): the template holds
    every row, and the build's report counts them."""
    monkeypatch.setattr(pytest_celestra.rows.batches, "CHUNK", 3)
    write(celestra_pytester, users=7, test_scenarios=TESTS)
    result = inner("-k", "test_rolled_back or test_layer")
    result.assert_outcomes(passed=2)
    # 1 company, 7 users in chunks of 3, 3 and 1, and their 7 sessions.
    result.stdout.fnmatch_lines(["scenario 'acme' on the empty schema: 15 rows in * s*"])


@pytest.mark.slow
def test_a_change_to_what_the_builder_reads_rebuilds(celestra_pytester, inner, admin, unique_seed):
    write(celestra_pytester, test_scenarios=TESTS)
    inner("-k", "test_rolled_back").assert_outcomes(passed=1)
    before = set(scenario_templates(admin, unique_seed))

    # A constant read by a helper the builder calls: a new key, a new template.
    conftest = celestra_pytester.path / "conftest.py"
    conftest.write_text(conftest.read_text().replace('COMPANY = "Acme"', 'COMPANY = "Acme 2"'))
    inner("-k", "test_rolled_back").assert_outcomes(passed=1)
    after = set(scenario_templates(admin, unique_seed))
    assert len(after - before) == 1
    names = json.loads((celestra_pytester.path / "acme.json").read_text())
    assert {row[3] for row in names} == {"Acme 2"}

    # A global the builder reads directly.
    write(celestra_pytester, users=41, test_scenarios=TESTS)
    inner("-k", "test_rolled_back").assert_outcomes(passed=1)
    assert len(set(scenario_templates(admin, unique_seed)) - after) == 1


@pytest.mark.slow
def test_same_key_same_rows_in_any_order(celestra_pytester, inner, admin, unique_seed):
    write(celestra_pytester, test_scenarios=TESTS)
    inner("-k", "test_rolled_back").assert_outcomes(passed=1)
    first = json.loads((celestra_pytester.path / "acme.json").read_text())
    [built] = [m["built"] for m in scenario_templates(admin, unique_seed).values()]

    # Rebuilt by a process whose factories drew other values before the build.
    celestra_pytester.makepyfile(
        test_aaa_first="""
        from pytest_celestra.rows.factories import UserFactory

        def test_draws_first(celestra_session):
            UserFactory.create_batch(7)
        """
    )
    inner("--celestra-rebuild", "-k", "test_draws_first or test_rolled_back").assert_outcomes(
        passed=2
    )
    [rebuilt] = [m["built"] for m in scenario_templates(admin, unique_seed).values()]
    assert rebuilt != built
    again = json.loads((celestra_pytester.path / "acme.json").read_text())
    assert again == first
    assert len(first) == 40


BAD_BUILDERS = {
    "raises": ("raise ValueError('boom in the builder')", ["*ValueError: boom in the builder*"]),
    "commits": (
        "session.commit()",
        ["*the builder of scenario 'bad' committed its session*Remove the session.commit()*"],
    ),
    "rolls back": ("session.rollback()", ["*the builder of scenario 'bad' rolled back its*"]),
    "closes": ("session.close()", ["*the builder of scenario 'bad' closed its session*"]),
    "runs COMMIT": (
        "session.execute(text('COMMIT'))",
        ["*the builder of scenario 'bad' ended the transaction it runs in (COMMIT)*"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_BUILDERS))
@pytest.mark.slow
def test_a_bad_builder_errors_and_leaves_nothing(
    celestra_pytester, inner, admin, unique_seed, case
):
    statement, expected = BAD_BUILDERS[case]
    celestra_pytester.makeconftest(
        CONFTEST.format(users=3)
        + textwrap.dedent(
            f"""

            @scenario_builder
            def bad(session):
                UserFactory.create_batch(3)
                {statement}
            """
        )
    )
    celestra_pytester.makepyfile(
        """
        import pytest

        @pytest.mark.celestra(scenario="bad")
        def test_one(celestra_seeded_db):
            pass

        @pytest.mark.celestra(scenario="bad")
        def test_two(celestra_transactional_db):
            pass
        """
    )
    result = inner()
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(expected)
    result.stdout.fnmatch_lines(["*scenario 'bad' on the empty schema could not be built*"])
    if case == "raises":
        result.stdout.fnmatch_lines(["*def bad(session):*"])  # the builder's own frame
    assert scenario_templates(admin, unique_seed) == {}
    run_id = (celestra_pytester.path / "run_id.txt").read_text()
    left = databases_of_run(admin, run_id)
    assert all(found.get("kind") == "schema" for found in left.values()), left


def test_an_interrupted_build_leaves_nothing(celestra_pytester, inner, admin, unique_seed):
    celestra_pytester.makeconftest(
        CONFTEST.format(users=3)
        + textwrap.dedent(
            """

            @scenario_builder
            def interrupted(session):
                UserFactory.create_batch(3)
                raise KeyboardInterrupt  # what Ctrl-C raises in the main thread
            """
        )
    )
    celestra_pytester.makepyfile(
        """
        import pytest

        @pytest.mark.celestra(scenario="interrupted")
        def test_one(celestra_seeded_db):
            pass
        """
    )
    result = inner()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert scenario_templates(admin, unique_seed) == {}
    run_id = (celestra_pytester.path / "run_id.txt").read_text()
    left = databases_of_run(admin, run_id)
    assert all(found.get("kind") == "schema" for found in left.values()), left


@pytest.mark.slow
def test_a_long_build_shows_progress(celestra_pytester, inner):
    celestra_pytester.makeconftest(
        CONFTEST.format(users=3)
        + textwrap.dedent(
            """

            @scenario_builder
            def slow(session):
                UserFactory.bulk_create(5, company=CompanyFactory())
                for _ in range(12):
                    session.execute(text("SELECT pg_sleep(0.25)"))
            """
        )
    )
    celestra_pytester.makepyfile(
        """
        import pytest

        @pytest.mark.celestra(scenario="slow")
        def test_one(celestra_seeded_db):
            pass
        """
    )
    result = inner()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            # The rows bulk_create COPYs count too: no statement event sees them.
            "celestra: building scenario 'slow' on the empty schema: "
            "* statements, 5 rows by bulk_create, * s (* s)",
            "celestra: built scenario 'slow' on the empty schema: 6 rows in * s*",
        ]
    )


@pytest.mark.parametrize(
    ("marker", "expected"),
    [
        ('scenario="nope"', "*no scenario of that name*Declare one with @scenario_builder*"),
        ('scenario="acme", volume="small"', "*a scenario is built on its own base*"),
        ("scenario=3", "*scenario=3: give the name of a scenario*"),
    ],
)
def test_marker_errors(celestra_pytester, inner, marker, expected):
    write(celestra_pytester)
    celestra_pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.celestra({marker})
        def test_one(celestra_seeded_db):
            pass
        """
    )
    result = inner()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([expected])


# --- the declaration and its key, without a database ----------------------------------

FACTOR = 2


def _helper() -> int:
    return FACTOR


def test_declaration_forms():
    @scenario_builder
    def bare(session: object) -> None:
        pass

    @scenario_builder(name="other", base="small", version="2")
    def named(session: object) -> None:
        pass

    @scenario_builder(base=named)
    def child(session: object) -> None:
        pass

    assert isinstance(bare, ScenarioBuilder)
    assert (bare.name, bare.base, bare.volume) == ("bare", None, None)
    assert (named.name, named.volume, named.version) == ("other", Volume.parse("small"), "2")
    assert child.layers == [named, child]
    assert child.volume == Volume.parse("small")
    assert child.describe() == "scenario 'child' on scenario 'other'"
    with pytest.raises(ScenarioBuildError, match="use a volume"):
        scenario_builder(base=3)  # type: ignore[call-overload]
    # A scenario's name is no base: it was refused as "invalid volume" without a word on why.
    with pytest.raises(ScenarioBuildError, match="pass the scenario itself, not its name"):
        scenario_builder(base="tenant_with_agents")


def test_the_key_follows_what_the_builder_reads(monkeypatch):
    def build(session: object) -> None:
        _helper()

    def key() -> str:
        return scenario_builder(build).key

    first = key()
    assert key() == first
    monkeypatch.setattr(f"{__name__}.FACTOR", 3)
    assert key() != first
    monkeypatch.undo()
    assert key() == first
    assert scenario_builder(version="2")(build).key != first
    assert scenario_builder(name="renamed")(build).key != first


# --- celestra-seed --scenario ---------------------------------------------------------

CLI_SCENARIOS = """
from sqlalchemy import select, text

from pytest_celestra.rows.factories import CompanyFactory, UserFactory
from pytest_celestra.schema.models import Company
from pytest_celestra.db.user_scenarios import scenario_builder


@scenario_builder(base="small")
def acme(session):
    UserFactory.bulk_create(7, company=CompanyFactory(name="Acme"))


@scenario_builder(base=acme)
def renamed(session):
    session.execute(text("UPDATE companies SET name = 'Acme 2' WHERE name = 'Acme'"))


@scenario_builder
def broken(session):
    session.commit()
"""


@pytest.fixture
def cli_database(admin_dsn: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """URL of a database (not created) the CLI may create; dropped afterwards."""
    import secrets
    import sys

    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    from pytest_celestra.urls import libpq_url

    monkeypatch.setattr(sys, "path", list(sys.path))  # the CLI puts the file's folder first
    name = f"celestra_cli_{secrets.token_hex(4)}"
    yield libpq_url(make_url(admin_dsn).set(database=name))
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def test_celestra_seed_builds_a_scenario_of_yours(cli_database, tmp_path, capsys):
    import psycopg

    from pytest_celestra.cli import main

    scenarios = tmp_path / "conftest.py"
    scenarios.write_text(CLI_SCENARIOS)
    status = main(
        ["--dsn", cli_database, "--scenario", f"{scenarios}::renamed", "--seed", "5", "--json"]
    )
    out = capsys.readouterr()
    assert status == 0, out.err
    summary = json.loads(out.out)
    small = Volume.parse("small").counts
    assert summary["rows"]["users"] == small["users"] + 7
    assert summary["rows"]["companies"] == small["companies"] + 1
    assert summary["scenario"] == "scenario 'renamed' on scenario 'acme'"
    assert summary["volume"] == "small"
    with psycopg.connect(cli_database) as connection:
        names = [row[0] for row in connection.execute("SELECT name FROM companies")]
        assert "Acme 2" in names
        assert "Acme" not in names


def test_celestra_seed_reports_a_bad_scenario(cli_database, tmp_path, capsys):
    import psycopg

    from pytest_celestra.cli import main

    (tmp_path / "conftest.py").write_text(CLI_SCENARIOS)
    assert main(["--dsn", cli_database, "--scenario", f"{tmp_path}/conftest.py::nope"]) == 1
    assert "no scenario of that name" in capsys.readouterr().err

    assert main(["--dsn", cli_database, "--scenario", f"{tmp_path}/conftest.py::broken"]) == 1
    assert "the builder of scenario 'broken' committed its session" in capsys.readouterr().err
    with psycopg.connect(cli_database) as connection:  # one transaction: nothing written
        assert connection.execute("SELECT to_regclass('companies')").fetchone() == (None,)

    with pytest.raises(SystemExit) as usage:
        main(["--sql", "-", "--scenario", "acme"])
    assert usage.value.code == 2
    assert "--scenario and --sql" in capsys.readouterr().err


@pytest.mark.slow
def test_under_xdist_one_worker_builds_and_both_use_it(
    celestra_pytester, inner, admin, unique_seed
):
    write(celestra_pytester, users=5)
    celestra_pytester.makepyfile(
        test_xdist="""
        import pytest
        from sqlalchemy import text

        @pytest.mark.celestra(scenario="acme")
        @pytest.mark.parametrize("n", range(6))
        def test_users(celestra_seeded_db, n):
            assert celestra_seeded_db.execute(text("SELECT count(*) FROM users")).scalar() == 5
        """
    )
    result = inner("-n", "2")
    result.assert_outcomes(passed=6)
    built = [line for line in result.stdout.lines if line.startswith("scenario 'acme'")]
    assert len(built) == 1  # the other worker waited, then cloned it
    assert built[0].startswith("scenario 'acme' on the empty schema: 11 rows in ")
    assert built[0].endswith(("[gw0]", "[gw1]"))
    assert len(scenario_templates(admin, unique_seed)) == 1


# --- the manager's layers and its build watcher ------------------------------------------


class RecordingWatcher:
    def __init__(self) -> None:
        self.events: list[tuple[str, ...]] = []

    def building(self, label: str) -> None:
        self.events.append(("building", label))

    def progress(self, label: str, done: str) -> None:
        self.events.append(("progress", label, done))

    def built(self, label: str, rows: int, seconds: float, why: str = "") -> None:
        self.events.append(("built", label, str(rows)))


class WidgetLayer:
    """A layer that adds `rows` users named by `tag` with plain SQL (or raises)."""

    def __init__(self, tag: str, rows: int, fail: bool = False) -> None:
        self.key = f"widget layer {tag} {rows} {fail}"
        self.label = f"layer {tag}"
        self.tag, self.rows, self.fail = tag, rows, fail

    def __call__(self, url, *, seed, anchor, progress):
        from pytest_celestra.db.server import connect

        with connect(url) as connection:
            connection.execute(
                "INSERT INTO users (id, company_id, role, email, name, password_hash, status) "
                "SELECT gen_random_uuid(), NULL, 'SUPER_ADMIN', %s || n || '@example.com', %s, "
                "'x', 'ACTIVE' FROM generate_series(1, %s) n",
                (self.tag, self.tag, self.rows),
            )
            progress(f"{self.rows} rows")
            if self.fail:
                raise RuntimeError("layer failed")
            connection.commit()
        return []


@pytest.fixture
def watched_manager(suite_databases) -> Any:
    import secrets

    from pytest_celestra.db.cache_keys import builtin_schema_setup
    from pytest_celestra.db.database import DatabaseManager
    from pytest_celestra.db.seeding import Seeder

    manager = DatabaseManager(
        suite_databases.server,
        builtin_schema_setup(),
        Seeder(),
        run_id=secrets.token_hex(8),
        worker="probe",
        watcher=RecordingWatcher(),
    )
    yield manager
    for name in list(manager.created):
        manager.release(manager.server.url_for(name))
    manager.close()


@pytest.mark.slow
def test_layers_are_templates_of_their_own_and_builds_are_watched(
    watched_manager, admin, unique_seed, monkeypatch
):
    import psycopg

    from pytest_celestra.rows.scenario import anchor_for

    small = Volume.parse("small")
    bottom, top = WidgetLayer("bottom", 3), WidgetLayer("top", 2)
    url = watched_manager.create_layered(small, [bottom, top], unique_seed, anchor_for())
    with psycopg.connect(url.render_as_string(hide_password=False).replace("+psycopg", "")) as db:
        users = db.execute("SELECT count(*) FROM users").fetchone()[0]
    assert users == small.counts["users"] + 5
    events = watched_manager.watcher.events
    built = [event[1] for event in events if event[0] == "built"]
    assert f"volume small (seed {unique_seed})" in built
    assert built[-2:] == ["layer bottom", "layer top"]  # the top one copies the bottom one
    volume_steps = [e[2] for e in events if e[0] == "progress" and e[1].startswith("volume")]
    assert f"companies {small.counts['companies']} rows" in volume_steps
    assert ("progress", "layer top", "2 rows") in events

    # Again, and with another top layer: only what is new is built, and only the room for
    # what is made is asked for (the clone; the clone and its template).
    events.clear()
    rooms: list[int] = []
    check_room = watched_manager.check_room

    def recorded(volume: Volume | None, copies: int = 1) -> None:
        rooms.append(copies)
        check_room(volume, copies)

    monkeypatch.setattr(watched_manager, "check_room", recorded)
    watched_manager.create_layered(small, [bottom, top], unique_seed, anchor_for())
    assert [e for e in events if e[0] == "built"] == []
    watched_manager.create_layered(
        small, [bottom, WidgetLayer("other", 1)], unique_seed, anchor_for()
    )
    assert [e[1] for e in events if e[0] == "built"] == ["layer other"]
    assert rooms == [1, 2]


def test_a_failing_layer_leaves_no_build(watched_manager, admin, unique_seed):
    from pytest_celestra.rows.scenario import anchor_for

    with pytest.raises(RuntimeError, match="layer failed"):
        watched_manager.create_layered(
            None, [WidgetLayer("broken", 1, fail=True)], unique_seed, anchor_for()
        )
    left = databases_of_run(admin, watched_manager.run_id)
    assert all(found.get("kind") == "schema" for found in left.values()), left


def test_progress_lines_after_two_seconds(monkeypatch):
    from types import SimpleNamespace

    from pytest_celestra.plugin import build_progress
    from pytest_celestra.plugin.run_info import RunInfo

    lines: list[str] = []
    reporter = SimpleNamespace(ensure_newline=lambda: None, write_line=lines.append)
    plugins = {"terminalreporter": reporter, "capturemanager": None}
    config = SimpleNamespace(pluginmanager=SimpleNamespace(get_plugin=plugins.get))
    clock = [100.0]
    monkeypatch.setattr(build_progress.time, "perf_counter", lambda: clock[0])
    run = RunInfo("run", "main", __import__("datetime").date(2026, 1, 1))
    progress = build_progress.BuildProgress(config, run)  # type: ignore[arg-type]

    progress.building("volume large")
    clock[0] = 101.5
    progress.progress("volume large", "users 10 rows")
    assert lines == []  # quiet for the first 2 s
    clock[0] = 102.5
    progress.progress("volume large", "users 20 rows")
    clock[0] = 103.0
    progress.progress("volume large", "users 30 rows")  # within a second of the last line
    clock[0] = 103.6
    progress.progress("volume large", "audit_logs 5 rows")
    progress.built("volume large", 1234, 3.9)
    assert lines == [
        "celestra: building volume large: users 20 rows (2 s)",
        "celestra: building volume large: audit_logs 5 rows (4 s)",
        "celestra: built volume large: 1,234 rows in 3.9 s",
    ]
    assert run.builds == ["volume large: 1,234 rows in 3.9 s"]

    progress.building("the empty schema")
    progress.built("the empty schema", 0, 0.2)  # short: the summary only
    assert len(lines) == 3
    assert run.builds[-1] == "the empty schema: 0 rows in 0.2 s"
    progress.built("your schema", 1, 0.2)  # a hook that inserts a row: one row, not "1 rows"
    assert run.builds[-1] == "your schema: 1 row in 0.2 s"


@pytest.mark.slow
def test_ctrl_c_during_a_build_stops_it_and_leaves_nothing(celestra_pytester, admin, unique_seed):
    """A real SIGINT (what only a process shows), while the builder's query runs."""
    import signal
    import subprocess
    import sys
    import time

    celestra_pytester.makeconftest(
        CONFTEST.format(users=3)
        + textwrap.dedent(
            """

            @scenario_builder
            def endless(session):
                UserFactory.create_batch(3)
                Path("building").write_text("")
                session.execute(text("SELECT pg_sleep(60) -- run of seed SEED"))
            """
        ).replace("SEED", str(unique_seed))
    )
    celestra_pytester.makepyfile(
        """
        import pytest

        @pytest.mark.celestra(scenario="endless")
        def test_one(celestra_seeded_db):
            pass
        """
    )
    process = celestra_pytester.popen(
        [sys.executable, "-m", "pytest", "-p", "no:randomly", f"--celestra-seed={unique_seed}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        preexec_fn=sigint_as_in_a_terminal,
    )
    try:
        marker = celestra_pytester.path / "building"
        for _ in range(600):  # the builder says when it is in its long query
            if marker.exists() or process.poll() is not None:
                break
            time.sleep(0.1)
        assert marker.exists(), process.communicate(timeout=30)[0]
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=60)[0].decode()
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == pytest.ExitCode.INTERRUPTED, output
    assert "KeyboardInterrupt" in output
    assert scenario_templates(admin, unique_seed) == {}
    run_id = (celestra_pytester.path / "run_id.txt").read_text()
    left = databases_of_run(admin, run_id)
    assert all(found.get("kind") == "schema" for found in left.values()), left
    # The builder's query was cancelled, not left running (this run's: other runs of the
    # suite on the server may be in theirs); the server may take a moment to end it.
    for _ in range(50):
        sessions = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE %s",
            (f"%pg_sleep(60) -- run of seed {unique_seed}%",),
        ).fetchone()
        if sessions == (0,):
            break
        time.sleep(0.1)
    assert sessions == (0,)


def test_names_are_found_in_the_module_first_then_the_conftests():
    from types import SimpleNamespace

    from pytest_celestra.db.user_scenarios import scenarios_in

    def build(session: object) -> None:
        pass

    def acme(name: str = "acme", **more: Any) -> ScenarioBuilder:
        return scenario_builder(name=name, **more)(build)

    first = SimpleNamespace(__file__="a/conftest.py", acme=acme())
    second = SimpleNamespace(__file__="b/conftest.py", acme=acme())
    own = SimpleNamespace(__file__="test_mod.py", mine=acme())

    assert scenarios_in([first]).resolve("acme") is first.acme
    assert scenarios_in([first, second]).resolve("acme", own) is own.mine
    with pytest.raises(ScenarioBuildError, match=r"several scenarios .*a/conftest.py, b/conftest"):
        scenarios_in([first, second]).resolve("acme")
    # As pytest's fixtures: a test below a conftest gets that one's, the nearest first.
    in_b = SimpleNamespace(__file__="b/test_b.py")
    assert scenarios_in([first, second]).resolve("acme", in_b) is second.acme
    root = SimpleNamespace(__file__="conftest.py", acme=acme())
    deep = SimpleNamespace(__file__="b/c/conftest.py", acme=acme())
    registry = scenarios_in([root, second, deep])
    assert registry.resolve("acme", SimpleNamespace(__file__="b/c/d/test_x.py")) is deep.acme
    assert registry.resolve("acme", SimpleNamespace(__file__="b/test_y.py")) is second.acme
    assert registry.resolve("acme", SimpleNamespace(__file__="e/test_z.py")) is root.acme
    with pytest.raises(ScenarioBuildError, match="several scenarios"):
        scenarios_in([first, second]).resolve("acme", SimpleNamespace(__file__="e/test_z.py"))
    with pytest.raises(ScenarioBuildError, match=r"no scenario of that name.*\(known: acme\)"):
        scenarios_in([first]).resolve("other")
    with pytest.raises(ScenarioBuildError, match=r"Did you mean 'acme'\? Declare one"):
        scenarios_in([first]).resolve("acmee")
    # A layer's base is known by name too, and one object seen twice is one scenario.
    child = SimpleNamespace(
        __file__="c/conftest.py", child=scenario_builder(base=first.acme)(build)
    )
    registry = scenarios_in([first, child])
    assert registry.resolve("build") is child.child
    assert registry.resolve("acme") is first.acme
