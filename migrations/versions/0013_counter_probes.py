"""Counter rows reached by primary-key probes in every plan, so batch plans can be generic.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-25
"""

from alembic import op

from migrations.sql import or_replace, v0002, v0007, v0012, v0013

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in [v0013.LOCK_COUNTERS, v0013.SETTLE, v0013.GATE_FAST, v0013.SETTLE_BATCH, *v0013.SET]:
        op.execute(statement)


def downgrade() -> None:
    for statement in [or_replace(v0002.LOCK_COUNTERS), v0007.SETTLE, or_replace(v0012.GATE_FAST),
                      v0012.SETTLE_BATCH, *v0013.RESET]:
        op.execute(statement)
