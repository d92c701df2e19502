"""trainings, grants, maintenance tasks and records, machines out of order (issue 17)

New tables only: existing rows are untouched, and a lab without ``[[training]]`` or
``[[maintenance]]`` in its devices file runs as before (no training covers a machine, no
task is ever due).

Revision ID: 0004b
Revises: 0004a
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004b"
down_revision: str | None = "0004a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "trainings",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.JSON(), nullable=False),
        sa.Column("devices", sa.JSON(), nullable=False),
        sa.Column("kinds", sa.JSON(), nullable=False),
        sa.Column("valid_days", sa.Integer(), nullable=False),
        sa.Column("renew_on_use", sa.Boolean(), nullable=False),
        sa.Column("staff", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "training_grants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("training_id", sa.String(length=64), nullable=False),
        sa.Column("granted_on", sa.Date(), nullable=False),
        sa.Column("granted_by", sa.Integer(), nullable=True),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_on", sa.Date(), nullable=True),
        sa.Column("revoked_by", sa.Integer(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notices", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["granted_by"], ["users.id"]),
        sa.ForeignKeyConstraint(["revoked_by"], ["users.id"]),
        sa.ForeignKeyConstraint(["training_id"], ["trainings.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_training_grants_user_training", "training_grants",
                    ["user_id", "training_id"])
    op.create_table(
        "maintenance_tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.JSON(), nullable=False),
        sa.Column("every_hours", sa.Float(), nullable=True),
        sa.Column("every_jobs", sa.Integer(), nullable=True),
        sa.Column("every_days", sa.Float(), nullable=True),
        sa.Column("every_filament_m", sa.Float(), nullable=True),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("notified", sa.String(length=20), nullable=True),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_maintenance_tasks_device_task", "maintenance_tasks",
                    ["device_id", "task"], unique=True)
    op.create_table(
        "maintenance_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_by", sa.Integer(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["done_by"], ["users.id"]),
        sa.ForeignKeyConstraint(["task_id"], ["maintenance_tasks.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_maintenance_records_task_id", "maintenance_records", ["task_id"])
    op.create_table(
        "device_outages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("by", sa.Integer(), nullable=True),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("returned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("returned_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["by"], ["users.id"]),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["returned_by"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_device_outages_device_id", "device_outages", ["device_id"])


def downgrade() -> None:
    op.drop_index("ix_device_outages_device_id", table_name="device_outages")
    op.drop_table("device_outages")
    op.drop_index("ix_maintenance_records_task_id", table_name="maintenance_records")
    op.drop_table("maintenance_records")
    op.drop_index("ix_maintenance_tasks_device_task", table_name="maintenance_tasks")
    op.drop_table("maintenance_tasks")
    op.drop_index("ix_training_grants_user_training", table_name="training_grants")
    op.drop_table("training_grants")
    op.drop_table("trainings")
