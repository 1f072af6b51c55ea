"""No phone number or email address that a path carries is written to the audit table or to /metrics.

Lookups name a number in their path (``/v2/PhoneNumbers/+14155550100``), and resend-python quotes
a contact's or a suppression's address into its path (``/contacts/ana%40acme.example``). Each such
operation runs here through the real proxy with twilio-python 9 and resend-python 2, against the
emulators; then every row of the run, every column as text, and the metrics page are searched for
the number and the address in each spelling the SDKs send. The stored path keeps what users query
by: the operation's words, object ids, the number's area and exchange (``+1415555XXXX``, as
Twilio's own Message Redaction keeps them) and the address's domain.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
import resend
from twilio.base.exceptions import TwilioRestException
from twilio.rest.lookups.v2.lookup_override import LookupOverrideList

from proxy.redact import mask_personal_path
from tests.support.runid import ResendRunClient
from tests.support.tollgate import ADMIN_TOKEN, RESEND_SECRET, TWILIO_ACCOUNT, TWILIO_TOKEN
from tests.test_e2e_twilio_hosts import client_for

NUMBER = "+14155550177"
ADDRESS = "zoe.personal@acme.example"
SPELLINGS = (NUMBER, NUMBER[1:], "%2B" + NUMBER[1:], ADDRESS, ADDRESS.replace("@", "%40"), "zoe.personal")
SEGMENT = "78b8d3bc-a55a-45a3-aee6-6ec0a5e13d7e"


def run_text(sql: Any, run_id: str) -> str:
    """Every column of every row of the run, as Postgres prints the row."""
    return "\n".join(r["t"] for r in sql.execute(
        "SELECT t::text AS t FROM audit_events t WHERE agent_run_id = %s ORDER BY id", (run_id,)).fetchall())


def metrics_text(proxy_url: str) -> str:
    return httpx.get(f"{proxy_url}/metrics", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}).text


def assert_not_written(text: str) -> None:
    for spelling in SPELLINGS:
        assert spelling not in text, spelling


@pytest.fixture()
def twilio_key(make_key) -> Any:
    def make(allow: list[str]) -> dict[str, Any]:
        return make_key({"vendor": "twilio", "endpoints": {"allow": allow}}, vendor="twilio", secret=TWILIO_TOKEN,
                        upstream_account=TWILIO_ACCOUNT)
    return make


@pytest.fixture()
def resend_key(proxy_url, make_key, run_id, monkeypatch) -> Iterator[None]:
    allow = ["GET /contacts/*", "PATCH /contacts/*", "DELETE /contacts/*", "GET /contacts/*/segments",
             "POST /contacts/*/segments/*", "DELETE /contacts/*/segments/*", "GET /contacts/*/topics",
             "PATCH /contacts/*/topics", "GET /suppressions/*", "DELETE /suppressions/*"]
    key = make_key({"vendor": "resend", "endpoints": {"allow": allow}}, vendor="resend", secret=RESEND_SECRET)
    monkeypatch.setattr(resend, "api_key", key["key"])
    monkeypatch.setattr(resend, "api_url", f"{proxy_url}/resend")
    monkeypatch.setattr(resend, "default_http_client", ResendRunClient(run_id))
    yield


def test_every_lookups_operation_on_a_number_stores_it_masked(proxy_url, twilio_key, sql, run_id, twilio_products):
    key = twilio_key(["GET /lookups/v2/PhoneNumbers/*", "GET /lookups/v2/PhoneNumbers/*/Overrides/*",
                      "POST /lookups/v2/PhoneNumbers/*/Overrides/*", "PUT /lookups/v2/PhoneNumbers/*/Overrides/*",
                      "DELETE /lookups/v2/PhoneNumbers/*/Overrides/*"])
    lookups = client_for(proxy_url, key["key"], run_id).lookups.v2
    assert lookups.phone_numbers(NUMBER).fetch().phone_number == NUMBER
    override = lookups.lookup_overrides("line_type_intelligence", NUMBER)
    change = LookupOverrideList.OverridesRequest({"line_type": "mobile", "reason": "The customer says so."})
    assert override.fetch().overridden_line_type == "nonFixedVoip"
    assert override.create(overrides_request=change).original_line_type == "fixedVoip"
    assert override.update(overrides_request=change).overridden_line_type == "mobile"
    assert override.delete() is True

    rows = sql.execute("SELECT decision, path FROM audit_events WHERE agent_run_id = %s ORDER BY id",
                       (run_id,)).fetchall()
    assert [r["decision"] for r in rows] == ["allowed"] * 5
    assert {r["path"] for r in rows} == {"/lookups/v2/PhoneNumbers/+1415555XXXX",
                                         "/lookups/v2/PhoneNumbers/+1415555XXXX/Overrides/line_type_intelligence"}
    received = [r.path for r in twilio_products["lookups"][1].state.received[-5:]]
    assert all(NUMBER in path for path in received)  # the vendor got the number; only the record is masked
    assert_not_written(run_text(sql, run_id))
    assert_not_written(metrics_text(proxy_url))


def test_a_pricing_v2_read_of_a_numbers_price_is_a_free_read_stored_masked(proxy_url, twilio_key, sql, run_id):
    """Pricing v2 (voice prices to one number) is in the Pricing host's catalogue: it was refused as unknown."""
    key = twilio_key(["GET /pricing/v2/Voice/Numbers/*"])
    price = client_for(proxy_url, key["key"], run_id).pricing.v2.voice.numbers(NUMBER).fetch()
    assert price.destination_number == NUMBER and price.outbound_call_prices[0]["current_price"] == "0.013"
    [row] = sql.execute("SELECT * FROM audit_events WHERE agent_run_id = %s", (run_id,)).fetchall()
    assert (row["decision"], row["endpoint"], row["cost_usd"]) == (
        "allowed", "GET /pricing/v2/Voice/Numbers/{DestinationNumber}", 0)
    assert row["path"] == "/pricing/v2/Voice/Numbers/+1415555XXXX"
    assert_not_written(run_text(sql, run_id))


def test_a_refused_lookup_stores_its_number_masked_too(proxy_url, twilio_key, sql, run_id):
    key = twilio_key(["GET /lookups/v2/PhoneNumbers/*"])
    lookups = client_for(proxy_url, key["key"], run_id).lookups.v2
    with pytest.raises(TwilioRestException) as not_allowed:
        lookups.lookup_overrides("line_type_intelligence", NUMBER).fetch()
    assert "[tollgate:endpoint_not_allowed]" in not_allowed.value.msg
    with pytest.raises(TwilioRestException) as national:  # refused by the adapter: a number not in E.164
        lookups.phone_numbers(NUMBER[2:]).fetch()
    assert "[tollgate:invalid_recipient]" in national.value.msg
    assert [r["path"] for r in sql.execute("SELECT path FROM audit_events WHERE agent_run_id = %s ORDER BY id",
                                           (run_id,)).fetchall()] == [
        "/lookups/v2/PhoneNumbers/+1415555XXXX/Overrides/line_type_intelligence", "/lookups/v2/PhoneNumbers/415555XXXX"]
    assert_not_written(run_text(sql, run_id))


def test_every_resend_operation_on_an_address_stores_it_masked(proxy_url, resend_key, sql, run_id, resend_emulator):
    resend_emulator[1].state.contacts.append({**resend_emulator[1].state.contacts[0], "id": SEGMENT[::-1],
                                              "email": ADDRESS})
    assert resend.Contacts.get(email=ADDRESS)["email"] == ADDRESS
    resend.Contacts.update({"email": ADDRESS, "first_name": "Zoe"})
    resend.Contacts.Segments.list({"email": ADDRESS})
    resend.Contacts.Segments.add({"email": ADDRESS, "segment_id": SEGMENT})
    resend.Contacts.Segments.remove({"email": ADDRESS, "segment_id": SEGMENT})
    resend.Contacts.Topics.list(email=ADDRESS)
    resend.Contacts.Topics.update({"email": ADDRESS, "topics": [{"id": SEGMENT, "subscription": "opt_out"}]})
    resend.Suppressions.get(ADDRESS)
    resend.Suppressions.remove(ADDRESS)
    resend.Contacts.remove(email=ADDRESS)

    rows = sql.execute("SELECT decision, path FROM audit_events WHERE agent_run_id = %s ORDER BY id",
                       (run_id,)).fetchall()
    assert [r["decision"] for r in rows] == ["allowed"] * 10
    assert {r["path"] for r in rows} == {
        "/contacts/***@acme.example", "/contacts/***@acme.example/segments",
        f"/contacts/***@acme.example/segments/{SEGMENT}", "/contacts/***@acme.example/topics",
        "/suppressions/***@acme.example"}
    assert all(ADDRESS in unquote(r.path) for r in resend_emulator[1].state.received[-10:])
    assert_not_written(run_text(sql, run_id))
    assert_not_written(metrics_text(proxy_url))


@pytest.mark.parametrize("path, stored", [
    ("/v2/PhoneNumbers/%2B447700900123", "/v2/PhoneNumbers/+44770090XXXX"),
    ("/v2/PhoneNumbers/(415)%20555-0177", "/v2/PhoneNumbers/415555XXXX"),
    ("/contacts/ana@acme.example/topics", "/contacts/***@acme.example/topics"),
    # What users query by stays: API versions, Sids, Stripe ids, Resend UUIDs, country codes.
    ("/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Calls/CA0123456789abcdef0123456789abcdef.json", None),
    ("/v1/charges/ch_3MmlLrLkdIwHu7ix/refunds", None),
    (f"/emails/{SEGMENT}", None),
    ("/emails/12345678-1234-1234-1234-123456789012", None),
    ("/v1/PhoneNumbers/Countries/US", None),
])
def test_the_stored_path_masks_numbers_and_addresses_only(path: str, stored: str | None) -> None:
    assert mask_personal_path(path) == (stored or path)
