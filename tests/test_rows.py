"""The request path's records (proxy/rows.py) against what the SQL functions read.

The gate inserts AuditRow through jsonb_populate_record(audit_events), the settle reads
SettlePatch key by key and the approval request likewise: a field that is not a column (or
not a key the live SQL reads) would be dropped without a word, so these tests say so."""

from __future__ import annotations

import dataclasses
import re

from migrations.sql import live
from proxy.rows import ApprovalRequest, AuditRow, SettlePatch
from proxy.schema import audit_events

COLUMNS = {column.name for column in audit_events.columns}
LIVE_SQL = "\n".join(function.text for function in live.FUNCTIONS)


def _fields(record: type) -> set[str]:
    return {f.name for f in dataclasses.fields(record)}


def _keys_read(variable: str) -> set[str]:
    """The keys the live SQL reads from a JSON parameter (p_patch->>'x', i.patch->'x', ...)."""
    return set(re.findall(rf"{variable}\s*->>?\s*'(\w+)'", LIVE_SQL))


def test_every_audit_row_field_is_a_column() -> None:
    assert _fields(AuditRow) - COLUMNS == set()
    # What the gate itself sets is not the caller's to give.
    assert _fields(AuditRow) & {"id", "ts", "state", "predicted_usd", "cost_usd", "finalized_at"} == set()


def test_every_settle_patch_field_is_read_by_the_settle() -> None:
    read = _keys_read("patch")
    assert _fields(SettlePatch) - read == set()
    assert read - _fields(SettlePatch) == set()  # and the settle reads nothing the patch cannot carry
    assert _fields(SettlePatch) - {"created"} <= COLUMNS


def test_every_approval_field_is_read_by_the_gate() -> None:
    assert _fields(ApprovalRequest) == _keys_read("approval")
