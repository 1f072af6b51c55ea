"""Group commit for the settle; batch functions without a subtransaction per item.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24
"""

from alembic import op

from migrations.sql import or_replace, v0006, v0008

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(v0008.SETTLE_BATCH)
    op.execute(v0008.GATE_BATCH)


def downgrade() -> None:
    op.execute(or_replace(v0006.GATE_BATCH))
    op.execute("DROP FUNCTION tollgate_settle_batch(jsonb)")
