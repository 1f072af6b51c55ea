"""Approvals record the account and headers a held call acts on (migrations/sql/v0015.py).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01
"""

from alembic import op

from migrations.sql import v0015

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in v0015.UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in v0015.DOWNGRADE:
        op.execute(statement)
