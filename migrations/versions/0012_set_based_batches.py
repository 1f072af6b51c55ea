"""The gate and settle batches decide a key's items together: one counter update per batch.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-24
"""

from alembic import op

from migrations.sql import or_replace, v0008, v0010, v0012

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(v0012.GATE_FAST)
    op.execute(v0012.GATE_BATCH)
    op.execute(v0012.SETTLE_BATCH)


def downgrade() -> None:
    """0008's batch functions again (0010 had given them enable_seqscan = off), no fast path."""
    for statement in [or_replace(v0008.GATE_BATCH), or_replace(v0008.SETTLE_BATCH), *v0010.SET,
                      "DROP FUNCTION tollgate_gate_fast(text, jsonb, integer[])"]:
        op.execute(statement)
