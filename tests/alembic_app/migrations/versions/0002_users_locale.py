"""users.locale: NOT NULL, no default (the most ordinary change an app makes)."""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.add_column("users", sa.Column("locale", sa.Text(), nullable=False))
