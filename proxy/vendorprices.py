"""An account's own vendor prices: read from the vendor's price list, stored, loaded, installed.

The shipped price tables are list prices entered by hand; what an account pays is the vendor's to
say. An adapter that can read its vendor's price list says how (``price_sync``, a
vendors.base.PriceSync: which reads, on which of its hosts, and how each answer becomes prices);
this module makes those reads with a key's own upstream credential, as the pre-gate price reads are
made (proxy/lookups.py: the configured base of the host, never one from an answer), and stores what
they give in ``vendor_prices`` with the account, the day and the URL read (``tollgate prices sync
--vendor NAME``, and serve's daily resync under a lease, proxy/leases.py).

Which countries: those the account's keys' policies can reach (``recipients.countries`` of every
active key on the account); a key without a country rule can reach any, and then so can the sync:
every country the vendor lists (``--all`` asks for that outright). Per-key or per-account rates an
operator sets (``tollgate prices set``, for a vendor whose price depends on the plan) go to the
same table.

The request path never reads the table: each process loads the newest row per price at start and
every ``price_refresh_interval_s`` and installs them (vendors/pricebook.py) only when they changed;
a price the table lacks is the shipped one, and the audit row says which was used.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from proxy import keys, lookups
from proxy.config import Settings
from proxy.errors import InvalidInput, NotFound
from proxy.secretbox import SecretBox
from proxy.upstream import Upstream
from vendors import pricebook
from vendors.base import ListedPrice, PriceSync, SettablePrice, UpstreamCredential, VendorAdapter

log = structlog.get_logger(__name__)

READS_AT_ONCE = 4  # concurrent price reads per sync: well inside a vendor's rate limit per account

_KEYS = text(
    "SELECT k.id, c.account FROM vault_keys k JOIN upstream_credentials c ON c.id = k.credential_id "
    "WHERE k.vendor = :vendor AND k.status = 'active' AND (k.expires_at IS NULL OR k.expires_at > now()) "
    "ORDER BY k.created_at DESC, k.id"
)
_STORE = text(
    "INSERT INTO vendor_prices (vendor, scope, scope_id, kind, country, detail, price, currency, as_of, source) "
    "VALUES (:vendor, :scope, :scope_id, :kind, :country, :detail, :price, :currency, CURRENT_DATE, :source) "
    "ON CONFLICT (vendor, scope, scope_id, kind, country, detail, as_of, source) "
    "DO UPDATE SET price = EXCLUDED.price, currency = EXCLUDED.currency, fetched_at = now()"
)
# The newest price per vendor, scope, kind, country and detail; a later read of the same day wins.
_LATEST = text(
    "SELECT DISTINCT ON (vendor, scope, scope_id, kind, country, detail) vendor, scope, scope_id, kind, country, "
    "detail, price, currency, as_of, source FROM vendor_prices "
    "ORDER BY vendor, scope, scope_id, kind, country, detail, as_of DESC, fetched_at DESC"
)


@dataclass(frozen=True)
class Target:
    """One vendor account to sync: the credential to read with, and the countries its keys reach."""

    account: str
    key_id: str
    credential: UpstreamCredential
    countries: frozenset[str] | None  # None: every country the vendor lists


@dataclass
class SyncReport:
    account: str
    key_id: str
    countries: int = 0
    stored: int = 0
    failed: list[str] = field(default_factory=list)  # "feed COUNTRY: why", or "feed: why" for a list


def price_sync_of(adapter: VendorAdapter) -> PriceSync | None:
    """The adapter's price list reader, if it has one (an optional part of the protocol)."""
    found: PriceSync | None = getattr(adapter, "price_sync", None)
    return found


async def targets(conn: AsyncConnection, box: SecretBox, vendor: str, key_id: str | None = None,
                  every_country: bool = False) -> list[Target]:
    """The accounts to sync (``key_id``: that key's only, read with its credential), each with the
    countries the policies of all its active keys reach."""
    records = [record for row in (await conn.execute(_KEYS, {"vendor": vendor})).all()
               if row.account and (record := await keys.load_for_auth(conn, box, row.id)) is not None]
    if key_id is not None:
        chosen = next((r for r in records if r.id == key_id), None)
        if chosen is None:
            raise NotFound("unknown_key", f"No active {vendor} key {key_id} with an upstream account.")
        account = chosen.credential.account
        records = [chosen] + [r for r in records if r.id != key_id and r.credential.account == account]
    found: dict[str, Target] = {}
    for record in records:
        account = record.credential.account or ""
        reach = record.policy.recipients.countries - {"ZZ"}
        countries = None if every_country or not record.policy.recipients.countries else frozenset(reach)
        known = found.get(account)
        if known is None:
            found[account] = Target(account, record.id, record.credential, countries)
        elif known.countries is not None:
            merged = None if countries is None else known.countries | countries
            found[account] = Target(account, known.key_id, known.credential, merged)
    return list(found.values())


async def sync(engine: AsyncEngine, upstream: Upstream, bases: Mapping[str | None, str], adapter: VendorAdapter,
               target: Target) -> SyncReport:
    """Read every price list of the adapter for the target's countries and store what they give."""
    reader = price_sync_of(adapter)
    if reader is None:
        raise InvalidInput("no_price_sync", f"Tollgate cannot read {adapter.label}'s prices from {adapter.label}.")
    report = SyncReport(target.account, target.key_id)
    rows: list[tuple[ListedPrice, str]] = []
    gate = asyncio.Semaphore(READS_AT_ONCE)
    reached: set[str] = set()
    for feed in reader.feeds:
        countries = target.countries
        if countries is None:
            countries = await _listed(upstream, bases, adapter, reader, feed, target.credential, report)
        reached |= countries

        async def one(country: str, feed: str = feed) -> None:
            lookup = reader.price_lookup(feed, country)
            async with gate:
                answer = await lookups.read(upstream, bases, adapter, target.credential, lookup)
            try:
                read = reader.read_prices(feed, country, answer)
            except ValueError as exc:
                report.failed.append(f"{feed} {country}: {exc}")
                return
            rows.extend((price, bases.get(lookup.host, "") + lookup.path) for price in read)

        await asyncio.gather(*(one(country) for country in sorted(countries)))
    report.countries = len(reached)
    async with engine.begin() as conn:
        report.stored = await store(conn, adapter.name, "account", target.account, rows)
    log.info("vendor_prices_synced", vendor=adapter.name, account=target.account, countries=report.countries,
             stored=report.stored, failed=len(report.failed))
    return report


async def _listed(upstream: Upstream, bases: Mapping[str | None, str], adapter: VendorAdapter, reader: PriceSync,
                  feed: str, credential: UpstreamCredential, report: SyncReport) -> frozenset[str]:
    """Every country the vendor lists in ``feed``, page after page (at most 50 pages)."""
    countries: set[str] = set()
    page: str | None = None
    for _ in range(50):
        answer = await lookups.read(upstream, bases, adapter, credential, reader.countries_lookup(feed, page))
        try:
            listed, page = reader.read_countries(feed, answer)
        except ValueError as exc:
            report.failed.append(f"{feed}: {exc}")
            break
        countries.update(listed)
        if page is None:
            break
    return frozenset(countries)


async def store(conn: AsyncConnection, vendor: str, scope: str, scope_id: str,
                rows: list[tuple[ListedPrice, str]]) -> int:
    if rows:
        await conn.execute(_STORE, [
            {"vendor": vendor, "scope": scope, "scope_id": scope_id, "kind": price.kind, "country": price.country,
             "detail": price.detail, "price": price.price, "currency": price.currency, "source": source}
            for price, source in rows])
    return len(rows)


def settable_of(adapter: VendorAdapter) -> tuple[SettablePrice, ...]:
    """The prices an operator sets for the adapter's vendor (an optional part of the protocol); a plug-in
    written before ``settable_prices`` may name its one unit in ``unit_price`` instead."""
    found: tuple[SettablePrice, ...] = tuple(getattr(adapter, "settable_prices", ()))
    unit = getattr(adapter, "unit_price", None)
    if not found and isinstance(unit, str):
        return (SettablePrice(unit, unit, f"{adapter.label}'s rate per {unit}"),)
    return found


async def set_rate(conn: AsyncConnection, adapter: VendorAdapter, rate: Decimal, *, kind: str | None = None,
                   key_id: str | None = None, account: str | None = None) -> tuple[str, SettablePrice]:
    """Store an operator's price of one of the adapter's ``settable_prices`` (``kind``; None: its first)
    for one key or account; the scope set, and the price's kind."""
    settable = settable_of(adapter)
    if not settable:
        raise InvalidInput("no_unit_price", f"{adapter.label} has no per-unit rate to set; its prices are synced.")
    chosen = settable[0] if kind is None and len(settable) == 1 else next(
        (price for price in settable if price.kind == kind), None)
    if chosen is None:
        listed = ", ".join(price.kind for price in settable)
        asked = "no kind" if kind is None else f"{kind[:60]!r}"
        raise InvalidInput("unknown_price_kind", f"{adapter.label} has no price of {asked} to set: name one of "
                           f"{listed} (`tollgate prices kinds {adapter.name}` says what each covers).")
    if not rate.is_finite() or rate <= 0:
        raise InvalidInput("invalid_rate", f"The rate must be a positive USD amount, not {rate}.")
    if key_id is not None:
        vendor = await conn.scalar(text("SELECT vendor FROM vault_keys WHERE id = :id"), {"id": key_id})
        if vendor != adapter.name:
            raise NotFound("unknown_key", f"No {adapter.name} key {key_id}.")
    scope, scope_id = ("key", key_id) if key_id is not None else ("account", account or "")
    await store(conn, adapter.name, scope, scope_id,
                [(ListedPrice(chosen.kind, "", rate, "usd"), pricebook.SET_SOURCE)])
    return f"{scope} {scope_id}", chosen


async def load(engine: AsyncEngine) -> list[pricebook.StoredPrice]:
    async with engine.connect() as conn:
        rows = (await conn.execute(_LATEST)).all()
    return [pricebook.StoredPrice(row.vendor, row.scope, row.scope_id, row.kind, row.country, row.detail, row.price,
                                  row.currency, row.as_of.isoformat(), row.source) for row in rows]


class Refresher:
    """Keeps this process's own prices in step with vendor_prices, installing only what changed."""

    def __init__(self, engine: AsyncEngine):
        self._engine = engine
        self._seen: list[pricebook.StoredPrice] | None = None

    async def refresh(self) -> bool:
        stored = await load(self._engine)
        if stored == self._seen:
            return False
        self._seen = stored
        log.info("vendor_prices_installed", prices=pricebook.install(stored))
        return True

    async def forever(self, interval_s: float) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as exc:  # the database may be down: the prices in memory stand
                log.error("vendor_prices_refresh_failed", error=type(exc).__name__)
            await asyncio.sleep(interval_s)


async def sync_all(engine: AsyncEngine, box: SecretBox, upstream: Upstream, settings: Settings,
                   adapters: Iterable[VendorAdapter]) -> bool:
    """Serve's scheduled resync: every account of every vendor whose prices can be read. False only
    when reads failed and nothing was stored (the lease is then given back, to try again soon): a
    country that keeps failing must not make every process read the whole list every few minutes."""
    stored, failed = 0, 0
    for adapter in adapters:
        if price_sync_of(adapter) is None:
            continue
        async with engine.connect() as conn:
            found = await targets(conn, box, adapter.name)
        bases = lookups.upstream_bases(settings, adapter)
        for target in found:
            report = await sync(engine, upstream, bases, adapter, target)
            stored, failed = stored + report.stored, failed + len(report.failed)
    return stored > 0 or failed == 0
