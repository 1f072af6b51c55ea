"""Closed minute and hour counter buckets are pruned by the reconciler's sweep.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24
"""

from alembic import op

from migrations.sql import v0011

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(v0011.PRUNE)


def downgrade() -> None:
    op.execute("DROP FUNCTION tollgate_prune_counters(integer)")
