"""Forged vault keys: a tag only the installation can make, and unauthenticated refusals counted.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01
"""

from alembic import op

from migrations.sql import v0016

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in v0016.UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in v0016.DOWNGRADE:
        op.execute(statement)
