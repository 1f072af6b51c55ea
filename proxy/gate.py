"""The budget gate, the settle and the reconciler: the request path's database statements.

``admit`` is step 6 of DESIGN.md's request path: one round trip that checks the key is
still active and its policy current, reserves the predicted cost against every cap (or
holds the call for approval), and commits the audit row (pending if it will be
forwarded). Concurrent admits are grouped into one transaction (group commit,
migrations/sql/v0006.py): a hot budget row is then locked and flushed once per batch
instead of once per request. ``settle`` is step 9. Both run SQL functions
(migrations/sql/v0002.py), so every decision happens inside Postgres under row locks:
that keeps caps exact across any number of proxy processes.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping

import structlog

from proxy.errors import Unavailable
from proxy.hotdb import HotDB

log = structlog.get_logger(__name__)

_ADMIT_BATCH = "SELECT idx, audit_id, decision, reason, message, approval_id FROM tollgate_gate_batch($1::jsonb)"
_SETTLE = "SELECT tollgate_settle($1, $2, $3)"
_RECONCILE = "SELECT tollgate_reconcile($1)"
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
    """Admits requests in batches: concurrent admits share one transaction and one commit
    (tollgate_gate_batch), each still decided in order under the counter row locks. A lone
    request is a batch of one. Up to ``lanes`` batches are in flight at once."""

    def __init__(self, db: HotDB, reservation_ttl_s: int, max_batch: int = 64, lanes: int = 2):
        self._db = db
        self._ttl = reservation_ttl_s
        self._max_batch = max_batch
        self._lanes = lanes
        self._busy_lanes = 0
        self._waiting: list[tuple[dict[str, Any], asyncio.Future[Admission]]] = []

    async def admit(
        self,
        key_id: str,
        policy: PolicyRef | None,
        row: Mapping[str, Any],
        predicted_usd: Decimal,
        approval: Mapping[str, Any] | None = None,
    ) -> Admission:
        """Raise Unavailable if the decision cannot be made durable: the caller fails closed."""
        item = {
            "key_id": key_id, "policy_id": policy.policy_id if policy else None,
            "policy_version": policy.version if policy else None, "row": row,
            "caps": json.loads(policy.caps_json) if policy else [], "predicted": str(predicted_usd),
            "ttl": self._ttl, "mode": policy.mode if policy else "enforce", "approval": approval,
        }
        future: asyncio.Future[Admission] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._busy_lanes < self._lanes:
            self._busy_lanes += 1
            # A fresh context: the batch serves many requests, so it logs none's ids.
            asyncio.create_task(self._drain(), context=contextvars.Context())
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[: self._max_batch], self._waiting[self._max_batch:]
                await self._decide(batch)
        finally:
            self._busy_lanes -= 1

    async def _decide(self, batch: list[tuple[dict[str, Any], asyncio.Future[Admission]]]) -> None:
        try:
            records = await self._db.fetch(_ADMIT_BATCH, json.dumps([item for item, _ in batch], default=str))
        except Exception as exc:  # any failure to commit means no forward
            log.error("gate_unavailable", error=type(exc).__name__, detail=str(exc)[:200], batch=len(batch))
            for _, future in batch:
                if not future.done():
                    future.set_exception(Unavailable("database_unavailable", "Tollgate cannot reach its database."))
            return
        answers = {record["idx"]: record for record in records}
        for index, (_, future) in enumerate(batch):
            record = answers.get(index)
            if future.done():
                continue
            if record is None or record["decision"] == "error":
                detail = (record["message"] if record else "no answer")[:200]
                log.error("gate_item_failed", sqlstate=record["reason"] if record else None, detail=detail)
                future.set_exception(Unavailable("gate_conflict", "The budget gate could not decide; try again."))
            else:
                future.set_result(Admission(record["audit_id"], record["decision"], record["reason"],
                                            record["message"], record["approval_id"]))

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
