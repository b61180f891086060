"""Factory figures of ``bench.py``: single calls against a plain factory_boy peer, and
batches through ``bulk_create`` against ``create_batch``.

Run by ``celestra_bench_workers.py factories`` in a fresh interpreter on a scratch
database with the empty schema, in one rolled-back session (as ``celestra_session``
gives a test). Single calls: the median of ``calls`` calls of each, ours and the peer
alternating in rounds so that load drifting on the machine weighs on both. Batches:
``bulk_create(rows)`` against ``create_batch``, which is timed on ``sample`` rows and
scaled (its cost per row is flat: one INSERT per row), both as ``create()`` is now and
as it was before (factory_boy's builder, a flush per object: :func:`flush_per_object`).

The peer is what a project writes with factory_boy alone: a ``SQLAlchemyModelFactory``
per model with plain Faker fields, ``SubFactory`` parents and
``sqlalchemy_session_persistence = "flush"`` (so its row is in the database when the
call returns, like ours). Its audit change log chain has five rows (company, user,
agent, audit log, change); ours has six (the audit log is also signed by an admin) and
writes the change to the agent.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

#: Single calls: (name, our call, the peer's call, target median in ms).
SINGLE_TARGETS_MS = {
    "UserFactory(company=c)": 1.5,
    "UserFactory()": 3.0,
    "AuditChangeLogFactory()": 6.0,
}
#: Batches: (name, bulk_create / create_batch speed-up at least).
BATCH_TARGETS = {
    "UserFactory(company=c)": 30.0,
    "AuditChangeLogFactory()": 20.0,
}
#: A batch's cost per row (every row it writes, its parents' included) over the scenario
#: generator's cost per row of the same table(s): at most this.
GENERATOR_RATIO_TARGET = 2.0


def _peer_factories(session: Any) -> dict[str, Any]:
    """Plain factory_boy factories of the same models, writing into ``session``."""
    import factory
    from factory.alchemy import SQLAlchemyModelFactory

    from pytest_celestra.rows.passwords import hash_password
    from pytest_celestra.schema import models as m

    now = datetime.now(UTC).replace(microsecond=0)
    default_hash = hash_password()

    class Peer(SQLAlchemyModelFactory):
        class Meta:
            abstract = True
            sqlalchemy_session = session
            sqlalchemy_session_persistence = "flush"

    class Dated(Peer):
        class Meta:
            abstract = True

        created_at = now
        updated_at = now

    class PeerCompany(Dated):
        class Meta:
            model = m.Company

        name = factory.Faker("company")
        description = factory.Faker("catch_phrase")
        size = m.CompanySize.SMALL
        vertical = m.CompanyVertical.TECH
        status = m.CompanyStatus.ACTIVE

    class PeerUser(Dated):
        class Meta:
            model = m.User

        company = factory.SubFactory(PeerCompany)
        role = m.UserRole.REGULAR_USER
        name = factory.Faker("name")
        email = factory.Sequence(lambda n: f"peer.user{n}@example.com")
        password_hash = default_hash
        status = m.UserStatus.ACTIVE

    class PeerAgent(Dated):
        class Meta:
            model = m.Agent

        company = factory.SubFactory(PeerCompany)
        name = factory.Faker("catch_phrase")
        description = factory.Faker("sentence")
        agent_protocol = "MCP"
        status = m.AgentStatus.ACTIVE

    class PeerAuditLog(Peer):
        class Meta:
            model = m.AuditLog
            exclude = ("record",)

        user = factory.SubFactory(PeerUser, role=m.UserRole.COMPANY_ADMIN)
        record = factory.SubFactory(PeerAgent, company=factory.SelfAttribute("..user.company"))
        event_type = m.AuditEventType.CONFIGURATION_UPDATE
        event_description = factory.Faker("sentence")
        ip_address = factory.Faker("ipv4")
        table_name = "agents"
        record_id = factory.LazyAttribute(lambda o: o.record.id)
        created_at = now

    class PeerAuditChangeLog(Peer):
        class Meta:
            model = m.AuditChangeLog

        audit_log = factory.SubFactory(PeerAuditLog)
        column_name = "status"
        old_value = "ACTIVE"
        new_value = "DISABLED"
        created_at = now

    return {"company": PeerCompany, "user": PeerUser, "change": PeerAuditChangeLog}


#: The generator's steps whose rows a batch makes: users alone; an audit change log's
#: chain is the audit trail's step (its audit logs and change logs, written together).
GENERATOR_STEPS = {"UserFactory(company=c)": "users", "AuditChangeLogFactory()": "audit_logs"}


def generator_costs(
    rows: int, *, seed: int, db_url: str, clock: Callable[[], float] = time.perf_counter
) -> dict[str, dict[str, float]]:
    """Microseconds per row of the scenario generator's steps of ``GENERATOR_STEPS``, at a
    volume of about ``rows`` users (x20 at most: the cost per row is flat): ``made``, the
    time spent inside each step (its rows drawn) over the rows it yields; ``copied``, the
    time their COPY took (into a rolled-back transaction on ``db_url``), over the same rows.
    """
    import dataclasses

    import psycopg

    from pytest_celestra.rows import scenario
    from pytest_celestra.rows import steps as generate
    from pytest_celestra.rows.loader import COLUMNS, copy_rows
    from pytest_celestra.schema.volumes import Volume

    spent: dict[str, float] = {}
    made: dict[str, int] = {}

    def timed(step: generate.Step) -> generate.Step:
        def run(d: Any, f: Any) -> Any:
            rows = step.run(d, f)
            while True:
                started = clock()
                try:
                    item = next(rows)
                except StopIteration as done:
                    spent[step.name] = spent.get(step.name, 0) + clock() - started
                    return done.value
                spent[step.name] = spent.get(step.name, 0) + clock() - started
                made[step.name] = made.get(step.name, 0) + 1
                yield item

        return dataclasses.replace(step, run=run)

    volume = Volume.parse(f"x{min(20, max(1, rows // 500))}")
    anchor = scenario.anchor_for()
    saved = generate.STEPS
    generate.STEPS = tuple(timed(step) for step in saved)
    try:
        for _ in range(2):  # the first run hashes the passwords (a batch's warm-up does)
            spent.clear()
            made.clear()
            for _ in generate.generate(volume, seed, anchor):
                pass
    finally:
        generate.STEPS = saved
    copied: dict[str, float] = {}
    with psycopg.connect(db_url) as connection:  # one transaction, rolled back on leaving
        for table, chunk in generate.generate(volume, seed, anchor):
            if chunk:
                started = clock()
                copy_rows(connection, table, COLUMNS[table], chunk)
                copied[table] = copied.get(table, 0) + clock() - started
        connection.rollback()
    step_tables = {step.name: step.tables for step in saved}
    return {
        name: {
            "made": spent[step] / made[step] * 1e6,
            "copied": sum(copied.get(table, 0) for table in step_tables[step]) / made[step] * 1e6,
        }
        for name, step in GENERATOR_STEPS.items()
    }


def _median_ms(calls: int, function: Callable[[], Any]) -> float:
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def _timed(function: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    """Seconds ``function(*args, **kwargs)`` took, and what it returned."""
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - started, result


def measure(db_url: str, *, calls: int, rows: int, sample: int, seed: int) -> dict[str, Any]:
    """Every factory figure, measured in one rolled-back session on ``db_url``."""
    import factory.random
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from pytest_celestra.plugin.fixtures import rolled_back_session
    from pytest_celestra.rows import factories as f
    from pytest_celestra.urls import sqlalchemy_url

    factory.random.reseed_random(seed)  # type: ignore[no-untyped-call]
    sample = min(sample, rows)
    engine = create_engine(sqlalchemy_url(db_url), poolclass=NullPool)
    try:
        with rolled_back_session(engine) as session:
            peer = _peer_factories(session)
            company = f.CompanyFactory()
            peer_company = peer["company"]()
            singles = {
                "UserFactory(company=c)": (
                    lambda: f.UserFactory(company=company),
                    lambda: peer["user"](company=peer_company),
                ),
                "UserFactory()": (f.UserFactory, peer["user"]),
                "AuditChangeLogFactory()": (f.AuditChangeLogFactory, peer["change"]),
            }
            single: dict[str, dict[str, float]] = {}
            rounds = 5
            for name, (ours, theirs) in singles.items():
                for function in (ours, theirs):
                    _median_ms(10, function)  # warm: statement caches, first hashes
                ours_ms, peer_ms = [], []
                for _ in range(rounds):
                    ours_ms.append(_median_ms(max(1, calls // rounds), ours))
                    peer_ms.append(_median_ms(max(1, calls // rounds), theirs))
                single[name] = {
                    "ours_ms": statistics.median(ours_ms),
                    "peer_ms": statistics.median(peer_ms),
                }
            batch = _measure_batches(f, company, session, rows=rows, sample=sample)
    finally:
        engine.dispose()
    generator = generator_costs(rows, seed=seed, db_url=db_url)
    for name, values in batch.items():
        made, copied = generator[name]["made"], generator[name]["copied"]
        values["generator_us_per_row"] = made + copied
        values["generator_ratio"] = values["bulk_us_per_row"] / (made + copied)
        values["generator_made_us_per_row"] = made
        values["generator_made_ratio"] = values["bulk_made_us_per_row"] / made
    return {"calls": calls, "rows": rows, "sample": sample, "single": single, "batch": batch}


@contextlib.contextmanager
def flush_per_object(f: Any) -> Iterator[None]:
    """``create()`` as it was before ``bulk_create`` (release 0.1): factory_boy's own
    builder and a session flush per object (the cheaper lookup of traits stays)."""
    from factory.alchemy import SQLAlchemyModelFactory
    from sqlalchemy import select

    from pytest_celestra.rows import factory_internals
    from pytest_celestra.rows.batches import current_maker

    base = f.CelestraFactory
    entry = "_route" if "_route" in base.__dict__ else "_generate"  # an older checkout
    saving = "_save" if "_save" in base.__dict__ else "_create"  # older checkouts: _save
    saved = base.__dict__[entry], base.__dict__[saving]

    def generate(cls: Any, strategy: Any, params: dict[str, Any]) -> Any:
        assert current_maker() is None
        f.current_session(cls.__name__)
        return SQLAlchemyModelFactory._generate.__func__(cls, strategy, cls._share_parents(params))

    def save(cls: Any, model_class: Any, session: Any, args: Any, kwargs: Any) -> Any:
        obj = model_class(*args, **kwargs)
        session.add(obj)
        session.flush()
        return obj

    def create(cls: Any, model_class: Any, *args: Any, **kwargs: Any) -> Any:
        session = f.current_session(cls.__name__)
        if keys := factory_internals.get_or_create_keys(cls):
            lookup = {key: kwargs[key] for key in keys}
            existing = session.scalars(select(model_class).filter_by(**lookup)).first()
            if existing is not None:
                return existing
        return save(cls, model_class, session, args, kwargs)

    setattr(base, entry, classmethod(generate))
    setattr(base, saving, classmethod(save if saving == "_save" else create))
    try:
        yield
    finally:
        setattr(base, entry, saved[0])
        setattr(base, saving, saved[1])


def _rows_in(session: Any) -> int:
    """Rows in every Celestra table, as ``session`` sees them."""
    from sqlalchemy import text

    from pytest_celestra.schema.tables import TABLES_IN_FK_ORDER

    counts = " + ".join(f"(SELECT count(*) FROM {table})" for table in TABLES_IN_FK_ORDER)
    return int(session.scalar(text(f"SELECT {counts}")))


@contextlib.contextmanager
def _copy_time() -> Iterator[list[float]]:
    """Seconds spent in ``loader.copy_rows`` while the block runs (in ``[0]``)."""
    from pytest_celestra.rows import loader

    spent = [0.0]
    copy_rows = loader.copy_rows

    def timed(*args: Any, **kwargs: Any) -> int:
        started = time.perf_counter()
        try:
            return copy_rows(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - started

    loader.copy_rows = timed
    try:
        yield spent
    finally:
        loader.copy_rows = copy_rows


def _measure_batches(
    f: Any, company: Any, session: Any, *, rows: int, sample: int
) -> dict[str, Any]:
    """``bulk_create(rows)`` (and loading its objects) against ``create_batch`` scaled,
    as it is now and as it was (a flush per object); and the batch's cost per row it
    writes (its parents' rows included)."""
    cases = {
        "UserFactory(company=c)": (f.UserFactory, {"company": company}),
        "AuditChangeLogFactory()": (f.AuditChangeLogFactory, {}),
    }
    batch: dict[str, Any] = {}
    for name, (factory_class, kwargs) in cases.items():
        factory_class.bulk_create(10, **kwargs)  # warm
        before_rows = _rows_in(session)
        with _copy_time() as copy_s:
            bulk, made = _timed(factory_class.bulk_create, rows, **kwargs)
        written = _rows_in(session) - before_rows
        load, _ = _timed(made.objects)
        scale = rows / sample
        now = _timed(factory_class.create_batch, sample, **kwargs)[0] * scale
        with flush_per_object(f):
            before = _timed(factory_class.create_batch, sample, **kwargs)[0] * scale
        batch[name] = {
            "bulk_s": bulk,
            "load_objects_s": load,
            "create_batch_s": now,
            "create_batch_before_s": before,
            "speedup": now / bulk,
            "speedup_before": before / bulk,
            "rows_written": written,
            "bulk_us_per_row": bulk / written * 1e6,
            "bulk_made_us_per_row": (bulk - copy_s[0]) / written * 1e6,
        }
    return batch


def targets(figures: dict[str, Any], target_class: Any) -> list[Any]:
    """The factory targets (``target_class`` is the report's ``Target``)."""
    out = []
    for name, limit in SINGLE_TARGETS_MS.items():
        values = figures["single"][name]
        out.append(
            target_class(
                f"factory call {name}, median ms",
                f"ours {values['ours_ms']:.2f} ms, plain factory_boy {values['peer_ms']:.2f} ms",
                values["ours_ms"],
                limit,
            )
        )
    rows = figures["rows"]
    for name, limit in BATCH_TARGETS.items():
        values = figures["batch"][name]
        out.append(
            target_class(
                f"{rows:,} rows of {name}: bulk_create / scenario path, per row with COPY",
                f"bulk_create {values['bulk_us_per_row']:.0f} us a row "
                f"({values['rows_written']:,} rows), scenario path "
                f"{values['generator_us_per_row']:.0f} us a row; rows made without COPY: "
                f"{values['bulk_made_us_per_row']:.0f} and "
                f"{values['generator_made_us_per_row']:.0f} us "
                f"({values['generator_made_ratio']:.1f}x)",
                values["generator_ratio"],
                GENERATOR_RATIO_TARGET,
            )
        )
        for label, key in (("before", "_before"), ("now", "")):
            out.append(
                target_class(
                    f"{rows:,} rows of {name}: create_batch ({label}) / bulk_create",
                    f"create_batch {values[f'create_batch{key}_s']:.1f} s (scaled from "
                    f"{figures['sample']:,}), bulk_create {values['bulk_s']:.2f} s",
                    values[f"speedup{key}"],
                    limit,
                    at_most=False,
                )
            )
    return out


def render(figures: dict[str, Any]) -> str:
    """The factory figures as a small table."""
    lines = [
        f"factories (median of {figures['calls']} calls; batches of {figures['rows']:,} rows)",
        f"  {'call':<26} {'ours ms':>9} {'peer ms':>9}",
    ]
    for name, values in figures["single"].items():
        lines.append(f"  {name:<26} {values['ours_ms']:>9.2f} {values['peer_ms']:>9.2f}")
    lines.append(
        f"  {'batch':<26} {'create_batch s':>15} {'bulk s':>9} {'ratio':>7} {'target':>7}"
        f" {'+objects':>9} {'before: s':>10} {'ratio':>7}"
    )
    for name, values in figures["batch"].items():
        batch_target = f">={BATCH_TARGETS[name]:.0f}x"
        lines.append(
            f"  {name:<26} {values['create_batch_s']:>15.1f} {values['bulk_s']:>9.2f}"
            f" {values['speedup']:>6.1f}x {batch_target:>7}"
            f" {values['load_objects_s']:>9.2f} {values['create_batch_before_s']:>10.1f}"
            f" {values['speedup_before']:>6.1f}x"
        )
    lines.append(
        f"  {'us a row':<26} {'bulk':>6} {'scenario':>9} {'ratio':>6} {'target':>7}"
        f" | {'made: bulk':>10} {'scenario':>9} {'ratio':>6}"
    )
    gen_target = f"<={GENERATOR_RATIO_TARGET:.0f}x"
    for name, values in figures["batch"].items():
        lines.append(
            f"  {name:<26} {values['bulk_us_per_row']:>6.0f}"
            f" {values['generator_us_per_row']:>9.0f} {values['generator_ratio']:>5.1f}x"
            f" {gen_target:>7} | {values['bulk_made_us_per_row']:>10.0f}"
            f" {values['generator_made_us_per_row']:>9.0f} {values['generator_made_ratio']:>5.1f}x"
        )
    lines.append(
        "  ratio: create_batch / bulk_create (target: at least). us a row: every row the batch"
        " writes, its parents' included, against the scenario's rows of the same table(s)"
        " (users; audit logs and change logs): left, rows made and COPYed, the time a user"
        " waits for, which the target is about (at most); right, rows made without their COPY"
        " (the two engines alone)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """The factory section alone, on a scratch database of ``--dsn``'s server (created
    with the empty schema, dropped at the end): ``python
    benchmarks/celestra_bench_factories.py --dsn postgresql://postgres@127.0.0.1/postgres``."""
    import argparse
    import secrets

    from celestra_bench_workers import DB_PREFIX, create_schema_database
    from psycopg import connect, sql

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--dsn", required=True, help="a server's DSN (its database is unused)")
    parser.add_argument("--rows", type=int, default=10_000, help="rows of each bulk_create")
    parser.add_argument("--sample", type=int, default=1_000, help="create_batch rows timed")
    parser.add_argument("--calls", type=int, default=300, help="single calls of each kind")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    from sqlalchemy.engine import make_url

    name = f"{DB_PREFIX}factories_{secrets.token_hex(4)}"
    url = make_url(args.dsn).set(database=name).render_as_string(hide_password=False)
    create_schema_database(args.dsn, url)
    try:
        figures = measure(url, calls=args.calls, rows=args.rows, sample=args.sample, seed=args.seed)
    finally:
        with connect(args.dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
    print(render(figures))


if __name__ == "__main__":
    main()
