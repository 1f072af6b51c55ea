"""What a Twilio phone-number purchase costs, from Twilio's own price list (pure).

Buying a number (``POST .../IncomingPhoneNumbers.json`` and its ``Local``, ``Mobile`` and
``TollFree`` variants) starts a monthly charge; Twilio bills the first month at purchase, and
the answer carries no price. Tollgate ships no table of number prices: they differ by country
and type and change, and the account's own price list is one free read away (Pricing v1
``GET /v1/PhoneNumbers/Countries/{IsoCountry}`` on pricing.twilio.com). So a purchase is priced
before the gate from that read, which the core makes on the adapter's ``pricing`` host:

* the country: of ``PhoneNumber`` (E.164), by the table that gives SMS destinations theirs
  (vendors.twilio.pricing); without one, of ``AreaCode``, which Twilio takes for the US and
  Canada only (so ``+1`` and the area code). No country ("ZZ"): no read, cost unknown;
* the type: from the endpoint variant (``local``, ``mobile``, ``toll free``). The generic
  endpoint lets Twilio pick; the type is unknown until the number is bought, so it is priced at
  the country's highest price of any type: an estimate errs high, never under a cap;
* the price: that type's ``current_price`` (what the account pays, after any discount), in the
  answer's ``price_unit``, converted to USD with the FX table (vendors/pricing/fx_usd.json). An
  answer about another country, without the type, or in a currency the table lacks prices
  nothing: the core then refuses the purchase as ``cost_unknown`` unless its policy opted in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from vendors import money
from vendors.base import LookedUp, Lookup, ParsedRequest, RecordedObject, RequestRejected
from vendors.catalogue import Entry
from vendors.twilio.messages import E164, Facts
from vendors.twilio.pricing import UNKNOWN_COUNTRY, prices
from vendors.wire import json_object

RULE = "number"  # the catalogue's price rule of the purchases
PRICING_HOST = "pricing"  # the adapter's route prefix of pricing.twilio.com
ANY_TYPE = "any"  # the generic endpoint: Twilio picks the type
# The endpoint variant -> Pricing v1's number_type.
VARIANTS = {"Local.json": "local", "Mobile.json": "mobile", "TollFree.json": "toll free"}
AREA_CODE = re.compile(r"[2-9][0-9]{2}\Z")
MONTHLY_PRICE = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,12})?\Z")
ISO_COUNTRY = re.compile(r"[A-Z]{2}\Z")
ANY_NUMBER = "any number"  # the recipient of a purchase that names neither a number nor an area code


def purchase_facts(operation: Entry, params: Mapping[str, Any]) -> Facts:
    """The country and number type a purchase will be priced by, in the audit summary; and the
    number it buys as its recipient, with that country: a key whose ``recipients`` rules keep it to
    some countries (or numbers) keeps to them in the numbers it buys, which it would send from and
    be called on. An area code stands for its prefix (``+1415``); no number at all for one Twilio
    picks anywhere (country "ZZ", which only a policy naming "ZZ" admits)."""
    number_type = VARIANTS.get(operation.template.rsplit("/", 1)[-1], ANY_TYPE)
    number, area_code = _text(params, "PhoneNumber"), _text(params, "AreaCode")
    summary: dict[str, Any] = {"number_type": number_type}
    if number is not None:
        number = "".join(number.split())
        country = prices().country_of(number) if E164.match(number) else UNKNOWN_COUNTRY
        summary["phone_number"] = number = number[:16]
    elif area_code is not None and AREA_CODE.match(area_code.strip()):
        number = f"+1{area_code.strip()}"
        country = prices().country_of(f"{number}5550100")
        summary["area_code"] = area_code.strip()
    else:
        number, country = ANY_NUMBER, UNKNOWN_COUNTRY
    summary["country"] = country
    return Facts(moves_money=True, recipients=(number,), countries=(country,), summary=summary)


def bought(status: int, obj: Mapping[str, Any]) -> RecordedObject | None:
    """The number a purchase's answer says was bought, recorded as created through the key: a policy
    with ``customers.created_through_key`` then lets the key update and release its own numbers only."""
    sid = obj.get("sid")
    return RecordedObject(sid, "phone_number") if 200 <= status < 300 and isinstance(sid, str) else None


def price_lookup(request: ParsedRequest) -> Lookup | None:
    """The read of the country's number prices; None when the country is unknown (nothing would tell)."""
    country = request.summary.get("country")
    if not isinstance(country, str) or country == UNKNOWN_COUNTRY or not ISO_COUNTRY.match(country):
        return None
    return Lookup(f"/v1/PhoneNumbers/Countries/{country}", host=PRICING_HOST)


def monthly_usd(request: ParsedRequest, looked_up: LookedUp | None) -> Decimal | None:
    """The purchase's monthly price in USD from the answer to ``price_lookup``; None when it does not say."""
    if looked_up is None or looked_up.status != 200:
        return None
    answer = money_answer(looked_up.body)
    if answer is None or answer[0] != request.summary.get("country"):
        return None  # an answer about another country prices nothing
    _, unit, by_type = answer
    rate = money.fx_table().usd_per_unit.get(unit)
    wanted = request.summary.get("number_type")
    price = max(by_type.values(), default=None) if wanted == ANY_TYPE else by_type.get(str(wanted))
    if rate is None or price is None:
        return None
    return (price * rate).quantize(money.MICRO)


def money_answer(body: bytes) -> tuple[str, str, dict[str, Decimal]] | None:
    """(ISO country, price unit lowercased, number type -> current monthly price) from a Pricing v1
    PhoneNumbers country answer; None when it is not one. Prices are read from strings only, as
    Twilio sends them: a JSON number would pass through a float."""
    obj = json_object(body)
    country, unit, listed = obj.get("iso_country"), obj.get("price_unit"), obj.get("phone_number_prices")
    if not isinstance(country, str) or not isinstance(unit, str) or not isinstance(listed, list):
        return None
    by_type: dict[str, Decimal] = {}
    for item in listed:
        if not isinstance(item, dict):
            continue
        kind, price = item.get("number_type"), item.get("current_price")
        if isinstance(kind, str) and isinstance(price, str) and MONTHLY_PRICE.match(price):
            kind = " ".join(kind.lower().split())
            by_type[kind] = max(Decimal(price), by_type.get(kind, Decimal(0)))  # a repeated type: the higher
    return country.upper(), unit.lower(), by_type


def _text(params: Mapping[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise RequestRejected("invalid_parameter", f"Parameter {name!r} must be given once.", param=name)
    return value
