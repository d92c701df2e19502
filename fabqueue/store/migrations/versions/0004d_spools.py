"""spools and the per-job usage ledger (issue 18)

``spools`` per site, ``spool_usage`` (one row per job: the job is its key, so an end seen
twice takes nothing twice; Spoolman's idempotency key too), ``filament_risks`` (staff let a
job start on a light spool) and ``devices.spool_id`` (the spool loaded on a printer).
Existing devices keep their loaded material and have no spool: nothing holds their jobs.

Revision ID: 0004d
Revises: 0004c
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004d"
down_revision: str | None = "0004c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "spools",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=True),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("material", sa.String(length=64), nullable=False),
        sa.Column("colour", sa.String(length=64), nullable=False),
        sa.Column("brand", sa.String(length=100), nullable=False),
        sa.Column("lot", sa.String(length=100), nullable=False),
        sa.Column("net_g", sa.Float(), nullable=False),
        sa.Column("empty_g", sa.Float(), nullable=False),
        sa.Column("remaining_g", sa.Float(), nullable=False),
        sa.Column("place", sa.String(length=100), nullable=False),
        sa.Column("spoolman_id", sa.Integer(), nullable=True),
        sa.Column("spoolman_measure_g", sa.Float(), nullable=True),
        sa.Column("archived", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
        sa.UniqueConstraint("spoolman_id"),
    )
    op.create_index(op.f("ix_spools_site_id"), "spools", ["site_id"], unique=False)
    op.create_table(
        "spool_usage",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("spool_id", sa.Integer(), nullable=False),
        sa.Column("grams", sa.Float(), nullable=False),
        sa.Column("ending", sa.String(length=20), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("send_attempts", sa.Integer(), nullable=False),
        sa.Column("spoolman_used_before", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"]),
        sa.ForeignKeyConstraint(["spool_id"], ["spools.id"]),
        sa.PrimaryKeyConstraint("job_id"),
    )
    op.create_index(op.f("ix_spool_usage_spool_id"), "spool_usage", ["spool_id"], unique=False)
    op.create_table(
        "filament_risks",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("accepted_by", sa.Integer(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["accepted_by"], ["users.id"]),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"]),
        sa.PrimaryKeyConstraint("job_id"),
    )
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("spool_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_column("spool_id")
    op.drop_table("filament_risks")
    op.drop_index(op.f("ix_spool_usage_spool_id"), table_name="spool_usage")
    op.drop_table("spool_usage")
    op.drop_index(op.f("ix_spools_site_id"), table_name="spools")
    op.drop_table("spools")
