"""Prices of an account's or a key's own, installed over the shipped tables; and which one a call used.

The shipped tables (vendors/pricing/) are list prices entered by hand. An account's own prices
differ (Twilio's Pricing API gives each account its ``current_price``, after any discount), and a
Resend rate depends on the plan. ``tollgate prices sync`` and ``tollgate prices set`` store them
in Postgres (``vendor_prices``, proxy/vendorprices.py); the core loads them at start and on an
interval and installs them here with ``install``, replacing the whole table by one assignment, as
vendors/money.py installs exchange rates. An adapter stays pure: it asks ``usd`` for a price,
which reads memory only, in this order: the key's own (``PriceScope.key_id``), its account's
(``PriceScope.account``), the shipped one.

Which price an estimate used goes on the audit row (``request_summary.price_source``, in the
style of ``request_summary.fx``). ``estimate_usd`` returns a number and its signature is the
plugin protocol, so the choice is noted beside it instead: the core calls ``begin`` before the
estimate and ``used`` after it, in the same task; ``usd`` appends to that task's list (a
ContextVar: concurrent requests each see their own). Outside ``begin``/``used`` nothing is noted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from vendors import money
from vendors.base import PriceScope

SET_SOURCE = "tollgate prices set"  # the source of a price an operator set (not synced)

Key = tuple[str, str, str, str, str, str]  # vendor, scope, scope id, kind, country, detail


@dataclass(frozen=True)
class StoredPrice:
    """One price as the core read it from ``vendor_prices``: the newest of its kind for its scope."""

    vendor: str
    scope: str  # "account" | "key"
    scope_id: str
    kind: str
    country: str
    detail: str
    price: Decimal
    currency: str  # lower case
    as_of: str  # ISO date
    source: str  # the URL it was read from, or SET_SOURCE

    @property
    def key(self) -> Key:
        return (self.vendor, self.scope, self.scope_id, self.kind, self.country, self.detail)


@dataclass(frozen=True)
class Shipped:
    """Where a shipped price comes from, for the row that used it."""

    as_of: str
    where: str  # the file, e.g. vendors/pricing/twilio_sms.json


_installed: Mapping[Key, StoredPrice] = {}
_vendors: frozenset[str] = frozenset()  # the vendors with any price of their own installed
_noted: ContextVar[list[dict[str, str]] | None] = ContextVar("tollgate_prices_used", default=None)


def install(prices: Iterable[StoredPrice]) -> int:
    """Replace the process's own prices whole (an empty ``prices``: the shipped tables alone)."""
    global _installed, _vendors
    table = {price.key: price for price in prices}
    _installed = table  # one assignment: an estimate sees the old table or the new one, whole
    _vendors = frozenset(price.vendor for price in table.values())
    return len(table)


def installed() -> tuple[StoredPrice, ...]:
    """The prices of its own this process holds now (for proxy/pricetables.py's age of them)."""
    return tuple(_installed.values())


def covers(vendor: str) -> bool:
    """Whether any account or key has a price of its own for ``vendor``: when none does, the core
    need not tell the adapter whose call it is (a copy of the parsed request saved per call)."""
    return vendor in _vendors


def find(vendor: str, scope: PriceScope, kind: str, country: str = "", detail: str = "") -> StoredPrice | None:
    """The key's own price, else its account's; None: the shipped table's is the one."""
    table = _installed
    for name, ident in (("key", scope.key_id), ("account", scope.account)):
        if ident:
            found = table.get((vendor, name, ident, kind, country, detail))
            if found is not None:
                return found
    return None


def highest(vendor: str, scope: PriceScope, kind: str) -> Decimal | None:
    """The highest USD price of ``kind`` the scope has of its own, in any country (None: none), for a
    call whose destination is unseen: it must not be priced under what the account pays somewhere."""
    table, rates = _installed, money.fx_table().usd_per_unit
    found = [price.price * rates[price.currency] for price in table.values()
             if price.vendor == vendor and price.kind == kind and price.currency in rates
             and (price.scope, price.scope_id) in (("key", scope.key_id), ("account", scope.account))]
    return max(found, default=None)


def usd(vendor: str, scope: PriceScope, kind: str, country: str, shipped: Decimal, origin: Shipped,
        detail: str = "") -> Decimal:
    """The price per unit in USD that applies to ``scope``, noted for the audit row. A stored price in a
    currency without a USD rate prices nothing: the shipped one is used (and noted) instead."""
    value = own_usd(vendor, scope, kind, country, detail)
    if value is not None:
        return value
    _note({"source": "shipped", "kind": kind, "country": country, "usd": str(shipped), "as_of": origin.as_of,
           "from": origin.where})
    return shipped


def own_usd(vendor: str, scope: PriceScope, kind: str, country: str = "", detail: str = "") -> Decimal | None:
    """The scope's own price in USD, noted for the audit row; None (nothing noted) when it has none, or
    has one in a currency without a USD rate. For a price Tollgate ships no fallback of (one an operator
    sets, ``tollgate prices set``): None means the call cannot be priced."""
    found = find(vendor, scope, kind, country, detail)
    rate = money.fx_table().usd_per_unit.get(found.currency) if found is not None else None
    if found is None or rate is None:
        return None
    value = found.price if found.currency == "usd" else (found.price * rate).quantize(money.MICRO)
    _note({"source": "set" if found.source == SET_SOURCE else "synced", "kind": kind, "country": country,
           "usd": str(value), "as_of": found.as_of, "from": found.source, "scope": found.scope})
    return value


def set_command(vendor: str, kind: str, account: str | None) -> str:
    """The command that sets ``kind``'s price for an account, as an operator types it."""
    return f"tollgate prices set {vendor} {kind} USD --account {account or 'ACCOUNT'}"


def _note(entry: dict[str, str]) -> None:
    noted = _noted.get()
    if noted is not None and entry not in noted:
        noted.append({k: v for k, v in entry.items() if v})


def begin() -> None:
    """Start noting the prices this task's estimate uses."""
    _noted.set([])


def used() -> dict[str, Any] | None:
    """Which prices the estimate since ``begin`` used, for ``request_summary.price_source``; None: none.
    One price: its note; several (a call's legs): ``source`` synced, set or shipped when they agree, else
    ``mixed``, with each note under ``prices``. Noting stops here."""
    noted = _noted.get()
    _noted.set(None)
    if not noted:
        return None
    if len(noted) == 1:
        return noted[0]
    sources = {entry["source"] for entry in noted}
    return {"source": sources.pop() if len(sources) == 1 else "mixed", "prices": noted}
