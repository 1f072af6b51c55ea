"""Replace estimates with the vendor's own price once it has one (adapters whose
``prices_later`` is true: a Twilio message is priced minutes to hours after sending; a Stripe
charge in EUR settles in USD at Stripe's rate). Fetches are reads, which vendors do not bill.
A price is taken only from an answer about the row's own object: a proxy, a cache or a vendor
bug answering for another object must not reprice it.

A sealed row is never edited. The audit chain (proxy/audit/chain.py) leaves an estimate open for
``REPRICE_WINDOW`` (a day) and then seals it; editing it after that would read as tampering to
``tollgate audit verify``. So a reprice takes the sealer's lock shared (the sealer takes it
exclusively, so neither runs while the other holds it) and reprices only a row the chain does not
hold; an estimate already sealed is left at its estimate and counted in ``RepriceReport.sealed``,
which ``tollgate prices reconcile`` prints. Its price is in the vendor's records, not in Tollgate's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from proxy.audit.chain import SEALER_LOCK
from proxy.config import Settings
from proxy.errors import UpstreamFailure
from proxy.keycache import KeyCache
from proxy.upstream import Upstream
from vendors.base import FinalPrice, VendorAdapter

log = structlog.get_logger(__name__)

_ESTIMATES = (
    "FROM audit_events a WHERE a.vendor = :vendor AND a.cost_source = 'estimated' "
    "AND a.state IN ('final', 'reconciled') AND a.decision IN ('allowed', 'shadow_blocked') "
    "AND a.object_id IS NOT NULL AND a.ts > now() - make_interval(days => :days) "
)
_SEALED = "EXISTS (SELECT 1 FROM audit_chain c WHERE c.audit_id = a.id)"
_PENDING = text(f"SELECT a.id, a.key_id, a.vendor_account, a.object_id, a.endpoint, a.cost_usd {_ESTIMATES}"
                f"AND NOT {_SEALED} ORDER BY a.ts LIMIT :limit")
# The object the call created, which the settle recorded under the row's id. Read only for a row
# whose named object the adapter does not read (a Stripe refund's row names the charge it refunds;
# its price is the refund's): key_objects has no index on audit_id, and every Twilio message is an
# estimate, so asking for each row would scan a busy key's objects hundreds of times a pass.
_CREATED = text("SELECT object_id FROM key_objects WHERE key_id = :key_id AND audit_id = :id "
                "ORDER BY created_at LIMIT 1")
_PAST_THE_SEAL = text(f"SELECT count(*) {_ESTIMATES}AND {_SEALED}")
# Shared: repricers run side by side; the sealer's exclusive try-lock passes while one holds it.
_HOLD_SEALER = text("SELECT pg_advisory_xact_lock_shared(:lock)")
# One background repricer at a time, however many serve processes run: the reads are not billed,
# but N processes asking the vendor about the same rows is N times the work for one answer.
REPRICER_LOCK = 0x7011_9A1C
_REPRICE_UNSEALED = text("SELECT tollgate_reprice(:id, :cost) WHERE NOT EXISTS "
                         "(SELECT 1 FROM audit_chain c WHERE c.audit_id = :id)")


@dataclass(frozen=True)
class RepriceReport:
    checked: int = 0
    repriced: int = 0
    waiting: int = 0  # the vendor has not priced it yet
    failed: int = 0  # could not ask the vendor
    sealed: int = 0  # estimates the audit chain had sealed: left as they are, never edited

    def __add__(self, other: RepriceReport) -> RepriceReport:
        return RepriceReport(self.checked + other.checked, self.repriced + other.repriced,
                             self.waiting + other.waiting, self.failed + other.failed, self.sealed + other.sealed)


async def reprice(engine: AsyncEngine, keycache: KeyCache, upstream: Upstream, adapter: VendorAdapter,
                  upstream_base: str, days: int = 7, limit: int = 500) -> RepriceReport:
    window = {"vendor": adapter.name, "days": days}
    async with engine.connect() as conn:
        rows = (await conn.execute(_PENDING, {**window, "limit": limit})).all()
        sealed = int(await conn.scalar(_PAST_THE_SEAL, window) or 0)
    repriced = waiting = failed = 0
    for row in rows:
        target, path = await _own_object(engine, adapter, row)
        price = await _ask(keycache, upstream, adapter, upstream_base + path if path else None, row, target)
        if price is None or price.object_id != target:  # could not ask, or answered for another
            failed += 1
            continue
        if not price.final or price.cost_usd is None:
            waiting += 1
            continue
        async with engine.begin() as conn:
            await conn.execute(_HOLD_SEALER, {"lock": SEALER_LOCK})
            done = (await conn.execute(_REPRICE_UNSEALED, {"id": row.id, "cost": price.cost_usd})).first()
        if done is None:  # sealed since it was read: the sealer got there first
            sealed += 1
            continue
        repriced += 1
    if sealed:
        log.warning("reprice_past_the_seal", vendor=adapter.name, sealed=sealed,
                    hint="sealed rows keep their estimate: the audit chain is never edited")
    return RepriceReport(len(rows), repriced, waiting, failed, sealed)


async def _own_object(engine: AsyncEngine, adapter: VendorAdapter, row: Any) -> tuple[str, str | None]:
    """The object whose price is the call's, and where to read it: the one its row names, else the
    one the call created (a refund, whose row names the charge); no path: nothing to read."""
    path = adapter.reconcile_path(row.vendor_account, row.object_id, row.endpoint)
    if path is not None:
        return row.object_id, path
    async with engine.connect() as conn:
        created = await conn.scalar(_CREATED, {"key_id": row.key_id, "id": row.id})
    if not isinstance(created, str) or created == row.object_id:
        return row.object_id, None
    return created, adapter.reconcile_path(row.vendor_account, created, row.endpoint)


async def _ask(keycache: KeyCache, upstream: Upstream, adapter: VendorAdapter, url: str | None, row: Any,
               target: str) -> FinalPrice | None:
    """What the vendor says at ``url`` of ``target``, the call's object, now (not final: ask later);
    None: it could not be asked."""
    key = await keycache.get(row.key_id) if url else None
    if url is None or key is None:
        return FinalPrice(target, None, None, final=False)
    try:
        answer = await upstream.send("GET", url, adapter.upstream_auth_headers(key.credential), b"")
    except UpstreamFailure as failure:
        log.warning("reprice_fetch_failed", audit_id=row.id, reason=failure.reason)
        return None
    price = adapter.reconcile(answer.status, answer.body)
    if price.object_id != target:  # an answer about another object prices nothing of this row
        log.warning("reprice_answer_names_another_object", audit_id=row.id, answered=price.object_id,
                    status=price.status)
    return price


async def reprice_vendors(engine: AsyncEngine, keycache: KeyCache, upstream: Upstream,
                          adapters: Iterable[VendorAdapter], settings: Settings, days: int = 7,
                          limit: int = 500) -> RepriceReport:
    """``reprice`` for each adapter that prices later, at its configured upstream."""
    report = RepriceReport()
    for adapter in adapters:
        if adapter.prices_later:
            base = settings.upstream_for(adapter.name, adapter.default_upstream)
            report += await reprice(engine, keycache, upstream, adapter, base, days, limit)
    return report


async def forever(engine: AsyncEngine, keycache: KeyCache, upstream: Upstream, adapters: Iterable[VendorAdapter],
                  settings: Settings, interval_s: float) -> None:
    """serve's background repricer: every ``interval_s``, whichever process takes the lock reprices
    (the estimates of the last day; older ones are sealed or about to be)."""
    adapters = tuple(adapters)
    while True:
        await asyncio.sleep(interval_s)
        try:
            async with engine.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")  # held, never idle in a transaction
                if not await conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": REPRICER_LOCK}):
                    continue  # another process is at it
                try:
                    report = await reprice_vendors(engine, keycache, upstream, adapters, settings, days=1)
                finally:
                    await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": REPRICER_LOCK})
            if report.repriced or report.failed:
                log.info("estimates_repriced", checked=report.checked, repriced=report.repriced,
                         waiting=report.waiting, failed=report.failed, sealed=report.sealed)
        except Exception as exc:  # the database or a vendor may be down: try again next time
            log.error("reprice_failed", error=type(exc).__name__)
