"""Your rules in the factories: the columns your migrations added, rows of your tables.

A factory reads the rules from its session
([`rules_of`][pytest_celestra.app_rules.rules_of]; the fixtures bind the run's), never
from the models: [`fill_rule_columns`][pytest_celestra.app_models.fill_rule_columns]
adds the values of the columns a rule fills to the row a factory INSERTs or a
`bulk_create` COPYs, drawn from the row's other values and factory_boy's random
generator (which the plugin reseeds for every test). A value passed to the factory,
e.g. `UserFactory(locale="fr-FR")`, wins over the rule, and the object carries it
(`user.locale`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pytest_celestra.app_rules import RowContext, new_uuid, rules_of
from pytest_celestra.errors import ConfigError

if TYPE_CHECKING:
    import random

    from sqlalchemy import Insert
    from sqlalchemy.orm import Session


def fill_rule_columns(
    session: Session, table: str, values: dict[str, Any], given: dict[str, Any]
) -> Insert | None:
    """Add to `values` (a row of one of our tables) the columns the rules of `session`
    add to `table`, from `given` (the factory's arguments) or the rules. Returns the
    INSERT that takes them (a table of the rules' own, never the model's), or None when
    `table` has no such columns."""
    import factory.random

    rules = rules_of(session)
    added = rules.added_values(table, values, given, factory.random.randgen)
    if not added:
        return None
    values.update(added)
    key = ("insert", table, tuple(added))
    if key not in rules.cache:
        from sqlalchemy import Column, MetaData, Table

        from pytest_celestra.models import Base

        ours = Base.metadata.tables[table].columns
        rules.cache[key] = Table(
            table,
            MetaData(),
            *(Column(column.name, column.type, key=column.name) for column in ours),
            *(Column(column) for column in added),
        ).insert()
    statement: Insert = rules.cache[key]
    return statement


def create_row(session: Session, table: str, **values: Any) -> dict[str, Any]:
    """INSERT one row of a table of your rules into the session's transaction; returns it.

    `values` give the parents (`user_id=user.id`) and any column to fix; the others
    come from the table's `row` rule, its column rules, random UUIDs for `uuid`
    columns without default, and the database's defaults:

    ```python
    prefs = create_row(celestra_session, "user_preferences", user_id=user.id)
    ```
    """
    import factory.random
    from sqlalchemy import MetaData, Table, insert
    from sqlalchemy.exc import DBAPIError

    from pytest_celestra.drift import rejected_row

    rules = rules_of(session)
    rule = rules.tables.get(table)
    if rule is None:
        raise ConfigError(
            f"no rules.table({table!r}) in pytest_celestra_schema_rules: create_row "
            "makes rows of the tables your rules describe"
        )
    session.flush()
    connection = session.connection()
    described = Table(table, MetaData(), autoload_with=connection)
    rng: random.Random = factory.random.randgen
    parents = {column: values[column] for column, _ in rule.parents if column in values}
    if missing := [column for column, _ in rule.parents if column not in values]:
        raise ConfigError(f"create_row({table!r}) needs the parent keys {', '.join(missing)}")
    row: dict[str, Any] = dict(parents)
    row.update(rule.make_row(RowContext(parents, 0, rng)))
    row.update(values)
    for column in described.columns:
        if column.name in row:
            continue
        column_rule = rules.columns.get((table, column.name))
        if column_rule is not None:
            row[column.name] = column_rule.make(row, rng)
        elif column.server_default is None and str(column.type).lower() == "uuid":
            row[column.name] = new_uuid(rng)
    try:
        made = connection.execute(insert(described).values(row).returning(*described.columns))
        return dict(made.mappings().one())
    except DBAPIError as error:
        raise rejected_row(error, table, f"create_row({table!r})", rules) from None
