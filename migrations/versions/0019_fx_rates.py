"""Exchange rates synced from a published reference (the ECB's daily euro rates by default).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02
"""

from alembic import op

from migrations.sql import v0019

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in v0019.CREATE:
        op.execute(statement)


def downgrade() -> None:
    for statement in v0019.DROP:
        op.execute(statement)
