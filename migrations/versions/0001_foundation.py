"""Foundation: keys, credentials, policies, budget counters, reservations, audit_events,
and the gate/settle functions that make the request path one round trip each.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from migrations.sql.v0001 import BUCKET_FUNCTION, GATE_FUNCTION, SETTLE_FUNCTION

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

USD = sa.Numeric(20, 6)
NOW = sa.text("now()")


def _ts(name: str, nullable: bool = False, default: bool = True) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, server_default=NOW if default else None)


def upgrade() -> None:
    op.create_table(
        "policies",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("vendor", sa.Text, nullable=False),
        sa.Column("name", sa.Text),
        sa.Column("current_version", sa.Integer, nullable=False),
        _ts("created_at"),
    )
    op.create_table(
        "policy_versions",
        sa.Column("policy_id", sa.Text, sa.ForeignKey("policies.id"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("document", pg.JSONB, nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("policy_id", "version"),
    )
    op.create_table(
        "upstream_credentials",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("vendor", sa.Text, nullable=False),
        sa.Column("account", sa.Text),
        sa.Column("secret_ciphertext", sa.LargeBinary, nullable=False),
        _ts("created_at"),
        _ts("rotated_at", nullable=True, default=False),
    )
    op.create_table(
        "vault_keys",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("vendor", sa.Text, nullable=False),
        sa.Column("label", sa.Text),
        sa.Column("secret_hash", sa.LargeBinary, nullable=False),
        sa.Column("credential_id", sa.Text, sa.ForeignKey("upstream_credentials.id"), nullable=False),
        sa.Column("policy_id", sa.Text, sa.ForeignKey("policies.id"), nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default=sa.text("'active'")),
        _ts("created_at"),
        _ts("revoked_at", nullable=True, default=False),
        _ts("expires_at", nullable=True, default=False),
    )
    op.create_table(
        "budget_counters",
        sa.Column("key_id", sa.Text, nullable=False),
        sa.Column("bucket", sa.Text, nullable=False),
        sa.Column("spent_usd", USD, nullable=False, server_default=sa.text("0")),
        sa.Column("reserved_usd", USD, nullable=False, server_default=sa.text("0")),
        sa.Column("requests", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("key_id", "bucket"),
    )
    op.create_table(
        "reservations",
        sa.Column("audit_id", sa.BigInteger, primary_key=True),
        sa.Column("key_id", sa.Text, nullable=False),
        sa.Column("usd", USD, nullable=False),
        sa.Column("buckets", pg.ARRAY(sa.Text), nullable=False),
        _ts("created_at"),
        _ts("expires_at", default=False),
    )
    op.create_index("reservations_expires_at", "reservations", ["expires_at"])
    op.create_table(
        "audit_events",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        _ts("ts"),
        sa.Column("request_id", sa.Text, nullable=False),
        sa.Column("agent_run_id", sa.Text),
        sa.Column("key_id", sa.Text),
        sa.Column("vendor", sa.Text, nullable=False),
        sa.Column("method", sa.Text, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("endpoint", sa.Text),
        sa.Column("customer_id", sa.Text),
        sa.Column("object_id", sa.Text),
        sa.Column("vendor_account", sa.Text),
        sa.Column("decision", sa.Text, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("message", sa.Text),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("predicted_usd", USD),
        sa.Column("cost_usd", USD),
        sa.Column("cost_source", sa.Text),
        sa.Column("currency", sa.Text),
        sa.Column("amount_minor", sa.BigInteger),
        sa.Column("upstream_status", sa.Integer),
        sa.Column("upstream_request_id", sa.Text),
        sa.Column("idempotency_key", sa.Text),
        sa.Column("latency_ms", sa.Numeric(12, 3)),
        sa.Column("policy_id", sa.Text),
        sa.Column("policy_version", sa.Integer),
        sa.Column("request_summary", pg.JSONB),
        _ts("finalized_at", nullable=True, default=False),
    )
    op.create_index("audit_events_run", "audit_events", ["agent_run_id", "ts"])
    op.create_index("audit_events_key_ts", "audit_events", ["key_id", "ts"])
    op.create_index("audit_events_ts", "audit_events", ["ts"])
    op.execute(BUCKET_FUNCTION)
    op.execute(GATE_FUNCTION)
    op.execute(SETTLE_FUNCTION)


def downgrade() -> None:
    op.execute("DROP FUNCTION tollgate_settle(bigint, numeric, jsonb)")
    op.execute("DROP FUNCTION tollgate_gate(text, integer, jsonb, jsonb, numeric, integer)")
    op.execute("DROP FUNCTION tollgate_bucket(text, timestamptz, text)")
    for table in ("audit_events", "reservations", "budget_counters", "vault_keys",
                  "upstream_credentials", "policy_versions", "policies"):
        op.drop_table(table)
