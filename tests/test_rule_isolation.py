"""Two descriptions of the schema in one process: the built-in one and one extended by a
user's rules. Each session follows its own; neither changes the models nor the other."""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg
import pytest
from helpers import create_database
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from pytest_celestra.errors import FactoryArgumentError
from pytest_celestra.rows.factories import UserFactory, bound_session
from pytest_celestra.schema.app_rules import SchemaRules
from pytest_celestra.schema.models import Base, User

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from sqlalchemy.engine import Engine


@pytest.fixture
def engine(scratch: Callable[[], str], admin_dsn: str) -> Iterator[Engine]:
    """A database with the built-in schema and a nullable ``users.locale``: rows of
    either description fit it."""
    url = scratch()
    create_database(admin_dsn, url)
    engine = create_engine(make_url(url).set(drivername="postgresql+psycopg"), poolclass=NullPool)
    with engine.begin() as connection:
        Base.metadata.create_all(connection)
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("ALTER TABLE users ADD COLUMN locale text")
        connection.execute("ALTER TYPE company_status ADD VALUE 'DORMANT'")
    yield engine
    engine.dispose()


def _locales(session: Session, ids: list[object]) -> list[str | None]:
    statement = text("SELECT locale FROM users WHERE id = ANY(:ids) ORDER BY locale")
    return list(session.execute(statement, {"ids": ids}).scalars())


def test_two_descriptions_in_one_process_do_not_interfere(engine: Engine) -> None:
    columns = tuple(User.__table__.c.keys())
    rules = SchemaRules()
    rules.column("users", "locale", values={"de-DE": 1})
    builtin = SchemaRules()
    with Session(engine) as with_rules, Session(engine) as plain:
        made: dict[str, list[object]] = {"rules": [], "plain": []}
        for _ in range(2):  # interleaved: each call follows its own session's description
            with bound_session(with_rules, rules):
                user = UserFactory()
                assert user.locale == "de-DE"
                made["rules"] += [user.id, *UserFactory.bulk_create(2).ids]
                assert UserFactory(locale="fr-FR").locale == "fr-FR"
            with bound_session(plain, builtin):
                user = UserFactory()
                assert not hasattr(user, "locale")
                made["plain"] += [user.id, *UserFactory.bulk_create(2).ids]
                with pytest.raises(FactoryArgumentError, match="'locale'"):
                    UserFactory(locale="fr-FR")
        assert _locales(with_rules, made["rules"]) == ["de-DE"] * 6
        assert _locales(plain, made["plain"]) == [None] * 6
    # Nothing was added to the models the two share.
    assert tuple(User.__table__.c.keys()) == columns
    assert not hasattr(User, "locale")


def test_our_tables_are_the_built_in_description_that_yours_extend() -> None:
    """Every `SchemaRules` holds our 15 tables as `rules.table` describes one of yours
    (parents, rows per volume, columns, factory), and a hook's calls add to its own copy."""
    from pytest_celestra.rows.factory_internals import model_class
    from pytest_celestra.schema.app_rules import builtin_tables
    from pytest_celestra.schema.tables import TABLES_IN_FK_ORDER
    from pytest_celestra.schema.volumes import Volume

    rules = SchemaRules()
    rules.table("user_preferences", parents={"user_id": "users"}, count={"default": 5})
    rules.column("users", "locale", values={"en-US": 1})
    assert list(rules.tables) == [*TABLES_IN_FK_ORDER, "user_preferences"]
    assert list(rules.added_tables()) == ["user_preferences"]
    assert list(rules.added_columns("users")) == ["locale"]
    medium = Volume.named("medium")
    for name in TABLES_IN_FK_ORDER:
        described = rules.tables[name]
        table = Base.metadata.tables[name]
        assert described.parents == tuple(
            (column.name, key.column.table.name)
            for column in table.columns
            for key in column.foreign_keys
        )
        assert [column for column, _ in described.columns] == list(table.c.keys())
        assert described.rows_for(medium) == medium.counts[name]
        assert model_class(rules.factory(name)).__tablename__ == name
    assert rules.tables["users"].parents == (("company_id", "companies"),)
    assert rules.tables["user_preferences"].rows_for(medium) == 5
    # The other description is untouched by the hook's calls.
    assert SchemaRules().tables == builtin_tables()
    assert not SchemaRules().added_columns("users")


def test_a_label_your_rules_add_is_taken_by_a_parent_too(engine: Engine) -> None:
    """`company__status="DORMANT"` was refused ("not a label of CompanyStatus") where
    `CompanyFactory(status="DORMANT")` was taken."""
    from pytest_celestra.rows.factories import CompanyFactory

    rules = SchemaRules()
    rules.enum_weights("company_status", {"DORMANT": 0})
    query = text("SELECT status::text FROM companies WHERE id = :id")
    with Session(engine) as session, bound_session(session, rules):
        company = CompanyFactory(status="DORMANT")
        assert session.execute(query, {"id": company.id}).scalar() == "DORMANT"
        user = UserFactory(company__status="DORMANT")
        assert session.execute(query, {"id": user.company_id}).scalar() == "DORMANT"


def test_a_shaped_volume_takes_its_bases_count_of_a_table_of_yours() -> None:
    """`count={"small": 40, ...}`, the docs' shape, failed every test of `small,users=30`
    or `x2` with "gives no count for the volume"."""
    from pytest_celestra.errors import ConfigError
    from pytest_celestra.schema.volumes import Volume

    rules = SchemaRules()
    rules.table(
        "user_preferences", parents={"user_id": "users"}, count={"small": 40, "medium": 400}
    )
    table = rules.tables["user_preferences"]
    expected = {
        "small": 40,
        "small,users=30": 40,
        "medium,agents=90": 400,
        "x2": 800,
        "large": 40_000,
    }
    assert {name: table.rows_for(Volume.parse(name)) for name in expected} == expected
    rules.table("user_notes", parents={"user_id": "users"}, count={"small": 4, "default": 7})
    assert rules.tables["user_notes"].rows_for(Volume.parse("x2")) == 7
    rules.table("user_tags", parents={"user_id": "users"}, count={"small": 4})
    with pytest.raises(ConfigError, match='add "x2", "medium" or "default"'):
        rules.tables["user_tags"].rows_for(Volume.parse("x2"))
