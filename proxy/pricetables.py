"""How old each price table is, and what happens past an age: staleness made visible and bounded.

Every USD figure a cap holds rests on a price table: the exchange rates synced from a published
reference (``fx_rates``), the tables shipped in vendors/pricing/ (hand-entered, dated), and any
table a vendor's prices are synced into. An operator needs to see how old each is: ``tollgate
prices status``, the ``tollgate_price_table_age_seconds`` gauge, ``/readyz``'s body and the
console's overview all read this one registry. A table is a name, the day it is as of, and where
it came from; ``register`` adds one (a synced vendor table registers itself where it is loaded).

Past ``TOLLGATE_PRICE_MAX_AGE_S`` serve logs a warning, once per table and day; with
``TOLLGATE_REFUSE_STALE_PRICES=1`` a call that moves money is refused (``stale_price``) when its
conversion would use a rate older than that. The request path's check is a dictionary look-up
and a subtraction: each rate's age is counted from a timestamp worked out when its table was
installed (vendors/money.py ``FxTable.as_of_s``), never from a query. An age is counted from
midnight UTC of the day a table is as of, so it errs old, never young.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from vendors import money, pricebook

log = structlog.get_logger(__name__)

SYNCED_FX = "fx_rates"
SYNCED_VENDOR = "vendor_prices"
_DAY_S = 86_400.0


@dataclass(frozen=True)
class PriceTable:
    name: str  # what operators call it: fx_rates, vendors/pricing/twilio_sms.json, ...
    as_of: str | None  # the ISO day its prices are as of; None: never synced
    source: str  # where it came from: a URL, or "entered by hand"
    as_of_s: float | None  # as_of's start in Unix seconds

    def age_s(self, now: float) -> float | None:
        return None if self.as_of_s is None else max(0.0, now - self.as_of_s)


Provider = Callable[[], PriceTable]
_providers: dict[str, Provider] = {}


def register(name: str, provider: Provider) -> None:
    """Add a table (or replace the one of that name); ``provider`` reads memory only: it is called on
    every scrape of /metrics and every /readyz."""
    _providers[name] = provider


def tables() -> list[PriceTable]:
    return [provider() for provider in _providers.values()]


def describe(max_age_s: float, now: float | None = None) -> list[dict[str, Any]]:
    """Each table as JSON holds it: name, as_of, source, age_s (whole seconds) and stale."""
    now = time.time() if now is None else now
    described = []
    for table in tables():
        age = table.age_s(now)
        described.append({"table": table.name, "as_of": table.as_of, "source": table.source,
                          "age_s": None if age is None else int(age), "stale": age is not None and age > max_age_s})
    return described


def human_age(age_s: float | None) -> str:
    if age_s is None:
        return "never synced"
    return f"{age_s / _DAY_S:.1f} days" if age_s >= _DAY_S else f"{age_s / 3600:.1f} hours"


class Warnings:
    """What one serve has warned of: each stale table, and each stale rate a call used, once per
    table (or currency) and day it is as of, however often it is looked at."""

    def __init__(self) -> None:
        self._said: set[tuple[str, str, str | None]] = set()

    def _first(self, *what: str | None) -> bool:
        said = (str(what[0]), str(what[1]), what[2])
        if said in self._said:
            return False
        self._said.add(said)
        return True

    def tables(self, max_age_s: float, now: float | None = None) -> None:
        for table in describe(max_age_s, now):
            if table["stale"] and self._first("table", table["table"], table["as_of"]):
                log.warning("price_table_stale", table=table["table"], as_of=table["as_of"],
                            age=human_age(table["age_s"]), max_age_s=max_age_s,
                            hint="tollgate prices sync --fx refreshes the exchange rates")

    def rate(self, stale: StaleRate) -> None:
        """A call converted at a stale rate and allowed (refusing is off)."""
        if self._first("rate", stale.currency, stale.as_of):
            log.warning("stale_price_used", currency=stale.currency, table=stale.table, as_of=stale.as_of,
                        age=human_age(stale.age_s), max_age_s=stale.max_age_s,
                        hint="tollgate prices sync --fx; TOLLGATE_REFUSE_STALE_PRICES=1 refuses such calls")


@dataclass(frozen=True)
class StaleRate:
    """A conversion's rate older than the configured age: what the refusal, or the warning, says."""

    currency: str
    table: str
    as_of: str
    source: str
    age_s: float
    max_age_s: float

    def message(self) -> str:
        return (f"The {self.currency.upper()} rate this call would be converted to USD at is {human_age(self.age_s)} "
                f"old ({self.table}, as of {self.as_of}, from {self.source}), older than TOLLGATE_PRICE_MAX_AGE_S "
                f"({self.max_age_s:g} s), and TOLLGATE_REFUSE_STALE_PRICES is set. Refresh the rates with "
                "`tollgate prices sync --fx`; each tollgate serve installs them within TOLLGATE_FX_REFRESH_INTERVAL_S.")


def stale_rate(currency: str, max_age_s: float, now: float | None = None) -> StaleRate | None:
    """The rate a conversion of ``currency`` would use, when it is older than ``max_age_s``; else None."""
    table = money.fx_table()
    code = currency.lower()
    stamp = table.as_of_s.get(code)
    if stamp is None or code == "usd":
        return None
    age = (time.time() if now is None else now) - stamp
    if age <= max_age_s:
        return None
    origin = table.origin(code)
    return StaleRate(code, SYNCED_FX if code in table.origins else money.RATES_WHERE, origin.as_of, origin.source,
                     age, max_age_s)



class PriceGuard:
    """The request path's half: whether a conversion's rate is too old to price a call that moves money."""

    def __init__(self, max_age_s: float, refuse: bool):
        self._max_age_s = max_age_s
        self._refuse = refuse
        self._warnings = Warnings()

    def refused(self, currency: str | None) -> StaleRate | None:
        """The stale rate a conversion of ``currency`` would use, when stale rates are refused; when
        they are not, the call goes ahead and the rate is logged (once per currency and day)."""
        stale = stale_rate(currency, self._max_age_s) if currency else None
        if stale is not None and not self._refuse:
            self._warnings.rate(stale)
            return None
        return stale


def _synced_fx() -> PriceTable:
    origins = money.fx_table().origins.values()
    if not origins:
        return PriceTable(SYNCED_FX, None, "tollgate prices sync --fx (not run yet)", None)
    newest = max(origins, key=lambda origin: origin.as_of)
    return PriceTable(SYNCED_FX, newest.as_of, newest.source, money.day_start_s(newest.as_of))


def _synced_vendor() -> PriceTable:
    """Accounts' own prices read from the vendors' price lists: as old as the oldest one in use (a
    country the daily sync stopped reaching keeps its last price, and that is the age to see)."""
    synced = [price for price in pricebook.installed() if price.source != pricebook.SET_SOURCE]
    if not synced:
        return PriceTable(SYNCED_VENDOR, None, "tollgate prices sync --vendor (not run yet)", None)
    oldest = min(synced, key=lambda price: price.as_of)
    return PriceTable(SYNCED_VENDOR, oldest.as_of, oldest.source, money.day_start_s(oldest.as_of))


@functools.cache
def _shipped(path: Path) -> PriceTable:
    """A table shipped in vendors/pricing/: its own ``as_of``; read once, it does not change."""
    data = json.loads(path.read_text())
    as_of = data.get("as_of")
    name = f"vendors/pricing/{path.name}"
    stamp = money.day_start_s(as_of) if isinstance(as_of, str) else None
    return PriceTable(name, as_of if stamp is not None else None, "entered by hand (see its source field)", stamp)


register(SYNCED_FX, _synced_fx)
register(SYNCED_VENDOR, _synced_vendor)
for _path in sorted(money.PRICING_DIR.glob("*.json")):
    register(f"vendors/pricing/{_path.name}", functools.partial(_shipped, _path))
