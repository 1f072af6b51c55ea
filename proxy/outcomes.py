"""Ask the vendor what became of calls whose outcome nobody knew, and count what they really moved.

A forwarded call whose answer did not say whether it happened (the vendor timed out, the
connection broke mid-answer, or the vendor answered a call that moves money with a 5xx) is
settled at its estimate: decision ``error``, ``cost_source = 'estimated'``, counted against
every cap as its reservation was, because it may have moved money (proxy/handler.py). Charging
nothing would let a failing vendor take any number of calls past a cap; charging the estimate
for good would count money that never moved. So ``tollgate prices reconcile`` asks: where the
adapter names a read that tells (``outcome_lookup``; for Stripe, its events by idempotency key),
its answer reprices the row (``tollgate_reprice``: every counter the call was counted in moves
by the difference) to what the call moved, or to 0 when the vendor's own record says it did
nothing. Where nothing can tell, the estimate stands.

The same reprice gives a call's cost back when a later answer of the same key says it will never
be billed (``ParsedResponse.releases``: a scheduled email cancelled): ``release`` settles the
earlier row at 0 right after the answer that says so.

Only rows the audit chain has not sealed are looked at: it leaves estimated rows unsealed for
``REPRICE_WINDOW`` (a day), and rows within ``SEAL_MARGIN`` of that are left too, so a reprice
never edits a sealed row.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from proxy import lookups
from proxy.audit.chain import REPRICE_WINDOW
from proxy.keycache import KeyCache
from proxy.keys import KeyRecord
from proxy.prices import RepriceReport
from proxy.records import Fetches
from proxy.redact import MASK
from proxy.upstream import Upstream
from vendors.base import Outcome, ParsedRequest, UncertainCall, VendorAdapter

log = structlog.get_logger(__name__)

MAX_PAGES = 20  # pages of the vendor's record read for one call before asking again next run
# Rows this close to being sealed are left alone: a reprice must commit before the sealer reads the row.
SEAL_MARGIN = "1 hour"

# The key's other calls with the same idempotency key (an SDK's retries) did what their own rows
# say: the vendor's request id of each tells the vendor's record of it from this call's.
_UNCERTAIN = text(f"""
SELECT a.id, a.key_id, a.method, a.path, a.endpoint, a.vendor_account, a.idempotency_key,
       a.upstream_request_id, extract(epoch FROM a.ts) AS sent_at,
       ARRAY(SELECT o.upstream_request_id FROM audit_events o
              WHERE o.key_id = a.key_id AND o.idempotency_key = a.idempotency_key AND o.id <> a.id
                AND o.upstream_request_id IS NOT NULL
                AND o.ts BETWEEN a.ts - interval '1 day' AND a.ts + interval '1 day') AS others
  FROM audit_events a
 WHERE a.vendor = :vendor AND a.cost_source = 'estimated' AND a.decision = 'error' AND a.state = 'final'
   AND a.cost_reconciled_at IS NULL AND a.ts > now() - interval '{REPRICE_WINDOW}' + interval '{SEAL_MARGIN}'
   AND (CAST(:key_id AS text) IS NULL OR a.key_id = :key_id)
 ORDER BY a.ts LIMIT :limit
""")
_REPRICE = text("SELECT tollgate_reprice(:id, :cost)")
# The vendor confirmed the call: what it names, and when it was asked (the estimate may stand).
_CONFIRMED = text("UPDATE audit_events SET object_id = coalesce(object_id, :object_id), "
                  "cost_reconciled_at = coalesce(cost_reconciled_at, now()) WHERE id = :id")


# The key's latest row for the object, while it is still an estimate the sealer has left open; the
# key/time index finds it (a key's rows of the last day), the object id picks it among them.
_RELEASE = f"""
SELECT tollgate_reprice(a.id, 0) FROM (
  SELECT id FROM audit_events
   WHERE key_id = $1 AND vendor = $2 AND object_id = $3 AND decision = 'allowed' AND state = 'final'
     AND cost_source = 'estimated' AND ts > now() - interval '{REPRICE_WINDOW}' + interval '{SEAL_MARGIN}'
   ORDER BY id DESC LIMIT 1) a
"""


async def release(db: Fetches, key_id: str, vendor: str, object_id: str) -> Decimal | None:
    """Reprice the key's row that created ``object_id`` to 0; what it gave back (None: no row could
    be, because none is an open estimate). A failure keeps the charge: counting too much is safe."""
    try:
        rows = await db.fetch(_RELEASE, key_id, vendor, object_id)
    except Exception as exc:  # the answer is already the agent's; the charge stays until an operator looks
        log.warning("release_failed", key_id=key_id, error=type(exc).__name__)
        return None
    delta = rows[0][0] if rows else None
    log.info("cost_released", key_id=key_id, released_usd=str(-delta) if delta is not None else None)
    return -delta if delta is not None else None


def with_idempotency_key(adapter: VendorAdapter, method: str, headers: dict[str, str], parsed: ParsedRequest,
                         request_id: str) -> ParsedRequest:
    """A POST to a vendor that de-duplicates POSTs by a header carries one: the agent's, or one made
    from Tollgate's request id (added to ``headers``, which are forwarded). Should its outcome turn
    out uncertain, the vendor's record of it can be found by that key; and the vendor never runs
    the call twice for one key, however the agent retries it."""
    header = adapter.idempotency_header
    if header is None or method != "POST" or headers.get(header):
        return parsed
    headers[header] = f"tollgate-{request_id}"
    return dataclasses.replace(parsed, idempotency_key=headers[header])


def uncertain_answer(status: int) -> str:
    """The audit row's message for a vendor answer that does not say whether the call happened."""
    return (f"The vendor answered {status}, which does not say whether the call happened: its estimate "
            "stays counted until the vendor is asked (tollgate prices reconcile).")


async def resolve(engine: AsyncEngine, keycache: KeyCache, upstream: Upstream, adapter: VendorAdapter,
                  upstream_base: str, limit: int = 500, *, key_id: str | None = None,
                  clock: Callable[[], float] = time.time) -> RepriceReport:
    """Settle what the vendor can tell of ``adapter``'s uncertain calls (``key_id``: one key's only);
    ``clock`` is now, in Unix seconds."""
    async with engine.connect() as conn:
        rows = (await conn.execute(_UNCERTAIN, {"vendor": adapter.name, "limit": limit, "key_id": key_id})).all()
    report = RepriceReport(checked=len(rows))
    for row in rows:
        key = await keycache.get(row.key_id)
        outcome = await _ask(upstream, upstream_base, adapter, key, _uncertain_call(row, clock())) if key else None
        if outcome is None:
            report += RepriceReport(failed=1)  # could not ask: the key is gone, or the read failed
            continue
        if outcome.happened is None:
            report += RepriceReport(waiting=1)
            continue
        cost = outcome.cost_usd if outcome.happened else Decimal(0)
        async with engine.begin() as conn:
            if cost is not None:
                await conn.execute(_REPRICE, {"id": row.id, "cost": cost})
            await conn.execute(_CONFIRMED, {"id": row.id, "object_id": outcome.object_id})
        log.info("uncertain_call_settled", audit_id=row.id, happened=outcome.happened, cost_usd=str(cost))
        report += RepriceReport(repriced=1)
    return report


def _uncertain_call(row: Any, now: float) -> UncertainCall:
    # A masked key (it looked like a secret) is not what the vendor saw: it names nothing.
    key = row.idempotency_key if row.idempotency_key and MASK not in row.idempotency_key else None
    sent_at = int(row.sent_at)
    return UncertainCall(row.method, row.path, row.endpoint, row.vendor_account, key, row.upstream_request_id,
                         tuple(row.others), sent_at, now - sent_at)


async def _ask(upstream: Upstream, base: str, adapter: VendorAdapter, key: KeyRecord,
               call: UncertainCall) -> Outcome | None:
    """What the vendor's record says, page after page; None when it could not be read."""
    page: str | None = None
    for _ in range(MAX_PAGES):
        lookup = adapter.outcome_lookup(call, page)
        if lookup is None:
            return Outcome(None)  # nothing can tell: the estimate stands
        # Outcomes are read on the main host only: a read naming another host fails closed (status 0).
        answer = await lookups.read(upstream, {None: base}, adapter, key.credential, lookup)
        if answer.status == 0:
            return None
        outcome = adapter.outcome(call, answer)
        if outcome.happened is not None or outcome.next_page is None:
            return outcome
        page = outcome.next_page
    return Outcome(None)
