"""Alembic environment: the migrations run on the connection pytest-celestra hands over
(its schema hook), or, from the command line, on the database of DATABASE_URL or
alembic.ini's sqlalchemy.url (with --sql: written out as SQL instead)."""

import os

from alembic import context
from sqlalchemy import create_engine, pool

from pytest_celestra import Base

config = context.config


def run_migrations(connection):
    context.configure(connection=connection, target_metadata=Base.metadata)
    with context.begin_transaction():
        context.run_migrations()


url = os.environ.get("DATABASE_URL") or config.get_main_option("sqlalchemy.url")
if "connection" in config.attributes:  # pytest_celestra_create_schema
    run_migrations(config.attributes["connection"])
elif context.is_offline_mode():  # alembic upgrade head --sql: prints the SQL, connects to nothing
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:  # alembic upgrade head
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        run_migrations(connection)
