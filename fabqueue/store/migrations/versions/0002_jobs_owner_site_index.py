"""jobs: index on (owner_id, site_id)

Staff see the jobs of their site, the site-less ones and their own
(``queries.visible_jobs``); counting those for a page of ``GET /api/jobs`` read every job row
(analysis JSON included): 12 ms with 10,000 jobs. This index covers that filter, so the count
scans only the index: 0.4 ms. Owner first on purpose: led by site_id, SQLite (without
ANALYZE statistics) took it for selective and answered the first page by collecting every
job of the site and sorting them (17 ms) instead of reading the newest 50 by id (2 ms).

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index("ix_jobs_owner_site", ["owner_id", "site_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_owner_site")
