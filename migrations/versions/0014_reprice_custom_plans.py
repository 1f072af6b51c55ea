"""The repricing function plans each call afresh: its counter update has the scanning shape.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-25
"""

from alembic import op

from migrations.sql import v0014

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in v0014.SET:
        op.execute(statement)


def downgrade() -> None:
    for statement in v0014.RESET:
        op.execute(statement)
