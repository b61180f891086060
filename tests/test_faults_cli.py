"""``celestra-seed`` pointed at someone else's database: it never calls their tables
Celestra data, refuses (touching nothing) when a table or type of a Celestra name is not
Celestra's, and says what it created where it seeds. Against the suite's server, on
scratch databases of this module (``celestra_cli_*``, dropped afterwards)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import psycopg
from helpers import SMALL, create_database, row_counts, run_cli

from pytest_celestra.schema.catalog import celestra_enums
from pytest_celestra.schema.models import TABLES_IN_FK_ORDER

if TYPE_CHECKING:
    from collections.abc import Callable

#: The user's own schema: a `users` table of other columns, a `user_status` type of other
#: labels (both Celestra names), and a table of a name Celestra does not use.
THEIR_SCHEMA = """
CREATE TYPE user_status AS ENUM ('happy', 'sad');
CREATE TABLE users (id serial PRIMARY KEY, nickname text NOT NULL, status user_status);
CREATE TABLE orders (id serial PRIMARY KEY, user_id int REFERENCES users (id));
INSERT INTO users (nickname, status) VALUES ('ada', 'happy'), ('bob', 'sad');
INSERT INTO orders (user_id) VALUES (1);
"""


def catalog(url: str) -> dict[str, Any]:
    """What a database holds: its tables and types (public schema) and their rows."""
    with psycopg.connect(url) as connection:
        tables = connection.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
        ).fetchall()
        types = connection.execute(
            "SELECT typname FROM pg_type WHERE typnamespace = 'public'::regnamespace "
            "AND typtype = 'e' ORDER BY 1"
        ).fetchall()
        users = connection.execute("SELECT * FROM users ORDER BY id").fetchall()
        orders = connection.execute("SELECT * FROM orders ORDER BY id").fetchall()
    return {"tables": tables, "types": types, "users": users, "orders": orders}


def test_tables_of_celestra_names_that_are_not_celestras_are_refused_untouched(
    scratch: Callable[[], str], admin_dsn: str
) -> None:
    url = scratch()
    create_database(admin_dsn, url)
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(THEIR_SCHEMA)
    before = catalog(url)
    for reset in ([], ["--reset"]):
        result = run_cli("--dsn", url, "--volume", "small", *reset)
        assert result.returncode == 1
        assert result.stdout == ""
        message = result.stderr.strip()
        assert len(message.splitlines()) == 1
        assert "Celestra data" not in message
        assert "not Celestra's" in message
        assert "table users: no column company_id" in message
        assert "column nickname not in Celestra's" in message
        assert "column id is integer, not uuid" in message
        assert "type user_status has the labels happy, sad, not " in message
        assert "orders" not in message  # not a Celestra name: none of our business
        assert "--reset would not help" in message
        assert "--database NAME" in message
        assert catalog(url) == before  # no Celestra table or type was created


def test_seeding_beside_their_tables_says_what_it_created(
    scratch: Callable[[], str], admin_dsn: str
) -> None:
    text_url, json_url = scratch(), scratch()
    for url in (text_url, json_url):
        create_database(admin_dsn, url)
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute("CREATE TABLE orders (id serial PRIMARY KEY, note text)")
            connection.execute("INSERT INTO orders (note) VALUES ('mine')")

    shown = run_cli("--dsn", text_url, "--volume", "small")
    assert shown.returncode == 0, shown.stderr
    assert ", created now" not in shown.stdout  # the database was theirs
    assert (
        "Created there: 15 tables and 13 enum types of the Celestra schema, "
        "beside 1 other table (untouched)."
    ) in shown.stdout

    as_json = run_cli("--dsn", json_url, "--volume", "small", "--json")
    assert as_json.returncode == 0, as_json.stderr
    summary = json.loads(as_json.stdout)
    assert summary["created_database"] is False
    assert sorted(summary["created_tables"]) == sorted(TABLES_IN_FK_ORDER)
    assert sorted(summary["created_types"]) == sorted(celestra_enums())
    assert summary["other_tables"] == 1

    for url in (text_url, json_url):
        assert row_counts(url) == SMALL
        with psycopg.connect(url) as connection:
            assert connection.execute("SELECT note FROM orders").fetchall() == [("mine",)]

    # Seeding again over its own schema: nothing is created, and it says so.
    again = run_cli("--dsn", text_url, "--volume", "small", "--reset")
    assert again.returncode == 0, again.stderr
    assert "Created there: nothing, the Celestra schema was there already" in again.stdout
