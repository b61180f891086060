"""Seeding is a pure function of (seed, volume, anchor).

* the same seed and volume give the same rows, ids included, whatever the anchor, the global
  random state or the Python process (hash randomisation);
* every time column is anchor + offset: two anchors one day apart shift each by one day;
* a different seed gives different data.

Each scenario is seeded inside a savepoint of ``celestra_session`` and dumped, then the
savepoint is rolled back, so several scenarios can be compared within one test.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import factory.random
import pytest
from helpers import digest, table_columns
from sqlalchemy import text

from pytest_celestra.rows.scenario import DEFAULT_SEED, anchor_for, seed_scenario
from pytest_celestra.schema.volumes import Volume

VOLUMES = ["small", "small,users=40,agents=12"]


def dump(session) -> dict[str, dict[str, list[tuple]]]:
    """table -> {"plain": rows of non-time columns, "times": rows of (id, time columns...)},
    ordered by id."""
    result = {}
    for table, (plain, times) in table_columns(session).items():
        result[table] = {
            "plain": [tuple(r) for r in session.execute(text(_select(table, plain)))],
            "times": [tuple(r) for r in session.execute(text(_select(table, ["id", *times])))],
        }
    return result


def _select(table: str, columns: list[str]) -> str:
    return f"SELECT {', '.join(columns)} FROM {table} ORDER BY id"


def seeded(session, volume: str, *, seed: int = DEFAULT_SEED, anchor=None, read=dump):
    """Seed ``volume`` in a savepoint, return ``read(session)``, roll the savepoint back."""
    savepoint = session.begin_nested()
    try:
        seed_scenario(session, Volume.parse(volume), seed=seed, anchor=anchor or anchor_for())
        return read(session)
    finally:
        savepoint.rollback()


def first_difference(a: list[tuple], b: list[tuple]) -> str:
    if len(a) != len(b):
        return f"{len(a)} rows vs {len(b)} rows"
    for left, right in zip(a, b, strict=True):
        if left != right:
            return f"first differing row:\n  {left}\n  {right}"
    return "identical"


@pytest.mark.parametrize("volume", VOLUMES)
def test_same_seed_same_data(celestra_session, volume):
    anchor = anchor_for()
    first = seeded(celestra_session, volume, anchor=anchor)
    # Whatever else ran in between must not matter: disturb every global random state.
    random.seed(987654321)
    factory.random.reseed_random(987654321)
    second = seeded(celestra_session, volume, anchor=anchor)
    for table in first:
        for part in ("plain", "times"):
            assert first[table][part] == second[table][part], (
                f"{table} ({part}): {first_difference(first[table][part], second[table][part])}"
            )


@pytest.mark.parametrize("volume", VOLUMES)
def test_other_anchor_shifts_every_time_column_by_the_anchor_difference(celestra_session, volume):
    anchor = anchor_for()
    today = seeded(celestra_session, volume, anchor=anchor)
    yesterday = seeded(celestra_session, volume, anchor=anchor - timedelta(days=1))
    time_columns = table_columns(celestra_session)
    for table in today:
        assert today[table]["plain"] == yesterday[table]["plain"], (
            f"{table}: non-time columns depend on the anchor; "
            + first_difference(today[table]["plain"], yesterday[table]["plain"])
        )
        names = time_columns[table][1]
        wrong = [
            f"{table}.{name} of {row_today[0]}: {y} with yesterday's anchor, {t} with today's"
            for row_today, row_yesterday in zip(
                today[table]["times"], yesterday[table]["times"], strict=True
            )
            for name, t, y in zip(names, row_today[1:], row_yesterday[1:], strict=True)
            if not one_day_apart(t, y)
        ]
        assert not wrong, "time columns must differ by exactly one day:\n" + "\n".join(wrong[:10])


def one_day_apart(later, earlier) -> bool:
    if later is None or earlier is None:
        return later is None and earlier is None
    return later - earlier == timedelta(days=1)


def test_other_seed_other_data(celestra_session):
    def identities(session):
        def column(sql):
            return [v for (v,) in session.execute(text(sql))]

        return {
            "company names": column("SELECT name FROM companies ORDER BY name"),
            "user names": column("SELECT name FROM users ORDER BY name"),
            "emails": column("SELECT email FROM users ORDER BY email"),
            "session tokens": column("SELECT session_token FROM user_sessions"),
            "invitation tokens": column("SELECT token FROM invitations"),
            "user ids": column("SELECT id FROM users"),
        }

    first = seeded(celestra_session, "small", seed=DEFAULT_SEED, read=identities)
    second = seeded(celestra_session, "small", seed=DEFAULT_SEED + 1, read=identities)
    for what in ("company names", "user names", "emails"):
        assert first[what] != second[what], f"{what} are the same for two seeds: {first[what]}"
    for what in ("session tokens", "invitation tokens", "user ids"):
        shared = set(first[what]) & set(second[what])
        assert not shared, f"{len(shared)} {what} occur with both seeds, e.g. {sorted(shared)[:3]}"


_SEED_IN_SUBPROCESS = """
import json, sys
from sqlalchemy import create_engine
from sqlalchemy.orm import Session
from pytest_celestra.rows.scenario import anchor_for, seed_scenario
from pytest_celestra.schema.volumes import Volume
from helpers import digest

url, volume, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
engine = create_engine(url)
with Session(engine) as session:
    seed_scenario(session, Volume.parse(volume), seed=seed, anchor=anchor_for())
    print(json.dumps(digest(session)))
    session.rollback()
engine.dispose()
"""


def test_same_data_in_another_process(celestra_session, celestra_engine):
    """Nothing depends on str hashing: other PYTHONHASHSEEDs give the same rows."""
    url = celestra_engine.url.render_as_string(hide_password=False)
    here = Path(__file__).parent
    python_path = os.pathsep.join(filter(None, [str(here), os.environ.get("PYTHONPATH")]))
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _SEED_IN_SUBPROCESS, url, "small", str(DEFAULT_SEED)],
            cwd=here,
            env={**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": python_path},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for hash_seed in ("1", "2")
    ]
    outputs = [process.communicate(timeout=120) for process in processes]
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr
    digests = [json.loads(stdout) for stdout, _ in outputs]
    here_digest = seeded(celestra_session, "small", read=digest)
    assert digests[0] == digests[1] == here_digest
