"""Halted runs: a run that reaches a policy's stop condition, or an operator's stop, is refused by every key.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-04
"""

from alembic import op

from migrations.sql import v0022

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in v0022.CREATE:
        op.execute(statement)


def downgrade() -> None:
    for statement in v0022.DROP:
        op.execute(statement)
