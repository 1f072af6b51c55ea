"""Console sessions live in Postgres, so signing out ends every copy of the cookie.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-01
"""

from alembic import op

from migrations.sql import v0018

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in v0018.CREATE:
        op.execute(statement)


def downgrade() -> None:
    for statement in v0018.DROP:
        op.execute(statement)
