"""The budget gate, the settle and the reconciler: the request path's database statements.

``admit`` is step 6 of DESIGN.md's request path: one round trip that checks the key is
still active and its policy current, reserves the predicted cost against every cap (or
holds the call for approval), and commits the audit row (pending if it will be
forwarded). ``settle`` is step 9. Both call SQL functions (migrations/sql/v0002.py), so the
decision happens inside Postgres under row locks: that keeps caps exact across any number
of proxy processes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping

import asyncpg
import structlog

from proxy.errors import Unavailable
from proxy.hotdb import HotDB

log = structlog.get_logger(__name__)

_ADMIT = ("SELECT audit_id, decision, reason, message, approval_id "
          "FROM tollgate_gate($1, $2, $3, $4, $5, $6, $7, $8, $9)")
_SETTLE = "SELECT tollgate_settle($1, $2, $3)"
_RECONCILE = "SELECT tollgate_reconcile($1)"
_RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
FORWARDED = frozenset({"allowed", "shadow_blocked"})


@dataclass(frozen=True)
class Admission:
    audit_id: int | None
    decision: str  # allowed | shadow_blocked | blocked | approval_required | stale (reload the policy, ask again)
    reason: str | None
    message: str | None
    approval_id: str | None = None

    @property
    def forward(self) -> bool:
        return self.decision in FORWARDED


@dataclass(frozen=True)
class PolicyRef:
    """Which policy the caller evaluated; None skips the staleness check (refusals before parsing)."""

    policy_id: str
    version: int
    mode: str
    caps_json: str


class Gate:
    def __init__(self, db: HotDB, reservation_ttl_s: int):
        self._db = db
        self._ttl = reservation_ttl_s

    async def admit(
        self,
        key_id: str,
        policy: PolicyRef | None,
        row: Mapping[str, Any],
        predicted_usd: Decimal,
        approval: Mapping[str, Any] | None = None,
    ) -> Admission:
        """Raise Unavailable if the decision cannot be made durable: the caller fails closed."""
        args = (
            key_id, policy.policy_id if policy else None, policy.version if policy else None,
            json.dumps(row, default=str), policy.caps_json if policy else "[]", predicted_usd, self._ttl,
            policy.mode if policy else "enforce", json.dumps(approval) if approval else None,
        )
        for attempt in (1, 2):
            try:
                record = await self._db.fetchrow(_ADMIT, *args)
                return Admission(record["audit_id"], record["decision"], record["reason"], record["message"],
                                 record["approval_id"])
            except _RETRYABLE:
                if attempt == 2:
                    raise Unavailable("gate_conflict", "The budget gate could not commit; try again.") from None
            except Exception as exc:  # any failure to commit means no forward
                log.error("gate_unavailable", error=type(exc).__name__, detail=str(exc)[:200])
                raise Unavailable("database_unavailable", "Tollgate cannot reach its database.") from exc
        raise AssertionError("unreachable")

    async def settle(self, audit_id: int, cost_usd: Decimal, patch: Mapping[str, Any]) -> bool:
        """Best effort, committed asynchronously (see proxy/hotdb.py): if it is lost, the
        reservation expires and the reconciler charges its estimate."""
        try:
            await self._db.fetchrow_relaxed(_SETTLE, audit_id, cost_usd, json.dumps(patch, default=str))
            return True
        except Exception as exc:
            log.error("settle_failed", audit_id=audit_id, error=type(exc).__name__, detail=str(exc)[:200])
            return False

    async def reconcile(self, limit: int = 1000) -> int:
        """Charge and close reservations whose process died or hung; returns how many."""
        record = await self._db.fetchrow(_RECONCILE, limit)
        return int(record[0])
