"""The bulk path: generate_scenario (no database) and seed_scenario / the COPY loader."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
import threading
import uuid
from collections import Counter
from datetime import date, datetime, timedelta

import psycopg
import pytest
from sqlalchemy import text

from pytest_celestra.errors import ConfigError
from pytest_celestra.rows import loader, passwords
from pytest_celestra.rows.scenario import (
    CHUNK_ROWS,
    DEFAULT_SEED,
    OLD_PASSWORD_POOL,
    PASSWORD_POOL,
    ScenarioSummary,
    allocate,
    anchor_for,
    generate_scenario,
    seed_scenario,
)
from pytest_celestra.schema import spec, volumes
from pytest_celestra.schema.models import TABLES_IN_FK_ORDER
from pytest_celestra.schema.volumes import Volume

ANCHOR = anchor_for(date(2025, 3, 14))


def collect(volume="small", seed=DEFAULT_SEED, anchor=ANCHOR) -> dict[str, list[tuple]]:
    tables: dict[str, list[tuple]] = {}
    for table, rows in generate_scenario(volume, seed=seed, anchor=anchor):
        tables.setdefault(table, []).extend(rows)
    return tables


def split(table: str, row: tuple) -> tuple[tuple, tuple]:
    """(non-time values, time values) of a generated row."""
    columns = loader.COLUMNS[table]
    kinds = [loader.COPY_TYPES[table][c] == "timestamptz" for c in columns]
    plain = tuple(v for v, is_time in zip(row, kinds, strict=True) if not is_time)
    times = tuple(v for v, is_time in zip(row, kinds, strict=True) if is_time)
    return plain, times


def test_anchor_is_midnight_utc():
    anchor = anchor_for(date(2025, 3, 14))
    assert anchor.isoformat() == "2025-03-14T00:00:00+00:00"
    assert anchor_for().date() == datetime.now(anchor.tzinfo).date()


def test_without_sessions_nobody_signs_out():
    """A sign-out lies within a session: a volume without sessions has none (its action
    becomes another one, as a sign-in's does)."""
    logs = collect("small,user_sessions=0")["audit_logs"]
    event = loader.COLUMNS["audit_logs"].index("event_type")
    events = Counter(row[event] for row in logs)
    assert events["SESSION_ENDED"] == events["SESSION_STARTED"] == 0
    assert sum(events.values()) == Volume.parse("small").counts["audit_logs"]


def test_every_audit_story_is_told_at_small_whatever_the_seed():
    """Each action of the audit trail comes once before the weights take over: a sign-out
    and a failed sign-in of an unknown email in every small volume (one seed in ten had no
    sign-out when the actions were drawn by weight alone)."""
    event, user = (loader.COLUMNS["audit_logs"].index(c) for c in ("event_type", "user_id"))
    for seed in range(1, 11):
        logs = collect("small", seed=seed)["audit_logs"]
        events = {(row[event], row[user] is None) for row in logs}
        assert ("SESSION_ENDED", False) in events, seed
        assert ("FAILED_LOGIN", True) in events, seed


def test_most_users_are_active_at_small_whatever_the_seed():
    """Closed companies and the covering of statuses left exactly half the users of a small
    volume out of service for one seed in five; the last drawn ones become ACTIVE, and every
    status stays present."""
    status = loader.COLUMNS["users"].index("status")
    for seed in range(1, 31):
        counts = Counter(row[status] for row in collect("small", seed=seed)["users"])
        assert counts["ACTIVE"] * 2 > sum(counts.values()), (seed, counts)
        assert set(counts) == {"ACTIVE", "SUSPENDED", "BLOCKED", "ARCHIVED"}, (seed, counts)


@pytest.mark.parametrize("volume", ["small", "medium", "small,users=40,agents=12", "x3"])
def test_exact_row_counts_in_fk_order_and_layout(volume):
    counts: Counter[str] = Counter()
    order: list[str] = []
    for table, rows in generate_scenario(volume, seed=DEFAULT_SEED, anchor=ANCHOR):
        assert len(rows) <= 2 * CHUNK_ROWS
        assert all(len(row) == len(loader.COLUMNS[table]) for row in rows)
        counts[table] += len(rows)
        if not order or order[-1] != table:
            order.append(table)
    assert dict(counts) == dict(Volume.parse(volume).counts)
    parents_first = [t for t in order if t != "audit_change_logs"]
    assert parents_first == [t for t in TABLES_IN_FK_ORDER if t != "audit_change_logs"]
    # Change logs follow the audit logs they hang on, chunk by chunk.
    assert order.index("audit_change_logs") == order.index("audit_logs") + 1


def test_same_seed_same_rows():
    assert collect() == collect()


def test_other_seed_other_rows():
    first, second = collect(seed=1), collect(seed=2)
    for table in first:
        ids = {row[0] for row in first[table]}
        assert ids.isdisjoint(row[0] for row in second[table]), table
    names = lambda rows: sorted(r[1] for r in rows)  # noqa: E731
    assert names(first["companies"]) != names(second["companies"])


def test_other_anchor_shifts_only_the_times():
    today, later = collect(anchor=ANCHOR), collect(anchor=ANCHOR + timedelta(days=3))
    for table, rows in today.items():
        for row, other in zip(rows, later[table], strict=True):
            plain, times = split(table, row)
            other_plain, other_times = split(table, other)
            assert plain == other_plain
            for t, o in zip(times, other_times, strict=True):
                assert (t is None and o is None) or o - t == timedelta(days=3)


def test_everything_is_on_or_before_the_anchor_except_expiries():
    future_ok = {"expires_at", "lockout_end"}
    for table, rows in collect("medium").items():
        for column, kind in loader.COPY_TYPES[table].items():
            if kind != "timestamptz" or column in future_ok:
                continue
            i = loader.COLUMNS[table].index(column)
            assert all(row[i] is None or row[i] <= ANCHOR for row in rows), (table, column)


def test_knowledge_types_beyond_the_catalogue_are_refused():
    with pytest.raises(ConfigError, match="knowledge_types <= 12"):
        generate_scenario("small,knowledge_types=13")


def test_more_change_logs_than_audit_logs_can_record_are_refused_at_once():
    with pytest.raises(ConfigError, match="audit_change_logs <= 300"):
        generate_scenario("small,audit_change_logs=301")
    assert (
        sum(
            len(r)
            for t, r in generate_scenario("small,audit_change_logs=300")
            if t == "audit_change_logs"
        )
        == 300
    )


def test_allocate_is_exact_proportional_and_monotone():
    shares = allocate(100, [1, 2, 3, 4])
    assert sum(shares) == 100
    assert shares == sorted(shares)
    assert allocate(3, [1, 1, 1, 1]) == [1, 1, 1, 0]
    assert allocate(0, [1, 2]) == [0, 0]
    weights = [5.0, 0.5, 2.0, 2.0, 9.0]
    a, b = allocate(17, weights), allocate(23, weights)
    order = sorted(range(5), key=lambda i: (weights[i], -i))
    assert [a[i] for i in order] == sorted(a)
    assert [b[i] for i in order] == sorted(b)


_PEAK_MEMORY = """
import resource, sys
from pytest_celestra.rows.scenario import generate_scenario
rows = sum(len(chunk) for _, chunk in generate_scenario(sys.argv[1]))
print(rows, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_memory_kib(volume: str) -> tuple[int, int]:
    """(rows generated, peak RSS in KiB) of generating ``volume`` in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_MEMORY, volume],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    rows, peak = done.stdout.split()
    return int(rows), int(peak)


@pytest.mark.slow
def test_memory_stays_flat_at_a_large_multiplier():
    """x300 (~390k rows) holds little more than medium: a chunk and the parents' facts."""
    rows, peak = peak_memory_kib("x300")
    assert rows == Volume.parse("x300").total_rows
    _, baseline = peak_memory_kib("medium")
    assert peak - baseline < 80 * 1024, f"x300 peaks {(peak - baseline) // 1024} MiB above medium"


@pytest.mark.parametrize(
    "volume",
    [
        Volume.custom("few users", "small", companies=2, users=3, password_history=4),
        Volume.parse("medium"),
        Volume.custom("long histories", "small", users=6, password_history=200),
    ],
    ids=lambda v: v.name,
)
def test_a_scenario_hashes_only_what_it_needs(monkeypatch, volume):
    """At most one default-password hash per user (16 at most), at most one former
    password per history entry (8 at most, unless one user has more entries)."""
    calls: list[tuple] = []
    real = passwords._cached_hash.__wrapped__
    monkeypatch.setattr(passwords, "_cached_hash", lambda *a: calls.append(a) or real(*a))
    tables = collect(volume)
    column = loader.COLUMNS["users"].index("password_hash")
    users = {row[column] for row in tables["users"]}
    history: dict[uuid.UUID, list[str]] = {}
    for _, user_id, digest, _ in tables["password_history"]:
        history.setdefault(user_id, []).append(digest)
    longest = max(map(len, history.values()))
    n_users, n_history = volume.counts["users"], volume.counts["password_history"]
    current = [a for a in calls if a[2] == passwords.DEFAULT_PASSWORD]
    former = [a for a in calls if a[2] != passwords.DEFAULT_PASSWORD]
    assert len(users) <= len(current) <= min(PASSWORD_POOL, n_users)
    assert len(former) <= max(min(OLD_PASSWORD_POOL, n_history), longest)
    assert all(len(set(digests)) == len(digests) for digests in history.values())
    assert not users & {d for digests in history.values() for d in digests}
    assert not [t for t in threading.enumerate() if t.name == "celestra-hash"]


# --- seed_scenario and the loader ---------------------------------------------------------


def test_seed_scenario_writes_the_volume_and_reports_it(celestra_session):
    calls: list[tuple[str, int]] = []
    summary = seed_scenario(
        celestra_session, "small", anchor=ANCHOR, progress=lambda t, n: calls.append((t, n))
    )
    assert isinstance(summary, ScenarioSummary)
    volume = Volume.parse("small")
    assert dict(summary.rows) == dict(volume.counts)
    assert summary.volume == volume
    assert summary.seed == DEFAULT_SEED
    assert summary.anchor == ANCHOR
    for table, count in volume.counts.items():
        stored = celestra_session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
        assert stored == count
    assert dict(calls) == dict(volume.counts)
    report = str(summary)
    assert all(table in report for table in TABLES_IN_FK_ORDER)
    assert "total" in report


def test_seed_scenario_does_not_commit(celestra_session, celestra_engine):
    seed_scenario(celestra_session, "small", anchor=ANCHOR)
    with celestra_engine.connect() as other:
        assert other.execute(text("SELECT count(*) FROM users")).scalar_one() == 0


def test_seed_scenario_through_a_sqlalchemy_connection(celestra_session):
    summary = seed_scenario(celestra_session.connection(), "small", anchor=ANCHOR)
    assert summary.rows["users"] == Volume.parse("small").counts["users"]


def test_seed_scenario_through_a_psycopg_connection(celestra_dsn):
    with psycopg.connect(celestra_dsn) as connection:
        seed_scenario(connection, "small", anchor=ANCHOR)
        assert connection.execute("SELECT count(*) FROM companies").fetchone() == (5,)
        connection.rollback()


def test_an_autocommit_connection_gets_one_transaction(celestra_dsn):
    with psycopg.connect(celestra_dsn, autocommit=True) as connection:
        try:
            seed_scenario(connection, "small", anchor=ANCHOR)
            # The same seed again repeats every id: it fails and writes nothing ...
            with pytest.raises(psycopg.errors.UniqueViolation):
                seed_scenario(connection, "small", anchor=ANCHOR)
            # ... while the first one was committed as a whole.
            assert connection.execute("SELECT count(*) FROM companies").fetchone() == (5,)
        finally:
            # The database outlives this test: leave it empty for the others.
            for table in reversed(TABLES_IN_FK_ORDER):
                connection.execute(f"DELETE FROM {table}")


def test_unsupported_connections_are_refused():
    with pytest.raises(ConfigError, match="psycopg 3"):
        seed_scenario(object(), "small")


def test_a_generation_error_reaches_the_caller_and_stops_the_worker(celestra_session):
    def chunks():
        yield from generate_scenario("small", anchor=ANCHOR)
        raise RuntimeError("generator broke")

    pg_conn = loader.raw_connection(celestra_session)
    with pytest.raises(RuntimeError, match="generator broke"):
        loader.load(pg_conn, chunks())
    assert not [t for t in threading.enumerate() if t.name == "celestra-generate"]


def test_a_load_error_stops_the_generating_worker(celestra_session):
    pg_conn = loader.raw_connection(celestra_session)
    # A size PostgreSQL's company_size type does not have: the server refuses the COPY.
    bad = [("companies", [(uuid.uuid4(), "X", None, "HUGE", "TECH", "ACTIVE", None, None)])]
    with pytest.raises(psycopg.DataError):
        loader.load(pg_conn, iter(bad + list(generate_scenario("small", anchor=ANCHOR))))
    assert not [t for t in threading.enumerate() if t.name == "celestra-generate"]


@pytest.mark.parametrize("prefetch", [0, 4], ids=["inline", "worker"])
def test_a_load_stopped_early_closes_the_generator_and_ends_its_hashing_thread(
    celestra_session, prefetch
):
    """Ctrl-C (here from `progress`) left the scenario's generator suspended, its thread
    hashing passwords ahead running on: started from the loader's daemon worker, a daemon
    itself, which the interpreter ended at exit inside bcrypt, aborting the process
    (SIGABRT, "FATAL: exception not rethrown") instead of exiting as interrupted."""
    pg_conn = loader.raw_connection(celestra_session)
    passwords.configure("bcrypt", 8)  # ~15 ms a hash: still hashing after the first chunk
    try:
        chunks = generate_scenario("small", anchor=ANCHOR)

        def interrupt(table: str, rows: int) -> None:
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            loader.load(pg_conn, chunks, progress=interrupt, prefetch=prefetch)
        assert chunks.gi_frame is None, "the generator was left suspended, not closed"
        alive = [t.name for t in threading.enumerate() if t.name.startswith("celestra-")]
        assert alive == []
    finally:
        passwords.configure()


def test_copy_takes_ip_addresses_as_text_or_objects(celestra_session):
    pg_conn = loader.raw_connection(celestra_session)
    given = [
        "203.0.113.7",
        "2a01:5:0::c",
        ipaddress.ip_address("198.51.100.1"),
        ipaddress.ip_address("2001:db8::1"),
        None,
    ]
    columns = ("id", "ip_address", "attempted_at", "failure_reason")
    rows = [(uuid.uuid4(), ip, ANCHOR, "Unknown email address") for ip in given]
    assert loader.copy_rows(pg_conn, "failed_logins", columns, rows) == len(rows)
    stored = dict(pg_conn.execute("SELECT id, ip_address FROM failed_logins").fetchall())
    expected = [None if ip is None else ipaddress.ip_address(str(ip)) for ip in given]
    assert [stored[row[0]] for row in rows] == expected
    bad = [(uuid.uuid4(), "300.1.2.3", ANCHOR, "Unknown email address")]
    with pytest.raises(ValueError, match=r"'300\.1\.2\.3' does not appear to be an IP"):
        loader.copy_rows(pg_conn, "failed_logins", columns, bad)


@pytest.mark.parametrize("prefetch", [0, 2])
def test_load_with_and_without_a_worker(celestra_session, prefetch):
    pg_conn = loader.raw_connection(celestra_session)
    counts = loader.load(pg_conn, generate_scenario("small", anchor=ANCHOR), prefetch=prefetch)
    assert counts == dict(Volume.parse("small").counts)


def test_a_load_with_a_worker_hands_the_gil_over_promptly_and_restores_the_interval(
    celestra_session,
):
    pg_conn = loader.raw_connection(celestra_session)
    before = sys.getswitchinterval()
    seen: list[float] = []

    def chunks():  # made in the worker thread, when there is one
        seen.append(sys.getswitchinterval())
        yield "companies", []

    loader.load(pg_conn, chunks(), prefetch=2)
    loader.load(pg_conn, chunks(), prefetch=0)
    assert seen == [0.0005, before]
    assert sys.getswitchinterval() == before


def test_blocks_handing_the_gil_over_promptly_in_two_threads_restore_it_once_both_end():
    before = sys.getswitchinterval()
    first, second = loader.prompt_thread_switches(), loader.prompt_thread_switches()
    first.__enter__()
    second.__enter__()  # another thread's batch, say
    first.__exit__(None, None, None)
    assert sys.getswitchinterval() == 0.0005  # the other block still runs
    second.__exit__(None, None, None)
    assert sys.getswitchinterval() == before


EDGE_VOLUMES = {
    "minimal": Volume(
        "minimal",
        dict.fromkeys(TABLES_IN_FK_ORDER, 0)
        | {"companies": 1, "knowledge_types": 1, "users": 2, "agents": 1, "knowledge_bases": 1},
    ),
    "one of each": Volume.custom(
        "ones", "small", **(dict.fromkeys(TABLES_IN_FK_ORDER, 1) | {"users": 2})
    ),
    "a lockout per failed login": Volume.custom("l", "small", failed_logins=10, user_lockouts=10),
    "long password histories": Volume.custom("h", "small", users=6, password_history=500),
    "three changes per audit log": Volume.custom("c", "small", audit_change_logs=300),
    "no change logs": Volume.custom("n", "small", audit_change_logs=0),
    "every agent linked to every base": Volume.custom("a", "small", agent_knowledge_bases=30),
}


@pytest.mark.parametrize("volume", EDGE_VOLUMES.values(), ids=EDGE_VOLUMES)
def test_edge_volumes_seed_exactly_and_satisfy_the_constraints(celestra_session, volume):
    summary = seed_scenario(celestra_session, volume, anchor=ANCHOR)
    assert dict(summary.rows) == dict(volume.counts)


def test_the_volume_check_follows_the_spec_figures(monkeypatch):
    """A volume is checked against the spec's catalogue and changeable columns, read when
    the check runs: a catalogue one type longer allows one more knowledge type."""
    allowed = len(spec.KNOWLEDGE_TYPES)
    too_many = {**volumes.Volume.named("small").counts, "knowledge_types": allowed + 1}
    assert "catalogue has" in (volumes.feasibility_problem(too_many) or "")
    longer = {**spec.KNOWLEDGE_TYPES, "Made-up type": ("A type of this test", 1)}
    monkeypatch.setattr(spec, "KNOWLEDGE_TYPES", longer)
    assert volumes.feasibility_problem(too_many) is None


def step_cases() -> list[tuple[str, str]]:
    from pytest_celestra.rows.steps import STEPS

    return [(step.name, parent) for step in STEPS for parent in step.parents]


def test_each_step_reads_the_facts_of_steps_before_it():
    from pytest_celestra.rows.steps import STEPS

    names = [step.name for step in STEPS]
    for index, step in enumerate(STEPS):
        assert set(step.parents) <= set(names[:index]), step.name


@pytest.mark.parametrize(("name", "parent"), step_cases())
def test_a_step_reads_each_parent_it_declares_and_no_other(monkeypatch, name, parent):
    """Each step is handed only the facts its `parents` name (the whole scenario runs so in
    every other test): one parent fewer, and the step fails at once."""
    import dataclasses

    from pytest_celestra.rows import steps as generate

    steps = tuple(
        dataclasses.replace(step, parents=tuple(p for p in step.parents if p != parent))
        if step.name == name
        else step
        for step in generate.STEPS
    )
    monkeypatch.setattr(generate, "STEPS", steps)
    with pytest.raises(KeyError, match=parent):
        for _ in generate_scenario("small", seed=1, anchor=ANCHOR):
            pass
