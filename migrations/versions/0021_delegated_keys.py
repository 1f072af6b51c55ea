"""Delegated keys: a child key's chain and run on vault_keys, an owner per reserved counter.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04
"""

from alembic import op

from migrations.sql import or_replace, v0003, v0007, v0009, v0012, v0013, v0014, v0021

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in [*v0021.SCHEMA, *v0021.FUNCTIONS]:
        op.execute(statement)


def downgrade() -> None:
    # The texts before 0021, with the settings 0013 and 0014 gave them, then the columns go.
    for statement in [v0009.GATE, v0013.GATE_FAST, v0012.GATE_BATCH, v0013.SETTLE, v0013.SETTLE_BATCH,
                      v0007.RECONCILE, or_replace(v0003.REPRICE), *v0013.SET, *v0014.SET, *v0021.UNSCHEMA]:
        op.execute(statement)
