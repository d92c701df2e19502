"""pickup places and hand-overs, notification preferences and deliveries (issue 18)

``sites`` gain their shelf places, staff channels and quiet hours (all optional: a site
without them works as before); ``pickups`` (one per finished job), ``notification_prefs``
(one per user who chose) and ``notification_deliveries`` (the outbox) are new. Jobs finished
before this revision get no pickup: their parts were handed over the old way.

Revision ID: 0004c
Revises: 0004b
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004c"
down_revision: str | None = "0004b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("sites", sa.Column("places", sa.JSON(), nullable=True))
    op.add_column("sites", sa.Column("apprise_urls", sa.JSON(), nullable=True))
    op.add_column("sites", sa.Column("quiet_hours", sa.String(length=20), nullable=True))
    op.create_table(
        "pickups",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=True),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("place", sa.String(length=40), nullable=True),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("reminders_sent", sa.Integer(), server_default="0", nullable=False),
        sa.Column("collected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("collected_by_id", sa.Integer(), nullable=True),
        sa.Column("uncollected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disposed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disposed_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["collected_by_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["disposed_by_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"]),
        sa.PrimaryKeyConstraint("job_id"),
        sa.UniqueConstraint("token"),
    )
    op.create_index("ix_pickups_site_state", "pickups", ["site_id", "state"], unique=False)
    op.create_table(
        "notification_prefs",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("apprise_urls", sa.JSON(), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("user_id"),
    )
    op.create_table(
        "notification_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("site_id", sa.String(length=64), nullable=True),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("locale", sa.String(length=8), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dedupe", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dedupe"),
    )
    op.create_index("ix_deliveries_state_due", "notification_deliveries",
                    ["state", "not_before"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_deliveries_state_due", table_name="notification_deliveries")
    op.drop_table("notification_deliveries")
    op.drop_table("notification_prefs")
    op.drop_index("ix_pickups_site_state", table_name="pickups")
    op.drop_table("pickups")
    with op.batch_alter_table("sites") as batch:
        batch.drop_column("quiet_hours")
        batch.drop_column("apprise_urls")
        batch.drop_column("places")
