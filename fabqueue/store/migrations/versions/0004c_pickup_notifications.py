"""pickup places and hand-overs, notification preferences and deliveries (issue 18)

Revision ID: 0004c
Revises: 0004b
"""

from collections.abc import Sequence

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision: str = "0004c"
down_revision: str | None = "0004b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
