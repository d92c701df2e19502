"""devices: a lease per machine (owner, expiry, fencing token)

One device worker drives a machine at a time: it holds the machine's lease
(``lease_owner`` until ``lease_expires_at``), renews it every few seconds, and every state
write it makes carries the ``fencing_token`` it got when it took the lease (incremented at
each acquisition), so a worker that lost the lease (paused, or an orphan of an earlier
``serve``) has its writes refused instead of fighting the new holder.

Revision ID: 0003d
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003d"
down_revision: str | None = "0003e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lease_owner", sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column("fencing_token", sa.Integer(), nullable=False,
                                      server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_column("fencing_token")
        batch_op.drop_column("lease_expires_at")
        batch_op.drop_column("lease_owner")
