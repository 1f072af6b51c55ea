"""Which price an estimate uses, once an account's or a key's own are installed (vendors/pricebook.py).

Pure: prices installed in this process as the core installs them, requests parsed by the adapter
as the proxy parses them, with the scope the core sets from the key. The end-to-end story (the
sync, the SDK, the audit row) is tests/test_vendor_price_sync.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from decimal import Decimal
from urllib.parse import urlencode

import pytest

from vendors import money, pricebook
from vendors.base import ParsedRequest, PriceScope
from vendors.twilio import TwilioAdapter
from vendors.twilio.calls import highest_rate

ADAPTER = TwilioAdapter()
ACCOUNT = "AC" + "b2" * 16
CALLS = f"/2010-04-01/Accounts/{ACCOUNT}/Calls.json"
MESSAGES = f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
FORM = {"content-type": "application/x-www-form-urlencoded"}


def own(kind: str, country: str, price: str, currency: str = "usd", scope: str = "account",
        scope_id: str = ACCOUNT, vendor: str = "twilio") -> pricebook.StoredPrice:
    return pricebook.StoredPrice(vendor, scope, scope_id, kind, country, "", Decimal(price), currency, "2026-12-02",
                                 f"https://pricing.example/{kind}/{country}")


@pytest.fixture(autouse=True)
def shipped_after() -> Iterator[None]:
    yield
    pricebook.install([])


def parsed(path: str, key_id: str | None = None, **params: str) -> ParsedRequest:
    request = ADAPTER.parse_request("POST", path, b"", FORM, urlencode(params).encode())
    return dataclasses.replace(request, price_scope=PriceScope(key_id, ACCOUNT))  # as the core sets it


def estimate(request: ParsedRequest) -> tuple[Decimal | None, dict[str, object] | None]:
    pricebook.begin()
    return ADAPTER.estimate_usd(request), pricebook.used()


def test_each_leg_of_a_call_is_priced_by_its_country_and_the_row_says_which_price() -> None:
    pricebook.install([own("voice", "US", "0.090")])
    twiml = "<Response><Dial><Number>+442071838750</Number></Dial></Response>"
    cost, used = estimate(parsed(CALLS, To="+14155552345", From="+15005550006", Twiml=twiml, TimeLimit="120"))
    assert cost == (Decimal("0.090") + Decimal("0.0245")) * 2  # two minutes: US synced, GB shipped
    assert used is not None and used["source"] == "mixed"
    assert [(p["source"], p["country"], p["usd"]) for p in used["prices"]] == [  # type: ignore[union-attr]
        ("synced", "US", "0.090"), ("shipped", "GB", "0.0245")]


def test_a_price_in_another_currency_is_converted_and_one_without_a_rate_is_not_used() -> None:
    pricebook.install([own("sms", "GB", "0.0400", "gbp"), own("sms", "US", "0.0091", "xts")])
    gbp = money.fx_table().usd_per_unit["gbp"]
    cost, used = estimate(parsed(MESSAGES, To="+447700900123", From="+15005550006", Body="hi"))
    assert cost == (Decimal("0.0400") * gbp).quantize(money.MICRO) and used is not None
    assert used["source"] == "synced"
    cost, used = estimate(parsed(MESSAGES, To="+14155552345", From="+15005550006", Body="hi"))
    assert cost == Decimal("0.0083") and used is not None and used["source"] == "shipped"  # no USD rate for XTS


def test_a_keys_own_price_wins_over_its_accounts_and_other_accounts_see_neither() -> None:
    pricebook.install([own("sms", "US", "0.0091"), own("sms", "US", "0.0050", scope="key", scope_id="key_1")])
    body = {"To": "+14155552345", "From": "+15005550006", "Body": "hi"}
    assert estimate(parsed(MESSAGES, "key_1", **body))[0] == Decimal("0.0050")
    assert estimate(parsed(MESSAGES, "key_2", **body))[0] == Decimal("0.0091")
    other = dataclasses.replace(parsed(MESSAGES, **body), price_scope=PriceScope(None, "AC" + "c3" * 16))
    assert estimate(other)[0] == Decimal("0.0083")


def test_an_unseen_leg_is_priced_at_the_highest_rate_the_account_pays_anywhere() -> None:
    pricebook.install([own("voice", "CU", "0.9100")])  # dearer than the shipped table's highest
    cost, _ = estimate(parsed(CALLS, To="+14155552345", From="+15005550006", Url="https://hooks.example/t",
                              TimeLimit="60"))
    assert cost == Decimal("0.0140") + Decimal("0.9100")  # To at the shipped US rate, the URL's leg at 0.91
    assert highest_rate() == Decimal("0.5000")  # without a scope: the shipped table's


def test_nothing_is_noted_outside_an_estimate_the_core_asked_about() -> None:
    pricebook.install([own("sms", "US", "0.0091")])
    request = parsed(MESSAGES, To="+14155552345", From="+15005550006", Body="hi")
    assert ADAPTER.estimate_usd(request) == Decimal("0.0091")
    assert pricebook.used() is None
