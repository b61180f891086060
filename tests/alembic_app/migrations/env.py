"""Alembic environment: migrations run on the connection the caller hands over
(``pytest_celestra_create_schema`` passes its own in ``config.attributes``)."""

from alembic import context

from pytest_celestra.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata)
with context.begin_transaction():
    context.run_migrations()
