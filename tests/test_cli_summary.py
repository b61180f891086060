"""Issue 21: how the summary of ``celestra-seed`` names the server it seeded.

In process, against a scratch database of the suite's server (``celestra_cli_*``, dropped
afterwards). The tables ``--rules`` seeded are named in ``test_cli_rules.py``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from helpers import ANCHOR_DAY, run_cli
from sqlalchemy.engine import make_url

from pytest_celestra import cli

if TYPE_CHECKING:
    from collections.abc import Callable


def test_a_server_on_a_socket_is_named_by_its_socket_not_as_a_host() -> None:
    socket = make_url("postgresql://postgres@/celestra?host=/var/lib/demo-pgdata")
    assert cli.server_address(socket) == "/var/lib/demo-pgdata/.s.PGSQL.5432"
    assert cli.server_address(socket.set(port=5433)) == "/var/lib/demo-pgdata/.s.PGSQL.5433"
    tcp = make_url("postgresql://postgres@db.example.com:6543/celestra")
    assert cli.server_address(tcp) == "db.example.com:6543"


def test_the_json_summary_names_the_server_by_host_and_port_or_by_socket(
    scratch: Callable[[], str],
) -> None:
    """The suite's server: on TCP with a DSN, on a socket when it is the embedded one."""
    url = scratch()
    result = run_cli("--dsn", url, "--volume", "small", "--anchor-day", ANCHOR_DAY, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    parsed = make_url(url)
    port = parsed.port or 5432
    socket_folder = parsed.query.get("host")
    expected = f"{parsed.host}:{port}" if parsed.host else f"{socket_folder}/.s.PGSQL.{port}"
    assert summary["server_address"] == expected
    assert summary["other_tables"] == 0
