"""Console sessions live in Postgres, so signing out ends every copy of the cookie.

Revision ID: 0016
Revises: 0014
Create Date: 2026-12-01
"""

from alembic import op

from migrations.sql import v0016

revision = "0016"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in v0016.CREATE:
        op.execute(statement)


def downgrade() -> None:
    for statement in v0016.DROP:
        op.execute(statement)
