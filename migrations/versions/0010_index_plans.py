"""The request path's batch functions never plan a sequential scan (a cached empty-table plan).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24
"""

from alembic import op

from migrations.sql import v0010

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in v0010.SET:
        op.execute(statement)


def downgrade() -> None:
    for statement in v0010.RESET:
        op.execute(statement)
