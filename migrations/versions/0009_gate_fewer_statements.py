"""The gate's cap check in fewer statements (same decisions, same lock order).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24
"""

from alembic import op

from migrations.sql import or_replace, v0002, v0009

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(v0009.GATE)


def downgrade() -> None:
    op.execute(or_replace(v0002.GATE))
