"""Your rules in the factories: new columns mapped onto the models, rows of new tables.

[`map_rule_columns`][pytest_celestra.app_models.map_rule_columns] adds each column a
[`SchemaRules.column`][pytest_celestra.app_rules.SchemaRules.column] rule fills to the
model of its table, with the rule as the column's default: every INSERT the ORM or a
factory makes then fills it, from the row's other values and factory_boy's random
generator (which the plugin reseeds for every test). A value passed to the factory, e.g.
`UserFactory(locale="fr-FR")`, wins over the rule.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

from pytest_celestra.app_rules import (
    RowContext,
    SchemaRules,
    activate,
    active_rules,
    mapped_copy_types,
    new_uuid,
)
from pytest_celestra.errors import ConfigError

if TYPE_CHECKING:
    import random
    from collections.abc import Mapping

    from sqlalchemy.orm import Session

    from pytest_celestra.app_rules import ColumnRule


def _plain(values: Mapping[str, Any]) -> dict[str, Any]:
    """Enum members as the labels the generator writes, so a rule sees one shape."""
    return {
        key: value.name if isinstance(value, enum.Enum) else value for key, value in values.items()
    }


def _column_default(rule: ColumnRule, column_type: str | None) -> Any:
    def default(context: Any) -> Any:
        import factory.random

        rng: random.Random = factory.random.randgen
        return rule.make(_plain(context.get_current_parameters()), rng, column_type)

    return default


def map_rule_columns(rules: SchemaRules) -> None:
    """Map every rule's column of one of our tables onto its model (once per process)."""
    from sqlalchemy import Boolean, Column, FetchedValue, Integer, Table, Text, inspect

    # What the generator writes is read from the models before they change.
    from pytest_celestra import loader
    from pytest_celestra.drift import builtin_constraint_names
    from pytest_celestra.existing_schema import celestra_columns
    from pytest_celestra.models import MODELS_IN_FK_ORDER

    celestra_columns()
    builtin_constraint_names()
    activate(rules)
    models = {model.__tablename__: model for model in MODELS_IN_FK_ORDER}
    for (table, column), rule in rules.columns.items():
        model = models.get(table)
        if model is None or column in loader.COLUMNS[table] or column in model.__table__.c:
            continue
        values = [value for value, _ in rule.values]
        kind: Any = Text
        mapped_copy_types[table, column] = "text"
        if values and all(isinstance(value, bool) for value in values):
            kind, mapped_copy_types[table, column] = Boolean, "bool"
        elif values and all(isinstance(value, int) for value in values):
            kind, mapped_copy_types[table, column] = Integer, "int4"
        # system: left out of CREATE TABLE (the schema is yours). server_default: the
        # factories' own INSERT leaves the column out, so this default fills it, as in a flush.
        # A derive rule's column is Text to the model whatever the database's type:
        # its values are checked only for being values the driver can send.
        checked = {"bool": "boolean", "int4": "integer"}.get(mapped_copy_types[table, column])
        mapped = Column(
            column,
            kind,
            default=_column_default(rule, checked),
            server_default=FetchedValue(),
            system=True,
        )
        table_of_model: Table = model.__table__  # type: ignore[assignment]
        table_of_model.append_column(mapped)
        inspect(model).add_property(column, mapped)


def fill_rule_columns(table: str, values: dict[str, Any]) -> None:
    """Add the rule columns a `bulk_create` row of `table` leaves out (a COPY fires
    no column default), drawn as a factory's INSERT draws them."""
    import factory.random

    for (rule_table, column), rule in active_rules().columns.items():
        if rule_table == table and column not in values and (table, column) in mapped_copy_types:
            checked = {"bool": "boolean", "int4": "integer"}.get(mapped_copy_types[table, column])
            values[column] = rule.make(_plain(values), factory.random.randgen, checked)


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

    rule = active_rules().tables.get(table)
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
        column_rule = active_rules().columns.get((table, column.name))
        if column_rule is not None:
            row[column.name] = column_rule.make(row, rng)
        elif column.server_default is None and str(column.type).lower() == "uuid":
            row[column.name] = new_uuid(rng)
    try:
        made = connection.execute(insert(described).values(row).returning(*described.columns))
        return dict(made.mappings().one())
    except DBAPIError as error:
        raise rejected_row(error, table, f"create_row({table!r})") from None
