"""Group commit for the settle: concurrent settles in one transaction.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24
"""

from alembic import op

from migrations.sql import v0008

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(v0008.SETTLE_BATCH)


def downgrade() -> None:
    op.execute("DROP FUNCTION tollgate_settle_batch(jsonb)")
