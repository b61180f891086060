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
