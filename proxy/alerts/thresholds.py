"""Cap thresholds (80 % and 100 % by default), found in the budget counters and fired once.

Why not a trigger like the other alerts: spend moves inside the gate's and settle's SQL
functions, on the hottest rows of the system, and those texts are not this module's to change.
The counters themselves (``spent_usd + reserved_usd``, or ``requests``, per key and bucket) are
durable, and every change stamps ``updated_at``. So the process holding the alert lease reads
the counters changed since ``alert_scan.counters_to`` (less a margin, for gate transactions
that stamped earlier and committed later), compares each with the caps of its key's current
policy, and inserts every threshold reached into ``alert_thresholds``. Its primary key (key,
cap, bucket, threshold) makes a crossing fire once however many scans see it, and the event is
emitted in the same transaction as the insert. A crossing is seen within one loop interval; a
crossing that a later release undoes (a refused call's reservation) has still been reached.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from proxy.alerts import events
from proxy.audit.chain import SETTLE_MARGIN
from proxy.policy import rules

DEFAULT_THRESHOLDS = (80, 100)

_WANTED = text("SELECT 1 FROM alert_subscriptions WHERE removed_at IS NULL "
               "AND EXISTS (SELECT 1 FROM unnest(events) e WHERE e LIKE 'cap_threshold%') LIMIT 1")
_CURSOR = text("WITH old AS (SELECT counters_to FROM alert_scan WHERE id = 1 FOR UPDATE) "
               "UPDATE alert_scan s SET counters_to = now() FROM old WHERE s.id = 1 RETURNING old.counters_to")
_CHANGED = text(f"""
SELECT bc.key_id, bc.bucket, bc.spent_usd, bc.reserved_usd, bc.requests, k.label,
       p.id AS policy_id, p.current_version, pv.document
  FROM budget_counters bc
  JOIN vault_keys k ON k.id = bc.key_id
  JOIN policies p ON p.id = k.policy_id
  JOIN policy_versions pv ON pv.policy_id = p.id AND pv.version = p.current_version
 WHERE bc.updated_at >= CAST(:since AS timestamptz) - interval '{SETTLE_MARGIN}'
 ORDER BY bc.key_id, bc.bucket
""")
_RECORD = text("INSERT INTO alert_thresholds (key_id, cap, bucket, threshold) "
               "VALUES (:key_id, :cap, :bucket, :threshold) ON CONFLICT DO NOTHING RETURNING key_id")
_LINK = text("UPDATE alert_thresholds SET event_id = :event_id "
             "WHERE key_id = :key_id AND cap = :cap AND bucket = :bucket AND threshold = :threshold")
# Minute, hour and day buckets never change again two days on (a reservation lives minutes).
_PRUNE = text("DELETE FROM alert_thresholds WHERE crossed_at < now() - interval '2 days' "
              "AND (bucket LIKE 'minute:%' OR bucket LIKE 'hour:%' OR bucket LIKE 'day:%')")


@dataclass(frozen=True)
class Crossing:
    key_id: str
    cap: str  # 'day:usd:200.00': the cap's window, unit and limit, so a raised cap is a new cap
    bucket: str
    threshold: int
    payload: dict[str, Any]


def window_of(bucket: str) -> str:
    return bucket.partition(":")[0]


def crossings(row: Any, policy: rules.Policy, thresholds: Sequence[int]) -> list[Crossing]:
    """Every threshold one counter row has reached on the caps of its window, lowest first."""
    found = []
    for cap in policy.caps:
        if cap.window != window_of(row.bucket):
            continue
        unit, limit = ("usd", cap.usd) if cap.usd is not None else ("requests", Decimal(cap.requests or 0))
        used = row.spent_usd + row.reserved_usd if unit == "usd" else Decimal(row.requests)
        if limit <= 0:
            continue
        percent = used * 100 / limit
        for threshold in sorted(thresholds):
            if percent >= threshold:
                payload = {"key_id": row.key_id, "label": row.label, "policy_id": row.policy_id,
                           "policy_version": row.current_version, "window": cap.window, "action": cap.action,
                           "bucket": row.bucket, "unit": unit, "limit": str(limit), "used": str(used),
                           "threshold": threshold,
                           "agent_run_id": row.bucket.partition(":")[2] if cap.window == "run" else None}
                found.append(Crossing(row.key_id, f"{cap.window}:{unit}:{limit}", row.bucket, threshold, payload))
    return found


async def scan(conn: AsyncConnection, thresholds: Sequence[int] = DEFAULT_THRESHOLDS) -> int:
    """Record and emit the thresholds reached since the last scan; how many fired. Call it in
    the lease holder's transaction (the cursor row is locked by it, too)."""
    since = (await conn.execute(_CURSOR)).scalar_one()
    if (await conn.execute(_WANTED)).first() is None:
        return 0  # nobody listens: the cursor moved on, nothing is recorded
    fired = 0
    parsed: dict[tuple[str, int], rules.Policy] = {}  # many keys share a policy: parse each version once
    for row in list(await conn.execute(_CHANGED, {"since": since})):
        version = (row.policy_id, row.current_version)
        if version not in parsed:
            parsed[version] = rules.Policy.from_document(row.policy_id, row.current_version, row.document)
        for crossing in crossings(row, parsed[version], thresholds):
            names = {"key_id": crossing.key_id, "cap": crossing.cap, "bucket": crossing.bucket,
                     "threshold": crossing.threshold}
            if (await conn.execute(_RECORD, names)).first() is None:
                continue  # fired before
            event_id = await events.emit(conn, "cap_threshold", crossing.payload, str(crossing.threshold))
            await conn.execute(_LINK, {**names, "event_id": event_id})
            fired += 1
    await conn.execute(_PRUNE)
    return fired
