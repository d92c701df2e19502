"""jobs: colour_map, the operation people chose for each colour of a laser drawing

``{"stroke:#000000": "cut", "fill:#00ff00": "ignore", …}``; NULL means the site's colour
convention applies. The analysis, estimate, preview and program all follow it.

Revision ID: 0003l
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003l"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("colour_map", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("colour_map")
