"""Buying a Twilio number through the proxy with twilio-python 9, priced before the gate.

The price is read from Twilio's Pricing host (pricing.twilio.com, here its emulator at
TOLLGATE_UPSTREAM_TWILIO_PRICING) with the key's own credential, before anything is reserved:
the number's country, the endpoint's type, the monthly current price in USD. A purchase over the
per-call limit is refused before the api host sees it; one whose country has no price is refused
as cost_unknown, as before, unless its policy opted in with ``endpoints.priced_after``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from twilio.base.exceptions import TwilioRestException

from tests.support.tollgate import TWILIO_ACCOUNT, TWILIO_TOKEN
from tests.test_e2e_twilio_hosts import basic, client_for, rows

BUY = "POST /2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers.json"
BUY_LOCAL = "POST /2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers/Local.json"
ALLOW = ["POST /2010-04-01/Accounts/*/IncomingPhoneNumbers.json",
         "POST /2010-04-01/Accounts/*/IncomingPhoneNumbers/Local.json"]


@pytest.fixture()
def key_for(make_key):
    def make(**fields: Any) -> dict[str, Any]:
        endpoints = {"allow": ALLOW, **fields.pop("endpoints", {})}
        return make_key({"vendor": "twilio", "endpoints": endpoints, **fields}, vendor="twilio", secret=TWILIO_TOKEN,
                        upstream_account=TWILIO_ACCOUNT)
    return make


def received(app: Any, since: int) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in app.state.received[since:]]


def test_a_purchase_is_priced_from_the_pricing_host_before_the_gate_and_forwarded(
        proxy_url, key_for, sql, run_id, twilio_emulator, twilio_products):
    pricing, api = twilio_products["pricing"][1], twilio_emulator[1]
    read_before, bought_before = len(pricing.state.received), len(api.state.received)
    client = client_for(proxy_url, key_for(per_call_usd="5.00")["key"], run_id)

    local = client.incoming_phone_numbers.local.create(phone_number="+14155550199")
    anywhere = client.incoming_phone_numbers.create(phone_number="+447700900123")
    assert local.sid.startswith("PN") and local.phone_number == "+14155550199"
    assert anywhere.phone_number == "+447700900123"

    assert received(pricing, read_before) == [("GET", "/v1/PhoneNumbers/Countries/US"),
                                              ("GET", "/v1/PhoneNumbers/Countries/GB")]
    assert pricing.state.received[-1].headers["authorization"] == basic(TWILIO_ACCOUNT, TWILIO_TOKEN)  # the key's
    assert [path for _, path in received(api, bought_before)] == [
        f"/2010-04-01/Accounts/{TWILIO_ACCOUNT}/IncomingPhoneNumbers/Local.json",
        f"/2010-04-01/Accounts/{TWILIO_ACCOUNT}/IncomingPhoneNumbers.json"]
    first, second = rows(sql, run_id)
    # US local: USD 1.00. GB through the generic endpoint: type unknown, the highest (toll free GBP 2.00 at 1.27).
    assert (first["decision"], first["endpoint"], first["predicted_usd"]) == ("allowed", BUY_LOCAL, Decimal("1"))
    assert (second["decision"], second["endpoint"], second["predicted_usd"]) == ("allowed", BUY, Decimal("2.54"))
    assert (second["cost_usd"], second["cost_source"], second["object_id"]) == (
        Decimal("2.54"), "estimated", anywhere.sid)  # Twilio's answer carries no price: the estimate stands
    price = second["request_summary"]["price"]
    assert (price["lookup"], price["lookup_host"], price["lookup_status"]) == (
        "/v1/PhoneNumbers/Countries/GB", "pricing", 200)
    assert second["request_summary"]["number_type"] == "any" and second["request_summary"]["country"] == "GB"


def test_a_purchase_over_the_per_call_limit_is_refused_before_the_api_host_sees_it(
        proxy_url, key_for, sql, run_id, twilio_emulator, twilio_products):
    pricing, api = twilio_products["pricing"][1], twilio_emulator[1]
    read_before, bought_before = len(pricing.state.received), len(api.state.received)
    client = client_for(proxy_url, key_for(per_call_usd="1.50")["key"], run_id)
    with pytest.raises(TwilioRestException) as refused:  # US, type unknown: priced at toll free, USD 2.00
        client.incoming_phone_numbers.create(area_code="415")
    assert refused.value.status == 403 and "[tollgate:per_call_limit]" in refused.value.msg
    assert received(pricing, read_before) == [("GET", "/v1/PhoneNumbers/Countries/US")]  # the price was read
    assert received(api, bought_before) == []  # nothing was bought
    [row] = rows(sql, run_id)
    assert (row["decision"], row["reason"], row["endpoint"]) == ("blocked", "per_call_limit", BUY)
    assert row["predicted_usd"] == Decimal("2") and row["upstream_status"] is None


def test_a_number_in_a_country_without_a_price_is_refused_unless_priced_after(
        proxy_url, key_for, sql, run_id, twilio_emulator, twilio_products):
    pricing, api = twilio_products["pricing"][1], twilio_emulator[1]
    read_before, bought_before = len(pricing.state.received), len(api.state.received)
    client = client_for(proxy_url, key_for(per_call_usd="5.00")["key"], run_id)
    for number in ("+99912345678", "+33612345678"):  # no country at all; a country the price list lacks (404)
        with pytest.raises(TwilioRestException) as refused:
            client.incoming_phone_numbers.local.create(phone_number=number)
        assert refused.value.status == 403 and "[tollgate:cost_unknown]" in refused.value.msg
    assert received(pricing, read_before) == [("GET", "/v1/PhoneNumbers/Countries/FR")]  # ZZ: nothing to read
    assert received(api, bought_before) == []
    no_country, not_listed = rows(sql, run_id)
    assert (no_country["reason"], no_country["endpoint"]) == ("cost_unknown", BUY_LOCAL)
    assert "lookup" not in no_country["request_summary"]["price"]
    assert not_listed["request_summary"]["price"]["lookup_status"] == 404

    opted_in = client_for(proxy_url, key_for(endpoints={"priced_after": [BUY_LOCAL]})["key"], run_id)
    assert opted_in.incoming_phone_numbers.local.create(phone_number="+33612345678").sid.startswith("PN")
    assert rows(sql, run_id)[-1]["decision"] == "allowed" and len(received(api, bought_before)) == 1


def test_agents_may_read_the_pricing_host_as_a_free_read(proxy_url, make_key, sql, run_id):
    key = make_key({"vendor": "twilio", "endpoints": {"allow": ["GET /pricing/v1/PhoneNumbers/Countries/*"]}},
                   vendor="twilio", secret=TWILIO_TOKEN, upstream_account=TWILIO_ACCOUNT)
    country = client_for(proxy_url, key["key"], run_id).pricing.v1.phone_numbers.countries("GB").fetch()
    assert country.iso_country == "GB" and country.price_unit == "GBP"
    assert {p["number_type"] for p in country.phone_number_prices} >= {"local", "mobile", "toll free"}
    [row] = rows(sql, run_id)
    assert (row["endpoint"], row["cost_usd"]) == ("GET /pricing/v1/PhoneNumbers/Countries/{IsoCountry}", Decimal(0))


def test_a_key_kept_to_some_countries_buys_numbers_in_those_countries_only(
        proxy_url, key_for, sql, run_id, twilio_emulator):
    api = twilio_emulator[1]
    bought_before = len(api.state.received)
    client = client_for(proxy_url, key_for(per_call_usd="5.00", recipients={"countries": ["US", "CA"]})["key"], run_id)
    with pytest.raises(TwilioRestException) as abroad:
        client.incoming_phone_numbers.create(phone_number="+447700900123")
    assert abroad.value.status == 403 and "[tollgate:recipient_not_allowed]" in abroad.value.msg
    assert received(api, bought_before) == []  # nothing was bought
    assert client.incoming_phone_numbers.local.create(phone_number="+14155550199").sid.startswith("PN")
    assert client.incoming_phone_numbers.create(area_code="604").sid.startswith("PN")  # Vancouver: Canada
    assert [(r["decision"], r["reason"]) for r in rows(sql, run_id)] == [
        ("blocked", "recipient_not_allowed"), ("allowed", None), ("allowed", None)]


def test_a_bought_number_is_recorded_as_created_through_its_key(proxy_url, key_for, sql, run_id):
    key = key_for(per_call_usd="5.00")
    ours = client_for(proxy_url, key["key"], run_id).incoming_phone_numbers.local.create(phone_number="+14155550123")
    client_for(proxy_url, key_for(per_call_usd="5.00")["key"], run_id).incoming_phone_numbers.local.create(
        phone_number="+14155550124")
    recorded = sql.execute("SELECT object_id, kind FROM key_objects WHERE key_id = %s", (key["id"],)).fetchall()
    assert [(r["object_id"], r["kind"]) for r in recorded] == [(ours.sid, "phone_number")]


def test_under_objects_created_through_key_a_key_updates_and_releases_its_own_numbers_only(
        proxy_url, key_for, sql, run_id, twilio_emulator):
    manage = [f"{method} /2010-04-01/Accounts/*/IncomingPhoneNumbers/*" for method in ("POST", "DELETE")]
    key = key_for(per_call_usd="5.00", endpoints={"allow": [*ALLOW, *manage]}, objects={"created_through_key": True})
    client = client_for(proxy_url, key["key"], run_id)
    ours = client.incoming_phone_numbers.local.create(phone_number="+14155550125")  # a purchase names no object
    theirs = client_for(proxy_url, key_for(per_call_usd="5.00")["key"], run_id).incoming_phone_numbers.local.create(
        phone_number="+14155550126")
    assert client.incoming_phone_numbers(ours.sid).update(friendly_name="Support").friendly_name == "Support"
    for act in (lambda n: n.update(friendly_name="Mine now"), lambda n: n.delete()):
        with pytest.raises(TwilioRestException) as other:
            act(client.incoming_phone_numbers(theirs.sid))
        assert other.value.status == 403 and "[tollgate:object_not_created_through_key]" in other.value.msg
    assert theirs.sid in twilio_emulator[1].state.store.numbers  # never forwarded: still the other key's
    assert client.incoming_phone_numbers(ours.sid).delete() is True
    assert [r["reason"] for r in rows(sql, run_id)] == [
        None, None, None, "object_not_created_through_key", "object_not_created_through_key", None]
