"""Vendor repricing: audit rows remember when an estimate was replaced by the vendor's price.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

from migrations.sql import v0003

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("audit_events", sa.Column("cost_reconciled_at", sa.DateTime(timezone=True)))
    op.create_index("audit_events_estimated", "audit_events", ["vendor", "ts"],
                    postgresql_where=sa.text("cost_source = 'estimated'"))
    op.execute(v0003.REPRICE)


def downgrade() -> None:
    op.execute("DROP FUNCTION tollgate_reprice(bigint, numeric)")
    op.drop_index("audit_events_estimated", table_name="audit_events")
    op.drop_column("audit_events", "cost_reconciled_at")
