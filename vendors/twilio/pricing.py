"""Twilio's price table (vendors/pricing/twilio_sms.json) and E.164 -> country.

The table is data that operators edit: its ``source`` and ``as_of`` say where the
numbers came from. Countries come from the longest matching ITU country-code
prefix; +1 (the North American Numbering Plan) is split into US and Canada by
area code (``nanp_canada_area_codes``), and into the Caribbean members by their
own four-digit prefixes. A number no prefix matches gets country ``"ZZ"``
(unknown): scope rules then see an explicit "unknown" rather than nothing, so an
allow-list of countries refuses it unless it names "ZZ".

Prices: SMS per segment, MMS per message, WhatsApp per message, voice per minute,
all USD as Decimal. A country without its own price uses the default, which is
deliberately high: an unknown destination must not slip under a cap.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

from vendors import pricebook
from vendors.base import PriceScope
from vendors.money import PRICING_DIR

TABLE_FILE = PRICING_DIR / "twilio_sms.json"
TABLE_WHERE = "vendors/pricing/twilio_sms.json"
VENDOR = "twilio"
UNKNOWN_COUNTRY = "ZZ"


@dataclass(frozen=True)
class TwilioPrices:
    source: str
    as_of: str
    prefixes: dict[str, str]  # ITU prefix without '+' -> ISO alpha-2
    canada_area_codes: frozenset[str]
    sms: dict[str, Decimal]
    default_sms: Decimal
    mms: dict[str, Decimal]
    whatsapp: Decimal
    voice: dict[str, Decimal]
    default_voice: Decimal
    voice_minutes: int

    def country_of(self, e164: str) -> str:
        """ISO alpha-2 for an E.164 number (``+14155552345`` -> "US"), or "ZZ"."""
        digits = e164[1:] if e164.startswith("+") else e164
        if not (digits.isascii() and digits.isdigit()):
            return UNKNOWN_COUNTRY
        for length in range(min(len(digits), 7), 0, -1):
            country = self.prefixes.get(digits[:length])
            if country is None:
                continue
            if length == 1 and digits[0] == "1" and digits[1:4] in self.canada_area_codes:
                return "CA"
            return country
        return UNKNOWN_COUNTRY

    def sms_rate(self, country: str) -> Decimal:
        return self.sms.get(country, self.default_sms)

    def mms_rate(self, country: str) -> Decimal | None:
        """None where Twilio has no MMS: media there goes out as SMS with a link."""
        return self.mms.get(country)

    def voice_rate(self, country: str) -> Decimal:
        return self.voice.get(country, self.default_voice)

    @property
    def origin(self) -> pricebook.Shipped:
        return pricebook.Shipped(self.as_of, TABLE_WHERE)


# The rates an estimate uses: the account's own, synced from Twilio's Pricing API by
# ``tollgate prices sync --vendor twilio`` (vendors/twilio/pricesync.py), else the shipped table's.

def sms_usd(scope: PriceScope, country: str) -> Decimal:
    table = prices()
    return pricebook.usd(VENDOR, scope, "sms", country, table.sms_rate(country), table.origin)


def mms_usd(scope: PriceScope, country: str) -> Decimal:
    """Pricing v1 gives SMS prices only: MMS is the shipped table's, or SMS where Twilio has no MMS."""
    table = prices()
    rate = table.mms_rate(country)
    if rate is None:
        return sms_usd(scope, country)
    return pricebook.usd(VENDOR, scope, "mms", country, rate, table.origin)


def whatsapp_usd(scope: PriceScope) -> Decimal:
    table = prices()
    return pricebook.usd(VENDOR, scope, "whatsapp", "", table.whatsapp, table.origin)


def voice_usd(scope: PriceScope, country: str) -> Decimal:
    table = prices()
    return pricebook.usd(VENDOR, scope, "voice", country, table.voice_rate(country), table.origin)


def highest_voice_usd(scope: PriceScope) -> Decimal:
    """A leg whose destination is unseen: the highest per-minute rate the shipped table or the account has."""
    table = prices()
    shipped = max((*table.voice.values(), table.default_voice))
    return max(shipped, pricebook.highest(VENDOR, scope, "voice") or shipped)


def _decimals(table: dict[str, str]) -> dict[str, Decimal]:
    return {code.upper(): Decimal(str(price)) for code, price in table.items()}


@lru_cache(maxsize=1)
def prices() -> TwilioPrices:
    data = json.loads(TABLE_FILE.read_text())
    return TwilioPrices(
        source=data["source"],
        as_of=data["as_of"],
        prefixes={str(k): str(v).upper() for k, v in data["prefixes"].items()},
        canada_area_codes=frozenset(data["nanp_canada_area_codes"]),
        sms=_decimals(data["sms_usd"]),
        default_sms=Decimal(str(data["default_sms_usd"])),
        mms=_decimals(data.get("mms_usd", {})),
        whatsapp=Decimal(str(data["whatsapp_usd_per_message"])),
        voice=_decimals(data["voice_usd_per_min"]),
        default_voice=Decimal(str(data["default_voice_usd_per_min"])),
        voice_minutes=int(data.get("voice_estimate_minutes", 1)),
    )
