"""Current spend against each cap of a key's policy, read from the budget counters."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from proxy import keys as keys_module
from proxy.errors import InvalidInput
from proxy.policy import rules

_COUNTER = text(
    "SELECT tollgate_bucket(:window, now(), :run) AS bucket, bc.spent_usd, bc.reserved_usd, bc.requests "
    "FROM (SELECT 1) one LEFT JOIN budget_counters bc "
    "ON bc.key_id = :key AND bc.bucket = tollgate_bucket(:window, now(), :run)"
)


async def key_spend(conn: AsyncConnection, key_id: str, run_id: str | None = None) -> dict[str, Any]:
    described = await keys_module.show_key(conn, key_id)
    current = rules.Policy.from_document(described["policy_id"], described["policy_version"],
                                                 described["policy"])
    caps = []
    for cap in current.caps:
        row = (await conn.execute(_COUNTER, {"window": cap.window, "run": run_id, "key": key_id})).one()
        spent, reserved, requests = _zero_if_none(row.spent_usd), _zero_if_none(row.reserved_usd), row.requests or 0
        used = spent + reserved if cap.usd is not None else Decimal(requests)
        limit = cap.usd if cap.usd is not None else Decimal(cap.requests or 0)
        caps.append({
            "window": cap.window, "action": cap.action, "bucket": row.bucket,
            "limit_usd": str(cap.usd) if cap.usd is not None else None, "limit_requests": cap.requests,
            "spent_usd": str(spent), "reserved_usd": str(reserved), "requests": requests,
            "remaining": str(max(limit - used, Decimal(0))),
        })
    return {"key_id": key_id, "policy_id": current.id, "policy_version": current.version,
            "agent_run_id": run_id, "caps": caps}


# Money that moved per vendor per UTC day (forwarded calls; refused ones moved nothing).
_DAILY = text("""
SELECT (ts AT TIME ZONE 'UTC')::date AS day, vendor, coalesce(sum(cost_usd), 0) AS usd, count(*) AS calls
  FROM audit_events
 WHERE ts >= ((now() AT TIME ZONE 'UTC')::date - make_interval(days => CAST(:days AS int) - 1)) AT TIME ZONE 'UTC'
   AND decision IN ('allowed', 'shadow_blocked')
 GROUP BY 1, 2
 ORDER BY 1, 2
""")
MAX_DAYS = 366


async def daily_by_vendor(conn: AsyncConnection, days: int = 30) -> dict[str, Any]:
    """Spend per vendor per UTC day over the last ``days`` days (today included); days without calls are absent."""
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput("invalid_days", f"days must be between 1 and {MAX_DAYS}.")
    rows = await conn.execute(_DAILY, {"days": days})
    return {"days": days, "data": [{"day": r.day.isoformat(), "vendor": r.vendor, "usd": str(r.usd),
                                    "calls": r.calls} for r in rows]}


def _zero_if_none(value: Decimal | None) -> Decimal:
    return Decimal("0.000000") if value is None else value
