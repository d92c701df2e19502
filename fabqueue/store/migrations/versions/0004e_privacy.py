"""pupils' pseudonyms, batch basis and end date, purge records (issue 21)

Existing class batches get their end date (30 June of the school year they were handed in)
and each of their pupils a pseudonym (class code and number, in the order of their jobs),
so a lab that upgrades hides its pupils' names at once.

Revision ID: 0004e
Revises: 0004d
"""

from collections.abc import Sequence
from datetime import UTC, date, datetime

import sqlalchemy as sa
from alembic import op

from fabqueue.core.pupils import class_code, default_ends_on, number_pupils, pseudonym

revision: str = "0004e"
down_revision: str | None = "0004d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_seen_at", sa.DateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("basis_confirmed", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column("ends_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("names_purged_at", sa.DateTime(timezone=True),
                                      nullable=True))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pupil", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("files_purged_at", sa.DateTime(timezone=True),
                                      nullable=True))
    op.create_table(
        "purge_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "account_notices",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("told_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("user_id"),
    )
    _fill_batches()


def _created_day(value: object) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, str):  # SQLite hands back the text it stored
        return datetime.fromisoformat(value).date()
    return datetime.now(UTC).date()


def _fill_batches() -> None:
    conn = op.get_bind()
    batches = sa.table("batches", sa.column("id", sa.Integer),
                       sa.column("class_name", sa.String), sa.column("created_at", sa.DateTime),
                       sa.column("ends_on", sa.Date))
    jobs = sa.table("jobs", sa.column("id", sa.Integer), sa.column("batch_id", sa.Integer),
                    sa.column("student_name", sa.String), sa.column("pupil", sa.String))
    for batch_id, name, created in conn.execute(
            sa.select(batches.c.id, batches.c.class_name, batches.c.created_at)).all():
        conn.execute(batches.update().where(batches.c.id == batch_id)
                     .values(ends_on=default_ends_on(_created_day(created))))
        rows = conn.execute(sa.select(jobs.c.id, jobs.c.student_name)
                            .where(jobs.c.batch_id == batch_id).order_by(jobs.c.id)).all()
        code = class_code(name or "")
        for (job_id, _), number in zip(rows, number_pupils(r[1] for r in rows), strict=True):
            conn.execute(jobs.update().where(jobs.c.id == job_id)
                         .values(pupil=pseudonym(code, number)))


def downgrade() -> None:
    op.drop_table("account_notices")
    op.drop_table("purge_runs")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("files_purged_at")
        batch_op.drop_column("pupil")
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_column("names_purged_at")
        batch_op.drop_column("ends_on")
        batch_op.drop_column("basis_confirmed")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("erased_at")
        batch_op.drop_column("last_seen_at")
