"""Celestra's schema: the 15 tables and 13 enum types of the installed pytest-celestra."""

from alembic import op

from pytest_celestra import Base

revision = "0001"
down_revision = None


def upgrade() -> None:
    Base.metadata.create_all(op.get_bind())


def downgrade() -> None:
    Base.metadata.drop_all(op.get_bind())
