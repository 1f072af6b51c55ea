"""Audit views for the common questions, and a read-only role for auditors and analysts.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from alembic import op

from migrations.sql import v0004

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in v0004.VIEWS + v0004.AUDITOR:
        op.execute(statement)


def downgrade() -> None:
    for statement in v0004.DROP_AUDITOR:
        op.execute(statement)
    for view in ("blocked_calls", "spend_by_key_day", "spend_by_run"):
        op.execute(f"DROP VIEW {view}")
