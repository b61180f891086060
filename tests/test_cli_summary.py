"""Issue 21: what the summary of ``celestra-seed`` says about the database it seeded.

In process, against scratch databases of the suite's server (``celestra_cli_*``, dropped
afterwards)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import psycopg
from sqlalchemy.engine import make_url
from test_cli import ANCHOR_DAY, scratch
from test_cli_rules import migrated_database, rules_file

from pytest_celestra import cli

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

__all__ = ["scratch"]  # the fixture


def test_a_table_the_rules_seeded_is_not_called_untouched(
    scratch: Callable[[], str], admin_dsn: str, tmp_path: Path, capsys
) -> None:
    url = scratch()
    migrated_database(admin_dsn, url)  # Celestra's schema, users.locale, user_preferences
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("CREATE TABLE orders (id serial PRIMARY KEY)")
    rules = str(rules_file(tmp_path))
    arguments = ["--dsn", url, "--volume", "small", "--anchor-day", ANCHOR_DAY, "--rules", rules]
    assert cli.main(arguments) == 0
    assert (
        "  Created there: nothing, the Celestra schema was there already, beside "
        "user_preferences (seeded by your rules) and 1 other table (untouched).\n"
    ) in capsys.readouterr().out


def test_a_server_on_a_socket_is_named_by_its_socket_not_as_a_host() -> None:
    socket = make_url("postgresql://postgres@/celestra?host=/var/lib/demo-pgdata")
    assert cli.server_address(socket) == "/var/lib/demo-pgdata/.s.PGSQL.5432"
    assert cli.server_address(socket.set(port=5433)) == "/var/lib/demo-pgdata/.s.PGSQL.5433"
    tcp = make_url("postgresql://postgres@db.example.com:6543/celestra")
    assert cli.server_address(tcp) == "db.example.com:6543"


def test_the_json_summary_names_the_server_as_before(scratch: Callable[[], str], capsys) -> None:
    url = scratch()
    assert cli.main(["--dsn", url, "--volume", "small", "--anchor-day", ANCHOR_DAY, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    parsed = make_url(url)
    assert summary["server_address"] == f"{parsed.host}:{parsed.port or 5432}"
    assert summary["other_tables"] == 0
