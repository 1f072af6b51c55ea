"""Policy engine: approvals, objects created through a key, reservation reconciliation,
shadow mode, and a gate that knows which policy (not just which version) was evaluated.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from migrations.sql import v0001, v0002

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "key_objects",
        sa.Column("key_id", sa.Text, nullable=False),
        sa.Column("object_id", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("customer_id", sa.Text),
        sa.Column("amount_minor", sa.BigInteger),
        sa.Column("currency", sa.Text),
        sa.Column("audit_id", sa.BigInteger),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("key_id", "object_id"),
    )
    op.create_table(
        "approvals",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("key_id", sa.Text, nullable=False),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("message", sa.Text),
        sa.Column("method", sa.Text, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("endpoint", sa.Text),
        sa.Column("agent_run_id", sa.Text),
        sa.Column("predicted_usd", sa.Numeric(20, 6)),
        sa.Column("request", pg.JSONB),
        sa.Column("audit_id", sa.BigInteger),
        sa.Column("used_audit_id", sa.BigInteger),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
        sa.Column("decided_by", sa.Text),
        sa.Column("note", sa.Text),
    )
    op.create_index("approvals_lookup", "approvals", ["key_id", "fingerprint", "created_at"])
    op.create_index("approvals_status", "approvals", ["status", "created_at"])
    op.add_column("reservations", sa.Column("reconciled_at", sa.DateTime(timezone=True)))
    op.execute("DROP FUNCTION tollgate_gate(text, integer, jsonb, jsonb, numeric, integer)")
    op.execute("DROP FUNCTION tollgate_settle(bigint, numeric, jsonb)")
    op.execute(v0002.LOCK_COUNTERS)
    op.execute(v0002.GATE)
    op.execute(v0002.SETTLE)
    op.execute(v0002.RECONCILE)


def downgrade() -> None:
    op.execute("DROP FUNCTION tollgate_reconcile(integer)")
    op.execute("DROP FUNCTION tollgate_settle(bigint, numeric, jsonb)")
    op.execute("DROP FUNCTION tollgate_gate(text, text, integer, jsonb, jsonb, numeric, integer, text, jsonb)")
    op.execute("DROP FUNCTION tollgate_lock_counters(text, text[])")
    op.execute(v0001.GATE_FUNCTION)
    op.execute(v0001.SETTLE_FUNCTION)
    op.drop_column("reservations", "reconciled_at")
    op.drop_table("approvals")
    op.drop_table("key_objects")
