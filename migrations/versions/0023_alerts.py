"""Alerts that are not lost: webhook subscriptions, an outbox written in the causing transaction, deliveries.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-02
"""

from alembic import op

from migrations.sql import v0023

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in v0023.CREATE:
        op.execute(statement)


def downgrade() -> None:
    for statement in v0023.DROP:
        op.execute(statement)
