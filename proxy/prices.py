"""Replace estimates with the vendor's own price once it has one (adapters whose
``prices_later`` is true: a message is priced minutes to hours after sending). Fetches are
reads, which vendors do not bill. A price is taken only from an answer about the row's own
object: a proxy, a cache or a vendor bug answering for another sid must not reprice it."""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from proxy.errors import UpstreamFailure
from proxy.keycache import KeyCache
from proxy.upstream import Upstream
from vendors.base import VendorAdapter

log = structlog.get_logger(__name__)

_PENDING = text(
    "SELECT id, key_id, vendor_account, object_id, cost_usd FROM audit_events "
    "WHERE vendor = :vendor AND cost_source = 'estimated' AND state IN ('final', 'reconciled') "
    "AND decision IN ('allowed', 'shadow_blocked') AND object_id IS NOT NULL "
    "AND ts > now() - make_interval(days => :days) ORDER BY ts LIMIT :limit"
)


@dataclass(frozen=True)
class RepriceReport:
    checked: int = 0
    repriced: int = 0
    waiting: int = 0  # the vendor has not priced it yet
    failed: int = 0  # could not ask the vendor

    def __add__(self, other: RepriceReport) -> RepriceReport:
        return RepriceReport(self.checked + other.checked, self.repriced + other.repriced,
                             self.waiting + other.waiting, self.failed + other.failed)


async def reprice(engine: AsyncEngine, keycache: KeyCache, upstream: Upstream, adapter: VendorAdapter,
                  upstream_base: str, days: int = 7, limit: int = 500) -> RepriceReport:
    async with engine.connect() as conn:
        rows = (await conn.execute(_PENDING, {"vendor": adapter.name, "days": days, "limit": limit})).all()
    repriced = waiting = failed = 0
    for row in rows:
        path = adapter.reconcile_path(row.vendor_account, row.object_id)
        key = await keycache.get(row.key_id) if path else None
        if path is None or key is None:
            waiting += 1
            continue
        try:
            auth = adapter.upstream_auth_headers(key.credential)
            answer = await upstream.send("GET", upstream_base + path, auth, b"")
        except UpstreamFailure as failure:
            log.warning("reprice_fetch_failed", audit_id=row.id, reason=failure.reason)
            failed += 1
            continue
        price = adapter.reconcile(answer.status, answer.body)
        if price.object_id != row.object_id:  # an answer about another object prices nothing of this row
            log.warning("reprice_answer_names_another_object", audit_id=row.id, answered=price.object_id)
            failed += 1
            continue
        if not price.final or price.cost_usd is None:
            waiting += 1
            continue
        async with engine.begin() as conn:
            await conn.execute(text("SELECT tollgate_reprice(:id, :cost)"), {"id": row.id, "cost": price.cost_usd})
        repriced += 1
    return RepriceReport(len(rows), repriced, waiting, failed)
