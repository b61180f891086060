"""Your rules in the factories (read from the session, never from the models): the columns
and labels your migrations added, and a factory for each table of yours. A value passed to
a factory (`UserFactory(locale="fr-FR")`) wins over the rule, and the object carries it.
"""

from __future__ import annotations

import enum
from functools import cache
from itertools import groupby
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from factory.base import Factory
from factory.declarations import Maybe, SubFactory

from pytest_celestra.errors import ConfigError, FactoryArgumentError
from pytest_celestra.rows.factory_internals import next_sequence
from pytest_celestra.schema.app_rules import builtin_tables, rules_of

if TYPE_CHECKING:
    from sqlalchemy import Insert
    from sqlalchemy.orm import Session

    from pytest_celestra.schema.app_rules import SchemaRules, TableRule


@cache
def _enum_types(table: str) -> dict[str, str]:
    from sqlalchemy import Enum

    from pytest_celestra.schema.models import Base

    columns = Base.metadata.tables[table].columns
    return {c.name: str(c.type.name) for c in columns if isinstance(c.type, Enum) and c.type.name}


def fill_rule_columns(
    session: Session, table: str, values: dict[str, Any], given: dict[str, Any]
) -> Insert | None:
    """Apply to `values` (a row of one of our tables) the rules of `session`: enum labels
    your rules add, and values of the columns they add (from `given`, the factory's
    arguments, else from their rules, drawn with factory_boy's generator). Returns the
    INSERT that takes them, or None when the rules do not touch `table`."""
    import factory.random

    rules = rules_of(session)
    labels = {c: kind for c, kind in _enum_types(table).items() if kind in rules.enum_shares}
    for column in labels:
        if isinstance(values.get(column), enum.Enum):
            values[column] = values[column].value
    added = rules.added_values(table, values, given, factory.random.randgen)
    if not added and not labels:
        return None
    values.update(added)
    key = ("insert", table, tuple(added))
    if key not in rules.cache:
        from sqlalchemy import Column, Enum, MetaData, Table

        from pytest_celestra.schema.models import Base

        def typed(c: Any) -> Any:  # an enum column takes your labels too
            if c.name not in labels:
                return c.type
            return Enum(*c.type.enums, *rules.enum_shares[labels[c.name]], name=labels[c.name])

        rules.cache[key] = Table(
            table,
            MetaData(),
            *(Column(c.name, typed(c), key=c.name) for c in Base.metadata.tables[table].columns),
            *(Column(column) for column in added),
        ).insert()
    statement: Insert = rules.cache[key]
    return statement


def added_label(session: Any, table: str, column: str, label: str) -> bool:
    """Whether `label` is a label your rules add to the enum type of `table.column`."""
    kind = _enum_types(table).get(column)
    return kind is not None and label in rules_of(session).enum_shares.get(kind, {})


def factory_for(table: str) -> Any:
    """The factory of `table`: one of ours (`factory_for("users")` is `UserFactory`), or a
    table of yours that the bound session's rules describe (`rules.table(...)`), a
    factory_boy factory whose parents are `SubFactory`s (ours, e.g. `UserFactory`, or the
    factory of a table of yours), named after the FK column without `_id` (`user_id` ->
    `user`):

    ```python
    from pytest_celestra.rows.app_factories import factory_for

    prefs = factory_for("user_preferences")(user=user, theme="dark")
    many = factory_for("user_preferences").bulk_create(100, user=user)
    ```

    A row's other values come from the table's rules, as in the seeded templates; each
    object has the row's columns (and its parents) as attributes.
    """
    from pytest_celestra.rows.factories import current_session

    return rules_of(current_session(f"factory_for({table!r})")).factory(table)


def _relation(column: str) -> str:
    return column.removesuffix("_id") if column.endswith("_id") else f"{column}_row"


def table_factory(rules: SchemaRules, table: str) -> Any:
    """What `rules.factory(table)` returns."""
    rule = rules.tables.get(table)
    if rule is None:
        raise ConfigError(
            f"no table {table!r}: factory_for makes rows of our tables "
            f"({', '.join(builtin_tables())}) and of those your rules describe "
            "(rules.table(...) in pytest_celestra_schema_rules)"
        )
    if rule.factory is not None:  # one of our tables: its factory (`users`: `UserFactory`)
        from pytest_celestra.rows import factories

        return getattr(factories, rule.factory)
    parents: dict[str, Any] = {}  # None: a table no rule fills (its rows are your migrations')
    declarations: dict[str, Any] = {column: None for column, _ in rule.parents}
    for column, parent in rule.parents:  # a parent's key given: no parent made
        name = _relation(column)
        parents[name] = rules.factory(parent) if parent in rules.tables else None
        if parents[name] is not None:
            made = SubFactory(parents[name])  # type: ignore[no-untyped-call]
            declarations[name] = Maybe(column, None, made)  # type: ignore[no-untyped-call]
    name = "".join(part.title() for part in table.split("_")) + "Factory"
    meta = type("Meta", (), {"model": dict})
    attributes = {"Meta": meta, "_rules": rules, "_rule": rule, "_parents": parents}
    return type(name, (_TableFactory,), {**attributes, **declarations})


class _TableFactory(Factory[dict[str, Any]]):
    """Base of the factories of your tables (made by `table_factory`)."""

    class Meta:
        abstract = True

    _rules: SchemaRules
    _rule: TableRule
    _parents: dict[str, Any]  # parent's name (`user`) -> its factory, None: an existing row

    @classmethod
    def _create(cls, model_class: Any, **kwargs: Any) -> Any:
        return cls._insert([kwargs])[0]

    @classmethod
    def bulk_create(cls, size: int, **kwargs: Any) -> list[Any]:
        """`size` rows in one INSERT; a parent not given is made for each row, in one batch."""
        for column, _ in cls._rule.parents:
            name = _relation(column)
            made = cls._parents[name]
            if made is not None and kwargs.get(name) is None and kwargs.get(column) is None:
                kwargs[name] = list(made.bulk_create(size))
        calls = [
            {key: value[i] if isinstance(value, list) else value for key, value in kwargs.items()}
            for i in range(size)
        ]
        return cls._insert(calls)

    @classmethod
    def _insert(cls, calls: list[dict[str, Any]]) -> list[Any]:
        import factory.random
        from sqlalchemy import Column, MetaData, Table, insert
        from sqlalchemy.exc import DBAPIError

        from pytest_celestra.db.drift import rejected_row
        from pytest_celestra.rows import loader
        from pytest_celestra.rows.factories import current_session
        from pytest_celestra.schema.catalog import read_catalog

        rule, rules, rng = cls._rule, cls._rules, factory.random.randgen
        session = current_session(cls.__name__)
        session.flush()
        connection = session.connection()
        if "celestra_catalog" not in session.info:  # read once per session
            session.info["celestra_catalog"] = read_catalog(connection)
        catalog = session.info["celestra_catalog"]
        found = catalog.tables.get(rule.name, {})
        columns = [
            (name, column_rule, rng) for name, column_rule in rules.added_columns(rule.name).items()
        ]

        def kind(name: str) -> str | None:
            return found[name].type if name in found else None

        # FK column -> the column of its parent it points at: `id`, or `plans.code`
        referenced = {key: catalog.referenced(rule.name, key) for key, _ in rule.parents}
        existing: dict[str, list[Any]] = {}  # FK column -> the keys its parent table holds

        def picked(key: str, table: str) -> Any:
            if key not in existing:
                pg_conn = loader.raw_connection(connection)
                existing[key] = loader.existing_keys(pg_conn, table, referenced[key])
            if not existing[key]:
                raise ConfigError(
                    f"{cls.__name__}: {rule.name}.{key} points at {table}, which no rule fills "
                    f"and which has no rows: pass {_relation(key)}= or {key}=, or put rows in "
                    f"{table} (your migrations, or a fixture) first"
                )
            return rng.choice(existing[key])

        rows, given_parents = [], []
        for call in calls:
            given = {key: value for key, value in call.items() if key not in cls._parents}
            if found and (unknown := sorted(given.keys() - found.keys())):
                raise FactoryArgumentError(
                    f"{cls.__name__}({unknown[0]}=...): {rule.name} has no column "
                    f"{unknown[0]!r}. Its columns: {', '.join(found)}; its parents, as "
                    f"objects: {', '.join(cls._parents)}"
                )
            parents = {}
            for key, table in rule.parents:
                parent = call.get(_relation(key))
                parents[key] = given.pop(key, None) or getattr(parent, referenced[key], None)
                if parents[key] is None and cls._parents[_relation(key)] is None:
                    parents[key] = picked(key, table)
            given_parents.append({name: call.get(name) for name in cls._parents})
            index = next_sequence(cls)
            rows.append(rule.row_values(parents, index, rng, columns, found, kind, given))
        names = found or rows[0]
        described = Table(rule.name, MetaData(), *(Column(name) for name in names))
        statement = insert(described).returning(*described.c, sort_by_parameter_order=True)
        made: list[Any] = []
        try:  # one INSERT for each run of rows with the same columns (normally all of them)
            for _, same in groupby(rows, key=tuple):
                made += connection.execute(statement, list(same)).mappings().all()
        except DBAPIError as error:
            raise rejected_row(error, rule.name, cls.__name__, rules) from None
        return [
            SimpleNamespace(**row, **parents)
            for row, parents in zip(made, given_parents, strict=True)
        ]
