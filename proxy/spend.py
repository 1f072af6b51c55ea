"""Current spend against each cap of a key's policy, read from the budget counters.

One statement reads the counters for any number of (key, cap) pairs, so a page of keys
costs one read, not one per key and cap: at 10,000 keys the console's Keys page used to
send 50,000 statements at once and starve the admin pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from proxy import keys as keys_module
from proxy import pages
from proxy.errors import InvalidInput
from proxy.policy import rules

# One row per wanted (key, window, run), in the order asked: the counter row of the bucket
# that window is in now, or NULLs when nothing has been counted there yet.
_COUNTERS = text("""
SELECT w.i, tollgate_bucket(w.win, now(), w.run) AS bucket, bc.spent_usd, bc.reserved_usd, bc.requests
  FROM unnest(CAST(:keys AS text[]), CAST(:windows AS text[]), CAST(:runs AS text[]))
       WITH ORDINALITY AS w(key_id, win, run, i)
  LEFT JOIN budget_counters bc ON bc.key_id = w.key_id AND bc.bucket = tollgate_bucket(w.win, now(), w.run)
 ORDER BY w.i
""")

Wanted = tuple[str, Sequence[rules.Cap], str | None]  # (key id, its caps, the run for 'run' caps)


async def caps_usage(conn: AsyncConnection, wanted: Sequence[Wanted]) -> list[list[dict[str, Any]]]:
    """For each wanted key, its use of each of its caps: all of them in one statement."""
    flat = [(key_id, cap, run_id) for key_id, caps, run_id in wanted for cap in caps]
    if not flat:
        return [[] for _ in wanted]
    rows = list(await conn.execute(_COUNTERS, {"keys": [k for k, _, _ in flat],
                                               "windows": [c.window for _, c, _ in flat],
                                               "runs": [r for _, _, r in flat]}))
    usage = [_usage(cap, row) for (_, cap, _), row in zip(flat, rows, strict=True)]
    grouped, start = [], 0
    for _, caps, _ in wanted:
        grouped.append(usage[start:start + len(caps)])
        start += len(caps)
    return grouped


def _usage(cap: rules.Cap, row: Any) -> dict[str, Any]:
    spent, reserved, requests = _zero_if_none(row.spent_usd), _zero_if_none(row.reserved_usd), row.requests or 0
    used = spent + reserved if cap.usd is not None else Decimal(requests)
    limit = cap.usd if cap.usd is not None else Decimal(cap.requests or 0)
    return {
        "window": cap.window, "action": cap.action, "bucket": row.bucket,
        "limit_usd": str(cap.usd) if cap.usd is not None else None, "limit_requests": cap.requests,
        "spent_usd": str(spent), "reserved_usd": str(reserved), "requests": requests,
        "remaining": str(max(limit - used, Decimal(0))),
    }


async def key_spend(conn: AsyncConnection, key_id: str, run_id: str | None = None) -> dict[str, Any]:
    described = await keys_module.show_key(conn, key_id)
    current = rules.Policy.from_document(described["policy_id"], described["policy_version"], described["policy"])
    [caps] = await caps_usage(conn, [(key_id, current.caps, run_id)])
    return {"key_id": key_id, "policy_id": current.id, "policy_version": current.version,
            "agent_run_id": run_id, "caps": caps}


async def with_spend(conn: AsyncConnection, page: pages.Page) -> pages.Page:
    """A page of keys (keys.list_keys with_documents) with each key's ``spend`` against every cap
    of its current policy, 'run' caps for its latest run; the documents themselves are dropped."""
    parsed: dict[tuple[str, int], rules.Policy] = {}
    for key in page.data:
        version = (key["policy_id"], key["policy_version"])
        if version not in parsed:
            parsed[version] = rules.Policy.from_document(*version, key["policy"])
    wanted = [(k["id"], parsed[(k["policy_id"], k["policy_version"])].caps, k["last_run_id"]) for k in page.data]
    usage = await caps_usage(conn, wanted)
    data = [{**{f: v for f, v in key.items() if f != "policy"},
             "spend": {"agent_run_id": key["last_run_id"], "caps": caps}}
            for key, caps in zip(page.data, usage, strict=True)]
    return pages.Page(data, page.next)


# Money that moved per vendor per UTC day: forwarded calls, and calls the vendor failed on whose
# estimate stays counted ('error', as the caps count them); refused ones moved nothing.
_DAILY = text("""
SELECT (ts AT TIME ZONE 'UTC')::date AS day, vendor, coalesce(sum(cost_usd), 0) AS usd, count(*) AS calls
  FROM audit_events
 WHERE ts >= ((now() AT TIME ZONE 'UTC')::date - make_interval(days => CAST(:days AS int) - 1)) AT TIME ZONE 'UTC'
   AND decision IN ('allowed', 'shadow_blocked', 'error')
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
