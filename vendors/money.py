"""Minor units to USD, with Decimal only; which currencies Stripe takes, and how it spells them.

Two tables, two questions. vendors/stripe/currencies.json says which presentment currencies
Stripe supports, each one's minor-unit exponent and the amount rules Stripe documents as special
cases (ISK and UGX in whole units, HUF and TWD payouts in whole units, three-decimal amounts that
end in 0); it is copied from Stripe's page, with the page and the date it was read. FX rates come
from vendors/pricing/fx_usd.json, a file operators edit; its source and date travel with it. A
currency can be in the first and not the second: Stripe takes it, Tollgate cannot price it.

The shipped rates are the fallback: ``tollgate prices sync --fx`` stores a published reference's
rates in Postgres, and the core installs them over the shipped ones with ``install_fx`` (at start,
and again whenever the stored set changes). The table is process-wide and replaced whole, by one
assignment, so an adapter stays pure (it reads memory, never the database) and a conversion never
sees half of one table and half of another. ``fx_note`` says which rate a conversion used, with
its date and source, for the audit row.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from vendors.base import RequestRejected

MICRO = Decimal("0.000001")
PRICING_DIR = Path(__file__).parent / "pricing"
CURRENCIES_FILE = Path(__file__).parent / "stripe" / "currencies.json"
CURRENCIES_WHERE = "vendors/stripe/currencies.json"
RATES_WHERE = "vendors/pricing/fx_usd.json"


@dataclass(frozen=True)
class RateOrigin:
    """Where one currency's rate came from, when it is not the table's own ``source``/``as_of``."""

    source: str
    as_of: str


@dataclass(frozen=True)
class SyncedRate:
    """One rate from a published reference, as the core read it from Postgres."""

    currency: str  # lower case, Stripe's spelling
    usd_per_unit: Decimal
    as_of: str  # ISO date the reference gives
    source: str  # the URL it was fetched from


@dataclass(frozen=True)
class FxTable:
    source: str
    as_of: str
    usd_per_unit: dict[str, Decimal]
    origins: Mapping[str, RateOrigin] = field(default_factory=dict)  # per currency; absent: the table's own
    # When each currency's rate was as of, in Unix seconds (midnight UTC of its day), worked out once
    # when the table is made, so that the request path's staleness check is a look-up, not a parse.
    as_of_s: Mapping[str, float] = field(default_factory=dict)

    def origin(self, currency: str) -> RateOrigin:
        return self.origins.get(currency, RateOrigin(RATES_WHERE, self.as_of))


def day_start_s(day: str) -> float:
    """Midnight UTC of an ISO date, in Unix seconds: the age of a day's rate is counted from its start."""
    return datetime.datetime.combine(datetime.date.fromisoformat(day[:10]), datetime.time(),
                                     datetime.UTC).timestamp()


def _stamped(table: FxTable) -> FxTable:
    stamps = {code: day_start_s(table.origin(code).as_of) for code in table.usd_per_unit}
    return FxTable(table.source, table.as_of, table.usd_per_unit, table.origins, stamps)


@dataclass(frozen=True)
class AmountRule:
    """Amounts in ``currency`` on ``endpoints`` (None: every endpoint) must be a multiple of ``multiple_of``."""

    currency: str
    endpoints: frozenset[str] | None
    multiple_of: int
    stripe_says: str


@dataclass(frozen=True)
class CurrencyTable:
    source: str
    read_on: str
    exponents: dict[str, int]
    rules: tuple[AmountRule, ...]


@lru_cache(maxsize=1)
def shipped_fx_table() -> FxTable:
    data = json.loads((PRICING_DIR / "fx_usd.json").read_text())
    rates = {code.lower(): Decimal(str(rate)) for code, rate in data["usd_per_unit"].items()}
    return _stamped(FxTable(source=data["source"], as_of=data["as_of"], usd_per_unit=rates))


_installed: FxTable | None = None  # None: the shipped table alone


def fx_table() -> FxTable:
    """The rates conversions use now: the synced ones the core installed, over the shipped ones."""
    return _installed or shipped_fx_table()


def install_fx(synced: Iterable[SyncedRate]) -> FxTable:
    """Replace the process's table: ``synced`` over the shipped rates (an empty ``synced``: the shipped
    table alone). A currency Stripe does not take is left out, as the shipped table leaves it out."""
    global _installed
    shipped = shipped_fx_table()
    rates, origins = dict(shipped.usd_per_unit), {}
    for rate in synced:
        if rate.currency in currency_table().exponents:
            rates[rate.currency] = rate.usd_per_unit
            origins[rate.currency] = RateOrigin(rate.source, rate.as_of)
    table = _stamped(FxTable(shipped.source, shipped.as_of, rates, origins)) if origins else None
    _installed = table  # one assignment: a conversion sees the old table or the new one, whole
    return fx_table()


def fx_note(currency: str) -> dict[str, str] | None:
    """The rate a conversion of ``currency`` uses, its date and source, for the audit row (None: no
    conversion, the amount is in USD, or there is no rate)."""
    code = currency.lower()
    table = fx_table()
    rate = table.usd_per_unit.get(code)
    if rate is None or code == "usd":
        return None
    origin = table.origin(code)
    return {"currency": code, "usd_per_unit": str(rate), "as_of": origin.as_of, "source": origin.source}


@lru_cache(maxsize=1)
def currency_table() -> CurrencyTable:
    data = json.loads(CURRENCIES_FILE.read_text())
    rules = tuple(
        AmountRule(r["currency"], None if r["endpoints"] == "*" else frozenset(r["endpoints"]), r["multiple_of"],
                   r["stripe_says"])
        for r in data["special_cases"]
    )
    return CurrencyTable(data["source"], data["read_on"], dict(data["currencies"]), rules)


def _with_exponent(value: int) -> frozenset[str]:
    return frozenset(code for code, exp in currency_table().exponents.items() if exp == value)


ZERO_DECIMAL = _with_exponent(0)
THREE_DECIMAL = _with_exponent(3)


def exponent(currency: str) -> int:
    return currency_table().exponents[currency.lower()]


def has_rate(currency: str) -> bool:
    return currency.lower() in fx_table().usd_per_unit


def check_currency(currency: str) -> str:
    """The code in Stripe's spelling, if Stripe supports it; whether Tollgate can price it is ``has_rate``."""
    code = currency.lower()
    if code not in currency_table().exponents:
        count = len(currency_table().exponents)
        raise RequestRejected(
            "unknown_currency",
            f"Currency {currency!r} is not one of the {count} presentment currencies Stripe supports "
            f"(the table is {CURRENCIES_WHERE}, from https://docs.stripe.com/currencies).",
            param="currency",
        )
    return code


def check_amount(amount_minor: int, currency: str, endpoint: str, param: str = "amount") -> None:
    """Stripe's special cases, as request rules: refused here rather than by Stripe after the gate."""
    for rule in currency_table().rules:
        applies = rule.currency == currency and (rule.endpoints is None or endpoint in rule.endpoints)
        if applies and amount_minor % rule.multiple_of:
            raise RequestRejected(
                "invalid_amount",
                f"Parameter {param!r} is {amount_minor} {currency.upper()} minor units; Stripe requires a "
                f"multiple of {rule.multiple_of} here. Stripe: \"{rule.stripe_says}\" ({CURRENCIES_WHERE})",
                param=param,
            )


def no_rate_note(currency: str) -> str:
    return (f"Stripe supports {currency.upper()}, but neither {RATES_WHERE} nor the reference rates synced by "
            "`tollgate prices sync --fx` has a USD rate for it, so Tollgate cannot price the call")


def minor_to_usd(amount_minor: int, currency: str) -> Decimal:
    """Convert an amount in the currency's minor unit to USD, rounded to 1e-6 (check ``has_rate`` first)."""
    code = check_currency(currency)
    major = Decimal(amount_minor).scaleb(-exponent(code))
    return (major * fx_table().usd_per_unit[code]).quantize(MICRO)
