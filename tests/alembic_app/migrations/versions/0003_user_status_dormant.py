"""A new label of the user_status enum."""

from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.execute("ALTER TYPE user_status ADD VALUE 'DORMANT'")
