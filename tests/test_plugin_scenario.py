"""``celestra_scenario``: what a test can read about the scenario of its seeded database."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import text

from pytest_celestra.plugin.run_info import CONFIG_KEY, RUN_KEY


def table_counts(session, tables) -> dict[str, int]:
    return {table: session.scalar(text(f"SELECT count(*) FROM {table}")) for table in tables}


def test_it_tells_the_runs_volume_seed_anchor_and_rows(
    celestra_scenario, celestra_seeded_db, pytestconfig
):
    run_scenario = pytestconfig.stash[CONFIG_KEY].scenario
    assert celestra_scenario.volume == run_scenario.volume
    assert celestra_scenario.seed == run_scenario.seed
    assert celestra_scenario.anchor == pytestconfig.stash[RUN_KEY].anchor
    assert isinstance(celestra_scenario.anchor, datetime)
    rows = celestra_scenario.rows
    assert dict(rows) == dict(run_scenario.volume.counts)
    assert table_counts(celestra_seeded_db, rows) == dict(rows)
    # The option holds a Volume only when given on the command line: the fixture is the way.
    assert pytestconfig.getoption("--celestra-volume") in (None, run_scenario.volume)


def test_rows_are_those_every_test_starts_from(celestra_scenario, celestra_seeded_db):
    celestra_seeded_db.execute(text("DELETE FROM notifications"))
    assert (
        celestra_scenario.rows["notifications"] == celestra_scenario.volume.counts["notifications"]
    )


@pytest.mark.celestra(volume="small,users=30", seed=7)
def test_it_follows_the_marker(celestra_scenario, celestra_seeded_db):
    assert celestra_scenario.volume.name == "small,users=30"
    assert celestra_scenario.seed == 7
    assert celestra_scenario.rows["users"] == 30
    assert table_counts(celestra_seeded_db, ["users"]) == {"users": 30}
