"""hardening (issue 19): what the second look at security needs in the schema

Revision ID: 0004a
Revises: 0003d
"""

from collections.abc import Sequence

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision: str = "0004a"
down_revision: str | None = "0003d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
