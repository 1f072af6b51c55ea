"""Duplicate-call claims: the same money-moving call repeated within a policy's window is refused.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03
"""

from alembic import op

from migrations.sql import v0020

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in v0020.CREATE:
        op.execute(statement)


def downgrade() -> None:
    for statement in v0020.DROP:
        op.execute(statement)
