"""The budget gate and the settle: the request path's only two database statements.

``admit`` is step 6 of DESIGN.md's request path: one round trip that checks the key is
still active, reserves the predicted cost against every cap, and commits the audit row
(pending if allowed). ``settle`` is step 9. Both call SQL functions defined by migration
0001, so the whole decision happens inside Postgres under row locks, which is what keeps
caps exact across any number of proxy processes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping

import asyncpg
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from proxy.errors import Unavailable

log = structlog.get_logger(__name__)

_ADMIT = "SELECT audit_id, decision, reason, message FROM tollgate_gate($1, $2, $3, $4, $5, $6)"
_SETTLE = "SELECT tollgate_settle($1, $2, $3)"
_RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)


@dataclass(frozen=True)
class Admission:
    audit_id: int | None
    decision: str  # allowed | blocked | stale (policy changed: reload and ask again)
    reason: str | None
    message: str | None

    @property
    def allowed(self) -> bool:
        return self.decision == "allowed"


class Gate:
    def __init__(self, engine: AsyncEngine, reservation_ttl_s: int):
        self._engine = engine
        self._ttl = reservation_ttl_s

    async def admit(
        self,
        key_id: str,
        policy_version: int | None,
        row: Mapping[str, Any],
        caps_json: str,
        predicted_usd: Decimal,
    ) -> Admission:
        """Raise Unavailable if the decision cannot be made durable: the caller fails closed."""
        args = (key_id, policy_version, json.dumps(row, default=str), caps_json, predicted_usd, self._ttl)
        for attempt in (1, 2):
            try:
                record = await self._fetchrow(_ADMIT, *args)
                return Admission(record["audit_id"], record["decision"], record["reason"], record["message"])
            except _RETRYABLE:
                if attempt == 2:
                    raise Unavailable("gate_conflict", "The budget gate could not commit; try again.") from None
            except Exception as exc:  # any failure to commit means no forward
                log.error("gate_unavailable", error=type(exc).__name__, detail=str(exc)[:200])
                raise Unavailable("database_unavailable", "Tollgate cannot reach its database.") from exc
        raise AssertionError("unreachable")

    async def settle(self, audit_id: int, cost_usd: Decimal, patch: Mapping[str, Any]) -> bool:
        """Best effort: if it fails, the reservation expires and is reconciled later."""
        try:
            await self._fetchrow(_SETTLE, audit_id, cost_usd, json.dumps(patch, default=str))
            return True
        except Exception as exc:
            log.error("settle_failed", audit_id=audit_id, error=type(exc).__name__, detail=str(exc)[:200])
            return False

    async def _fetchrow(self, sql: str, *args: Any) -> asyncpg.Record:
        async with self._engine.connect() as conn:
            raw = await conn.get_raw_connection()
            return await raw.driver_connection.fetchrow(sql, *args)
