"""Indexes for the admin lists' keyset pages: keys, policies and approvals newest first.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01
"""

from alembic import op

from migrations.sql import v0017

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in v0017.INDEXES:
        op.execute(statement)


def downgrade() -> None:
    for statement in v0017.DROP:
        op.execute(statement)
