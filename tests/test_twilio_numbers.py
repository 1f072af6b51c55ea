"""How a Twilio number purchase is priced before the gate (vendors/twilio/numbers.py), pure.

The country comes from the number (or the US/Canada area code), the type from the endpoint
variant, the price from Pricing v1's answer for that country: the matching type's current
price in USD, or the highest of any type for the generic endpoint, where Twilio picks the type.
An answer that does not say (another country, no such type, an unknown currency, a failed
read) prices nothing, so the core refuses the purchase as cost_unknown.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from proxy import config, lookups
from proxy.upstream import create_upstream
from vendors.base import LookedUp, Lookup, ParsedRequest, UpstreamCredential
from vendors.twilio.adapter import TwilioAdapter

ADAPTER = TwilioAdapter()
ACCOUNT = "AC" + "0f" * 16
BUY = f"/2010-04-01/Accounts/{ACCOUNT}/IncomingPhoneNumbers"
FORM = {"content-type": "application/x-www-form-urlencoded"}
GB = {"country": "United Kingdom", "iso_country": "GB", "price_unit": "GBP",
      "phone_number_prices": [{"number_type": "local", "base_price": "1.00", "current_price": "1.00"},
                              {"number_type": "mobile", "base_price": "1.50", "current_price": "1.20"},
                              {"number_type": "toll free", "base_price": "2.50", "current_price": "2.00"}]}
US = {"iso_country": "US", "price_unit": "USD",
      "phone_number_prices": [{"number_type": "local", "base_price": "1.15", "current_price": "1.00"},
                              {"number_type": "toll free", "base_price": "2.15", "current_price": "2.00"}]}


def buy(variant: str = "", body: bytes = b"PhoneNumber=%2B447700900123") -> ParsedRequest:
    return ADAPTER.parse_request("POST", f"{BUY}{variant}.json", b"", FORM, body)


def answer(document: dict[str, Any], status: int = 200) -> LookedUp:
    return LookedUp(status, json.dumps(document).encode())


@pytest.mark.parametrize(("variant", "body", "country", "number_type"), [
    ("", b"PhoneNumber=%2B447700900123", "GB", "any"),
    ("/Local", b"PhoneNumber=%2B14155550199", "US", "local"),
    ("/Mobile", b"PhoneNumber=%2B447700900123", "GB", "mobile"),
    ("/TollFree", b"PhoneNumber=%2B18005550100", "US", "toll free"),
    ("", b"AreaCode=416", "CA", "any"),
    ("", b"AreaCode=415", "US", "any"),
])
def test_the_country_comes_from_the_number_and_the_type_from_the_endpoint(variant, body, country, number_type):
    parsed = buy(variant, body)
    assert parsed.moves_money and (parsed.summary["country"], parsed.summary["number_type"]) == (country, number_type)
    assert parsed.endpoint == f"POST /2010-04-01/Accounts/{{AccountSid}}/IncomingPhoneNumbers{variant}.json"
    lookup = ADAPTER.price_lookup(parsed, None)
    assert lookup == Lookup(f"/v1/PhoneNumbers/Countries/{country}", host="pricing")
    assert lookup.host in ADAPTER.hosts  # the core reads it on the Pricing host's configured base


@pytest.mark.parametrize("body", [b"PhoneNumber=%2B99912345678", b"PhoneNumber=4155550199", b"AreaCode=41",
                                  b"FriendlyName=x", b""])
def test_without_a_known_country_nothing_is_read_and_the_price_is_unknown(body):
    parsed = buy("", body)
    assert parsed.summary["country"] == "ZZ"
    assert ADAPTER.price_lookup(parsed, None) is None and ADAPTER.estimate_usd(parsed, None, None) is None


@pytest.mark.parametrize(("variant", "expected"), [
    ("/Local", Decimal("1.270000")),  # GBP 1.00 at 1.27
    ("/Mobile", Decimal("1.524000")),  # the current price (1.20), not the base price (1.50)
    ("/TollFree", Decimal("2.540000")),
    ("", Decimal("2.540000")),  # the generic endpoint: the type is unknown, priced at the highest
])
def test_the_matching_types_current_price_in_usd(variant, expected):
    assert ADAPTER.estimate_usd(buy(variant), None, answer(GB)) == expected


def test_a_type_the_country_does_not_list_prices_nothing():
    mobile_us = buy("/Mobile", b"PhoneNumber=%2B14155550199")
    assert ADAPTER.estimate_usd(mobile_us, None, answer(US)) is None
    assert ADAPTER.estimate_usd(buy("/Local", b"PhoneNumber=%2B14155550199"), None, answer(US)) == Decimal("1.000000")


@pytest.mark.parametrize("looked_up", [
    answer(US),  # an answer about another country than the number's (GB)
    answer(GB, status=404),
    LookedUp(0),  # the read could not be made
    LookedUp(200, b"<html>"),
    answer({**GB, "price_unit": "XTS"}),  # a currency the FX table does not hold
    answer({**GB, "phone_number_prices": [{"number_type": "local", "current_price": 1.0}]}),  # a float: not read
    answer({**GB, "phone_number_prices": [{"number_type": "local", "current_price": "-1.00"}]}),
    answer({**GB, "phone_number_prices": None}),
])
def test_an_answer_that_does_not_say_prices_nothing(looked_up):
    assert ADAPTER.estimate_usd(buy("/Local"), None, looked_up) is None
    assert ADAPTER.estimate_usd(buy("/Local"), None, None) is None


def test_a_bought_number_is_settled_at_its_estimate_not_reconciled():
    bought = {"sid": "PN" + "0a" * 16, "phone_number": "+447700900123", "type": "local"}
    response = ADAPTER.parse_response(buy("/Local"), 201, {}, json.dumps(bought).encode())
    assert response.cost_usd is None and response.object_id == bought["sid"]  # the estimate stands
    assert ADAPTER.reconcile_path(ACCOUNT, bought["sid"]) is None  # nothing later says more


def test_the_pricing_host_is_served_as_free_reads():
    parsed = ADAPTER.parse_request("GET", "/pricing/v1/PhoneNumbers/Countries/GB", b"", {}, b"")
    assert (parsed.host, parsed.endpoint) == ("pricing", "GET /pricing/v1/PhoneNumbers/Countries/{IsoCountry}")
    assert ADAPTER.estimate_usd(parsed) == 0


async def test_a_lookup_naming_a_host_the_vendor_has_not_is_a_failed_read_sent_nowhere():
    upstream = create_upstream(config.load(env={}))
    try:
        got = await lookups.read(upstream, {None: "http://127.0.0.1:9"}, ADAPTER, UpstreamCredential("t", ACCOUNT),
                                 Lookup("/v1/PhoneNumbers/Countries/GB", host="pricing"))
    finally:
        await upstream.aclose()
    assert got.status == 0 and got.body == b""
