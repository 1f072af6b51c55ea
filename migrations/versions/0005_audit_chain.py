"""Tamper evidence: finalised audit rows are sealed into a hash chain whose head is signed.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "audit_chain",
        sa.Column("seq", sa.BigInteger, primary_key=True),
        sa.Column("audit_id", sa.BigInteger, nullable=False, unique=True),
        sa.Column("prev_hash", sa.LargeBinary, nullable=False),
        sa.Column("row_hash", sa.LargeBinary, nullable=False),
        sa.Column("sealed_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    )
    op.create_table(
        "audit_chain_heads",
        sa.Column("seq", sa.BigInteger, primary_key=True),
        sa.Column("head_hash", sa.LargeBinary, nullable=False),
        sa.Column("signature", sa.LargeBinary, nullable=False),
        sa.Column("public_key_id", sa.Text, nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    )
    # Rows the sealer passed over because they could still change (pending, or waiting for the
    # vendor's price); they are sealed later. The cursor says how far the sealer has looked.
    op.create_table("audit_chain_skipped", sa.Column("audit_id", sa.BigInteger, primary_key=True))
    op.create_table(
        "audit_chain_cursor",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("scanned_to", sa.BigInteger, nullable=False),
    )
    op.execute("INSERT INTO audit_chain_cursor (id, scanned_to) VALUES (1, 0)")
    op.execute("GRANT SELECT ON audit_chain, audit_chain_heads, audit_chain_skipped, audit_chain_cursor "
               "TO tollgate_auditor")


def downgrade() -> None:
    op.execute("REVOKE ALL ON audit_chain, audit_chain_heads, audit_chain_skipped, audit_chain_cursor "
               "FROM tollgate_auditor")
    op.drop_table("audit_chain_cursor")
    op.drop_table("audit_chain_skipped")
    op.drop_table("audit_chain_heads")
    op.drop_table("audit_chain")
