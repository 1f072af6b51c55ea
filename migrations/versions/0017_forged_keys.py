"""Forged vault keys: a tag only the installation can make, and unauthenticated refusals counted.

Revision ID: 0017
Revises: 0014
Create Date: 2026-12-01
"""

from alembic import op

from migrations.sql import v0017

revision = "0017"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in v0017.UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in v0017.DOWNGRADE:
        op.execute(statement)
