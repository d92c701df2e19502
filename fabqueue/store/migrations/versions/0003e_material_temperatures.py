"""materials: print temperature ranges (nozzle, bed) for the built-in library

The built-in materials (``fabqueue.store.material_library``) are seeded after every
upgrade by ``Database.migrate``, not here: the library is read from ``slicer_profiles/``,
which changes between releases, and a seed that only adds missing rows is idempotent.

Revision ID: 0003e
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003e"
down_revision: str | None = "0003b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("nozzle_c_min", "nozzle_c_max", "bed_c_min", "bed_c_max")


def upgrade() -> None:
    with op.batch_alter_table("materials", schema=None) as batch_op:
        for name in COLUMNS:
            batch_op.add_column(sa.Column(name, sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("materials", schema=None) as batch_op:
        for name in reversed(COLUMNS):
            batch_op.drop_column(name)
