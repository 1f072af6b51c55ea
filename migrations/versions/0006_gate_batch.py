"""Group commit for the gate: decide concurrent requests in one transaction.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from alembic import op

from migrations.sql import v0006

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(v0006.GATE_BATCH)


def downgrade() -> None:
    op.execute("DROP FUNCTION tollgate_gate_batch(jsonb)")
