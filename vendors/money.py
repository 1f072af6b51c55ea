"""Minor units to USD, with Decimal only.

Exponents follow Stripe's currency list: zero-decimal currencies carry whole units,
three-decimal ones carry thousandths. FX rates come from vendors/pricing/fx_usd.json,
a file operators edit; its source and date travel with it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from vendors.base import RequestRejected

ZERO_DECIMAL = frozenset(
    "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split()
)
THREE_DECIMAL = frozenset("bhd jod kwd omr tnd".split())
MICRO = Decimal("0.000001")
PRICING_DIR = Path(__file__).parent / "pricing"


@dataclass(frozen=True)
class FxTable:
    source: str
    as_of: str
    usd_per_unit: dict[str, Decimal]


@lru_cache(maxsize=1)
def fx_table() -> FxTable:
    data = json.loads((PRICING_DIR / "fx_usd.json").read_text())
    rates = {code.lower(): Decimal(str(rate)) for code, rate in data["usd_per_unit"].items()}
    return FxTable(source=data["source"], as_of=data["as_of"], usd_per_unit=rates)


def exponent(currency: str) -> int:
    code = currency.lower()
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


def check_currency(currency: str) -> str:
    code = currency.lower()
    if code not in fx_table().usd_per_unit:
        raise RequestRejected("unknown_currency", f"Currency {currency!r} is not a known currency.", param="currency")
    return code


def minor_to_usd(amount_minor: int, currency: str) -> Decimal:
    """Convert an amount in the currency's minor unit to USD, rounded to 1e-6."""
    code = check_currency(currency)
    major = Decimal(amount_minor).scaleb(-exponent(code))
    return (major * fx_table().usd_per_unit[code]).quantize(MICRO)
