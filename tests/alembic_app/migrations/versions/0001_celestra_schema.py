"""The Celestra schema, as pytest_celestra.models defines it."""

from alembic import op

from pytest_celestra.models import Base

revision = "0001"
down_revision = None


def upgrade() -> None:
    Base.metadata.create_all(op.get_bind())
