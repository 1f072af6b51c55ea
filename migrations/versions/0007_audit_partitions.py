"""audit_events partitioned by month (UTC), and archived months that verify still accounts for.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

from alembic import op

from migrations.sql import or_replace, v0002, v0007

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in [*v0007.TO_PARTITIONED, v0007.PARTITION_FOR_MONTH, v0007.ENSURE_PARTITIONS,
                      "SELECT tollgate_audit_partitions_ensure(3)", *v0007.ARCHIVE_TABLES,
                      v0007.SETTLE, v0007.RECONCILE]:
        op.execute(statement)


def downgrade() -> None:
    for statement in [or_replace(v0002.SETTLE), or_replace(v0002.RECONCILE),
                      "ALTER TABLE audit_chain DROP COLUMN archived_in", "DROP TABLE audit_archives",
                      "DROP FUNCTION tollgate_audit_partitions_ensure(integer)",
                      "DROP FUNCTION tollgate_audit_partition(date)", *v0007.TO_PLAIN]:
        op.execute(statement)

