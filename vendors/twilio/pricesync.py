"""Which of Twilio's Pricing API reads give an account's own prices, and how to read them (pure).

``tollgate prices sync --vendor twilio`` (proxy/vendorprices.py) makes these reads on the Pricing
host (pricing.twilio.com, the adapter's ``pricing`` host) with a key's own credential, so what it
stores is what that account pays (``current_price``: after the account's discounts), not the list
price. Three price lists, each listed by country and read a country at a time, shapes as in
Twilio's OpenAPI documents (emulators/fixtures/twilio_pricing_v1.json, twilio_pricing_v2.json):

* ``messaging``: Pricing v1 ``GET /v1/Messaging/Countries/{IsoCountry}``. ``outbound_sms_prices``
  holds one entry per carrier, each with a price per number type; the estimate cannot tell the
  carrier nor the sender's type before sending, so the highest ``current_price`` of all is the
  country's ``sms`` price: an estimate errs high, never under a cap. (Pricing v1 has no MMS or
  WhatsApp prices: those stay the shipped table's.)
* ``voice``: Pricing v2 ``GET /v2/Voice/Countries/{IsoCountry}``. ``outbound_prefix_prices`` holds
  one entry per group of destination prefixes (Alaska's 1907 dearer than the rest of the US); a
  leg is priced by its country, so the highest of them is the country's ``voice`` price per minute.
* ``numbers``: Pricing v1 ``GET /v1/PhoneNumbers/Countries/{IsoCountry}``: the monthly price per
  number type (``number``, detail the type), kept for the record. A purchase still reads its
  country's price live before the gate (vendors/twilio/numbers.py).

Lists (``GET /v1/Messaging/Countries`` ...) page with ``meta.next_page_url``; a next page is
followed only on the list's own path, so an answer cannot send the sync's reads elsewhere. Prices
are read from strings, as Twilio sends them (a JSON number would pass through a float).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from vendors.base import ListedPrice, LookedUp, Lookup
from vendors.twilio.numbers import PRICING_HOST, money_answer
from vendors.wire import json_object

PRICE = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,12})?\Z")
ISO_COUNTRY = re.compile(r"[A-Z]{2}\Z")
PAGE_SIZE = 1000  # the largest page Twilio's lists give: one read lists every country
# feed -> (its list's path, the kind of price it gives)
FEEDS: dict[str, tuple[str, str]] = {
    "messaging": ("/v1/Messaging/Countries", "sms"),
    "voice": ("/v2/Voice/Countries", "voice"),
    "numbers": ("/v1/PhoneNumbers/Countries", "number"),
}


class TwilioPriceSync:
    feeds: tuple[str, ...] = tuple(FEEDS)

    def countries_lookup(self, feed: str, page: str | None) -> Lookup:
        path = FEEDS[feed][0]
        return Lookup(path, query=page if page is not None else f"PageSize={PAGE_SIZE}", host=PRICING_HOST)

    def read_countries(self, feed: str, answer: LookedUp) -> tuple[tuple[str, ...], str | None]:
        if answer.status != 200:
            raise ValueError(f"the {feed} country list answered {answer.status or 'nothing'}")
        obj = json_object(answer.body)
        listed, meta = obj.get("countries"), obj.get("meta")
        if not isinstance(listed, list):
            raise ValueError(f"the {feed} country list has no countries")
        codes = tuple(dict.fromkeys(
            code.upper() for item in listed if isinstance(item, dict)
            for code in [item.get("iso_country")] if isinstance(code, str) and ISO_COUNTRY.match(code.upper())))
        following = meta.get("next_page_url") if isinstance(meta, dict) else None
        return codes, _next_page(FEEDS[feed][0], following)

    def price_lookup(self, feed: str, country: str) -> Lookup:
        if not ISO_COUNTRY.match(country):
            raise ValueError(f"{country!r} is not an ISO country code")
        return Lookup(f"{FEEDS[feed][0]}/{country}", host=PRICING_HOST)

    def read_prices(self, feed: str, country: str, answer: LookedUp) -> tuple[ListedPrice, ...]:
        if answer.status == 404:
            return ()  # Twilio lists no price of this kind there
        if answer.status != 200:
            raise ValueError(f"the {feed} prices of {country} answered {answer.status or 'nothing'}")
        if feed == "numbers":
            read = money_answer(answer.body)
            if read is None or read[0] != country:
                raise ValueError(f"the number prices of {country} are not an answer about {country}")
            return tuple(ListedPrice("number", country, price, read[1], detail=kind)
                         for kind, price in sorted(read[2].items()))
        obj = json_object(answer.body)
        unit = obj.get("price_unit")
        if str(obj.get("iso_country", "")).upper() != country or not isinstance(unit, str):
            raise ValueError(f"the {feed} prices of {country} are not an answer about {country}")
        prices = _outbound_sms(obj) if feed == "messaging" else _outbound_voice(obj)
        if not prices:
            return ()
        return (ListedPrice(FEEDS[feed][1], country, max(prices), unit.lower()),)


def _outbound_sms(obj: dict[str, Any]) -> list[Decimal]:
    """Every carrier's every number type's current price: the country's price is the highest."""
    carriers = obj.get("outbound_sms_prices")
    each = [carrier.get("prices") for carrier in (carriers if isinstance(carriers, list) else [])
            if isinstance(carrier, dict)]
    return [Decimal(price["current_price"]) for listed in each if isinstance(listed, list)
            for price in listed if _priced(price)]


def _outbound_voice(obj: dict[str, Any]) -> list[Decimal]:
    groups = obj.get("outbound_prefix_prices")
    return [Decimal(group["current_price"]) for group in (groups if isinstance(groups, list) else [])
            if _priced(group)]


def _priced(item: Any) -> bool:
    return isinstance(item, dict) and isinstance(item.get("current_price"), str) and bool(
        PRICE.match(item["current_price"]))


def _next_page(path: str, url: Any) -> str | None:
    """The next page's query, when it is on the list's own path; None: the last page (or a foreign link)."""
    if not isinstance(url, str) or not url:
        return None
    parts = urlsplit(url)
    return parts.query if parts.path == path and parts.query else None
