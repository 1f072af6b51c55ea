"""Minor units to USD, with Decimal only; which currencies Stripe takes, and how it spells them.

Two tables, two questions. vendors/stripe/currencies.json says which presentment currencies
Stripe supports, each one's minor-unit exponent and the amount rules Stripe documents as special
cases (ISK and UGX in whole units, HUF and TWD payouts in whole units, three-decimal amounts that
end in 0); it is copied from Stripe's page, with the page and the date it was read. FX rates come
from vendors/pricing/fx_usd.json, a file operators edit; its source and date travel with it. A
currency can be in the first and not the second: Stripe takes it, Tollgate cannot price it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
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
class FxTable:
    source: str
    as_of: str
    usd_per_unit: dict[str, Decimal]


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
def fx_table() -> FxTable:
    data = json.loads((PRICING_DIR / "fx_usd.json").read_text())
    rates = {code.lower(): Decimal(str(rate)) for code, rate in data["usd_per_unit"].items()}
    return FxTable(source=data["source"], as_of=data["as_of"], usd_per_unit=rates)


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
    return (f"Stripe supports {currency.upper()}, but {RATES_WHERE} has no USD rate for it, so Tollgate cannot "
            "price the call")


def minor_to_usd(amount_minor: int, currency: str) -> Decimal:
    """Convert an amount in the currency's minor unit to USD, rounded to 1e-6 (check ``has_rate`` first)."""
    code = check_currency(currency)
    major = Decimal(amount_minor).scaleb(-exponent(code))
    return (major * fx_table().usd_per_unit[code]).quantize(MICRO)
