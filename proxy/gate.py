"""The budget gate, the settle and the reconciler: the request path's database statements.

``admit`` is step 6 of DESIGN.md's request path: one round trip that checks the key is
still active and its policy current, reserves the predicted cost against every cap (or
holds the call for approval), and commits the audit row (pending if it will be
forwarded). Concurrent admits are grouped into one transaction (group commit, since
migration 0006): a hot budget row is then locked and flushed once per batch instead of once
per request. ``settle`` is step 9, batched the same way. Both run SQL functions, so every
decision happens inside Postgres under row locks: that keeps caps exact across any number of
proxy processes. migrations/sql/live.py names the text each function runs today and the
module that writes it (all of them, since delegated keys: v0021.py; tollgate_gate_fast is the
key-at-once path, tollgate_gate one item at a time). A delegated key's caps name the ancestor
whose counter each one reserves against (``owner``, proxy/lineage.py).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg
import orjson
import structlog

from proxy import duplicates
from proxy.errors import Unavailable
from proxy.groupcommit import GroupCommit
from proxy.hotdb import HotDB
from proxy.rows import ApprovalRequest, AuditRow, SettlePatch

log = structlog.get_logger(__name__)

_ADMIT_BATCH = "SELECT idx, audit_id, decision, reason, message, approval_id FROM tollgate_gate_batch($1::jsonb)"
_SETTLE_BATCH = "SELECT tollgate_settle_batch($1::jsonb)"
# SQLSTATE classes that say nothing about the items: connection, operator intervention,
# resources, system errors. Anything else (a deadlock, a bad value) may be one item's fault.
_NOT_ITEMS = ("08", "53", "57", "58")
_RECONCILE = "SELECT tollgate_reconcile($1)"
_PRUNE = "SELECT tollgate_prune_counters()"
FORWARDED = frozenset({"allowed", "shadow_blocked"})


@dataclass(frozen=True)
class Admission:
    audit_id: int | None
    decision: str  # allowed | shadow_blocked | blocked | approval_required | stale (reload the policy, ask again)
    reason: str | None
    message: str | None
    approval_id: str | None = None
    key_id: str | None = None  # settles are batched in key order, as admits are
    # Its caps reserve against another key's counters too (a delegated key's ancestors): a settle
    # batch holding it locks all its counters first, in one order (migrations/sql/v0021.py).
    delegated: bool = False

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
    (tollgate_gate_batch), each still decided in order under the counter row locks. Settles
    are batched the same way (tollgate_settle_batch) on the relaxed pool. A lone request is a
    batch of one. Up to ``lanes`` batches of each kind are in flight at once. A batch the
    server refuses committed nothing; its items are then retried one by one, so a bad item
    is answered alone (migrations/sql/v0008.py says why there is no subtransaction per item)."""

    def __init__(self, db: HotDB, reservation_ttl_s: int, max_batch: int = 64, lanes: int = 2,
                 max_settle_batch: int = 32):
        self._db = db
        self._ttl = reservation_ttl_s
        self._admits: GroupCommit[dict[str, Any], Admission] = GroupCommit(self._decide, max_batch, lanes)
        self._settles: GroupCommit[dict[str, Any], bool] = GroupCommit(self._settle_batch, max_settle_batch, lanes)

    async def admit(
        self,
        key_id: str,
        policy: PolicyRef | None,
        row: AuditRow,
        predicted_usd: Decimal,
        approval: ApprovalRequest | None = None,
    ) -> Admission:
        """Raise Unavailable if the decision cannot be made durable: the caller fails closed."""
        return await self._admits.submit({
            "key_id": key_id, "policy_id": policy.policy_id if policy else None,
            "policy_version": policy.version if policy else None, "row": row,
            "caps": _caps(policy.caps_json) if policy else (), "predicted": str(predicted_usd),
            "ttl": self._ttl, "mode": policy.mode if policy else "enforce", "approval": approval,
        })

    async def _decide(self, batch: list[dict[str, Any]]) -> list[Admission | Exception]:
        try:
            records = await self._db.fetch(_ADMIT_BATCH, _json(batch))
        except Exception as exc:  # the batch committed nothing
            if _one_item_failed(exc):
                if len(batch) > 1:
                    return [answer for item in batch for answer in await self._decide([item])]
                log.error("gate_item_failed", sqlstate=getattr(exc, "sqlstate", None), detail=str(exc)[:200])
                return [Unavailable("gate_conflict", "The budget gate could not decide; try again.")]
            log.error("gate_unavailable", error=type(exc).__name__, detail=str(exc)[:200], batch=len(batch))
            raise Unavailable("database_unavailable", "Tollgate cannot reach its database.") from exc
        answers = {record["idx"]: record for record in records}
        return [Admission(answers[index]["audit_id"], answers[index]["decision"], answers[index]["reason"],
                          answers[index]["message"], answers[index]["approval_id"], item["key_id"],
                          any("owner" in cap for cap in item["caps"]))
                for index, item in enumerate(batch)]

    async def settle(self, admission: Admission, cost_usd: Decimal, patch: SettlePatch) -> bool:
        """Best effort, committed asynchronously (see proxy/hotdb.py): if it is lost, the
        reservation expires and the reconciler charges its estimate."""
        return await self._settles.submit({"audit_id": admission.audit_id, "key_id": admission.key_id,
                                           "cost": str(cost_usd), "patch": patch, "delegated": admission.delegated})

    async def _settle_batch(self, batch: list[dict[str, Any]]) -> list[bool]:
        try:
            await self._db.fetch_relaxed(_SETTLE_BATCH, _json(batch))
            return [True] * len(batch)
        except Exception as exc:  # the batch committed nothing
            if _one_item_failed(exc) and len(batch) > 1:
                return [answer for item in batch for answer in await self._settle_batch([item])]
            audit_ids = [item["audit_id"] for item in batch]
            log.error("settle_failed", audit_ids=audit_ids, error=type(exc).__name__, detail=str(exc)[:200])
            return [False] * len(batch)

    async def reconcile(self, limit: int = 1000) -> int:
        """Charge and close reservations whose process died or hung; returns how many. The
        same sweep drops counter rows of minutes and hours long over (migrations/sql/v0011.py)."""
        closed = await self._db.fetchval(_RECONCILE, limit)
        await self._db.fetchrow(_PRUNE)
        await self._db.fetchrow(duplicates.PRUNE)  # claims whose window ended and nobody repeated
        return int(closed)


@functools.lru_cache(maxsize=1024)
def _caps(caps_json: str) -> tuple[Any, ...]:
    """A policy version's caps, parsed once (not per call); read-only, never mutated."""
    return tuple(json.loads(caps_json))


def _json(batch: list[dict[str, Any]]) -> str:
    """The batch parameter: the records (proxy/rows.py) as objects, Decimals (and anything else
    orjson does not know) as strings, as json.dumps(default=str) wrote them."""
    try:
        return orjson.dumps(batch, default=str).decode()
    except orjson.JSONEncodeError:  # an integer past 64 bits (hostile input): the slow road
        return json.dumps(batch, default=_plain)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    return str(value)


def _one_item_failed(exc: Exception) -> bool:
    """The server refused the batch for something an item may have caused (not an outage)."""
    sqlstate: str | None = getattr(exc, "sqlstate", None)
    if not isinstance(exc, asyncpg.PostgresError) or not sqlstate:
        return False
    return sqlstate[:2] not in _NOT_ITEMS
