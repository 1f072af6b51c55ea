"""Vendor prices synced from the vendor or set per key or account; a lease per background job.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-02
"""

from alembic import op

from migrations.sql import v0024

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in v0024.CREATE:
        op.execute(statement)


def downgrade() -> None:
    for statement in v0024.DROP:
        op.execute(statement)
