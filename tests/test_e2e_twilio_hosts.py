"""twilio-python with the README's setup, through the proxy, against emulators of every Twilio host.

The setup under test is the README's own code block (run here as written, with the proxy's URL):
an HTTP client that sends api.twilio.com and each product host (lookups, verify, messaging)
through Tollgate. Lookups and Verify calls are governed like messages: allowed by endpoint
templates with the host prefix, scoped by recipient rules, priced (a basic lookup at 0) or
refused as cost_unknown when Tollgate has no price, recorded with templates that carry no
phone number, in the audit table and in the metrics; and the vault key reaches no upstream.
"""

from __future__ import annotations

import base64
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from tests.support.runid import TwilioRunClient
from tests.support.tollgate import ADMIN_TOKEN, TWILIO_ACCOUNT, TWILIO_TOKEN

README = Path(__file__).resolve().parents[1] / "README.md"
SERVICE = "VA" + "0a" * 16
NUMBER = "+14155550100"
LOOKUP = "GET /lookups/v2/PhoneNumbers/{PhoneNumber}"
VERIFY = "POST /verify/v2/Services/{ServiceSid}/Verifications"
CHECK = "POST /verify/v2/Services/{ServiceSid}/VerificationCheck"


def readme_setup(proxy_url: str) -> type:
    """The README's ThroughTollgate class, defined by running the README's block up to its first call."""
    text = README.read_text(encoding="utf-8")
    block = text.split("<!-- twilio setup: tests/test_e2e_twilio_hosts.py runs this block -->\n```python\n", 1)[1]
    definitions = block.split("```", 1)[0].split("\nclient = ", 1)[0]
    namespace: dict[str, Any] = {}
    exec(definitions.replace('"http://127.0.0.1:8080/twilio"', repr(f"{proxy_url}/twilio")), namespace)
    through_tollgate: type = namespace["ThroughTollgate"]
    return through_tollgate


class Recording(TwilioRunClient):
    """Tags the run and remembers every URL the SDK's requests finally went to."""

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        self.sent_to = [*getattr(self, "sent_to", []), url]
        return super().request(method, url, *args, **kwargs)


def client_for(proxy_url: str, key: str, run_id: str) -> Client:
    through_tollgate = readme_setup(proxy_url)
    http_client = type("RunThroughTollgate", (through_tollgate, Recording), {})(run_id)
    return Client(TWILIO_ACCOUNT, key, http_client=http_client)


def policy(allow: list[str], **fields: Any) -> dict[str, Any]:
    endpoints = {"allow": allow, **fields.pop("endpoints", {})}
    return {"vendor": "twilio", "endpoints": endpoints, **fields}


@pytest.fixture()
def key_for(make_key):
    def make(allow: list[str], **fields: Any) -> dict[str, Any]:
        return make_key(policy(allow, **fields), vendor="twilio", secret=TWILIO_TOKEN, upstream_account=TWILIO_ACCOUNT)
    return make


def rows(sql, run_id: str) -> list[dict]:
    return sql.execute("SELECT * FROM audit_events WHERE agent_run_id = %s ORDER BY id", (run_id,)).fetchall()


def test_a_basic_lookup_goes_to_the_lookups_host_priced_at_zero(proxy_url, key_for, sql, run_id, twilio_products):
    key = key_for(["GET /lookups/v2/PhoneNumbers/*"], recipients={"countries": ["US"]})
    client = client_for(proxy_url, key["key"], run_id)
    found = client.lookups.v2.phone_numbers(NUMBER).fetch()
    assert (found.phone_number, found.valid, found.country_code) == (NUMBER, True, "US")

    [row] = rows(sql, run_id)
    assert (row["decision"], row["endpoint"], row["vendor_account"]) == ("allowed", LOOKUP, TWILIO_ACCOUNT)
    assert (row["predicted_usd"], row["cost_usd"]) == (Decimal(0), Decimal(0)) and NUMBER not in row["endpoint"]
    forwarded = twilio_products["lookups"][1].state.received[-1]
    assert (forwarded.method, forwarded.path) == ("GET", f"/v2/PhoneNumbers/{NUMBER}")
    assert forwarded.headers["authorization"] == basic(TWILIO_ACCOUNT, TWILIO_TOKEN)

    with pytest.raises(TwilioRestException) as abroad:  # recipient rules scope the looked-up number too
        client.lookups.v2.phone_numbers("+33612345678").fetch()
    assert abroad.value.status == 403 and "[tollgate:recipient_not_allowed]" in abroad.value.msg


def test_a_lookup_with_data_packages_is_refused_unless_priced_after(proxy_url, key_for, sql, run_id):
    refused_key = key_for(["GET /lookups/v2/PhoneNumbers/*"])
    with pytest.raises(TwilioRestException) as unpriced:
        client_for(proxy_url, refused_key["key"], run_id).lookups.v2.phone_numbers(NUMBER).fetch(
            fields="line_type_intelligence")
    assert unpriced.value.status == 403 and "[tollgate:cost_unknown]" in unpriced.value.msg

    opted_in = key_for(["GET /lookups/v2/PhoneNumbers/*"], endpoints={"priced_after": [LOOKUP]})
    found = client_for(proxy_url, opted_in["key"], run_id).lookups.v2.phone_numbers(NUMBER).fetch(
        fields="line_type_intelligence")
    assert found.line_type_intelligence["type"] == "nonFixedVoip"
    assert [(r["decision"], r["reason"], r["endpoint"]) for r in rows(sql, run_id)] == [
        ("blocked", "cost_unknown", LOOKUP), ("allowed", None, LOOKUP)]


def test_a_verification_is_sent_through_the_verify_host_when_its_policy_opts_in(proxy_url, key_for, sql, run_id,
                                                                               twilio_products):
    allow = ["POST /verify/v2/Services/*/Verifications", "POST /verify/v2/Services/*/VerificationCheck"]
    unpriced = key_for(allow)
    with pytest.raises(TwilioRestException) as refused:
        client_for(proxy_url, unpriced["key"], run_id).verify.v2.services(SERVICE).verifications.create(
            to=NUMBER, channel="sms")
    assert "[tollgate:cost_unknown]" in refused.value.msg  # no Verify price ships with Tollgate
    received_before = len(twilio_products["verify"][1].state.received)

    key = key_for(allow, endpoints={"priced_after": [VERIFY, CHECK]}, recipients={"countries": ["US"]},
                  senders=[SERVICE])
    service = client_for(proxy_url, key["key"], run_id).verify.v2.services(SERVICE)
    sent = service.verifications.create(to=NUMBER, channel="sms")
    assert sent.sid.startswith("VE") and (sent.to, sent.status) == (NUMBER, "pending")
    assert service.verification_checks.create(to=NUMBER, code="123456").status == "approved"
    with pytest.raises(TwilioRestException) as abroad:
        service.verifications.create(to="+33612345678", channel="sms")
    assert "[tollgate:recipient_not_allowed]" in abroad.value.msg

    assert len(twilio_products["verify"][1].state.received) == received_before + 2  # refusals are not forwarded
    assert [(r["reason"], r["endpoint"]) for r in rows(sql, run_id)] == [
        ("cost_unknown", VERIFY), (None, VERIFY), (None, CHECK), ("recipient_not_allowed", VERIFY)]
    sent_row = rows(sql, run_id)[1]
    assert sent_row["request_summary"]["price"]["predicted"] == "unknown"
    assert sent_row["vendor_account"] == TWILIO_ACCOUNT  # the Basic username: product hosts' paths name no account


def test_messaging_services_are_configured_through_the_messaging_host(proxy_url, key_for, sql, run_id):
    key = key_for(["POST /messaging/v1/Services", "GET /messaging/v1/Services/*"])
    client = client_for(proxy_url, key["key"], run_id)
    service = client.messaging.v1.services.create(friendly_name="Receipts")
    assert service.sid.startswith("MG")
    assert client.messaging.v1.services(service.sid).fetch().friendly_name == "Receipts"
    assert [(r["endpoint"], r["cost_usd"], r["object_id"]) for r in rows(sql, run_id)] == [
        ("POST /messaging/v1/Services", Decimal(0), service.sid),
        ("GET /messaging/v1/Services/{Sid}", Decimal(0), service.sid)]


# Buying a number: priced from the Pricing host before the gate, tests/test_e2e_twilio_numbers.py.


def test_refusals_before_the_policy_check_name_their_endpoint(proxy_url, key_for, sql, run_id):
    key = key_for(["POST /2010-04-01/Accounts/*/Messages.json", "POST /2010-04-01/Accounts/*/Faxes.json"])
    client = client_for(proxy_url, key["key"], run_id)
    with pytest.raises(TwilioRestException) as recipient:
        client.messages.create(to="sip:ana@acme.example", from_="+15005550006", body="hi")
    assert "[tollgate:invalid_recipient]" in recipient.value.msg
    with pytest.raises(TwilioRestException) as sender:
        client.messages.create(to=NUMBER, from_="not a number!", body="hi")
    assert "[tollgate:invalid_sender]" in sender.value.msg
    unknown = client.request("POST", f"https://api.twilio.com/2010-04-01/Accounts/{TWILIO_ACCOUNT}/Faxes.json",
                             data={"To": NUMBER})
    assert unknown.status_code == 404 and "unknown_operation" in unknown.text
    assert [(r["reason"], r["endpoint"]) for r in rows(sql, run_id)] == [
        ("invalid_recipient", "POST /2010-04-01/Accounts/{AccountSid}/Messages.json"),
        ("invalid_sender", "POST /2010-04-01/Accounts/{AccountSid}/Messages.json"),
        ("unknown_operation", "POST /2010-04-01/Accounts/{id}/{id}")]


def test_metrics_label_templates_never_numbers(proxy_url, key_for, run_id):
    key = key_for(["GET /lookups/v2/PhoneNumbers/*"])
    client_for(proxy_url, key["key"], run_id).lookups.v2.phone_numbers("+14155550142").fetch()
    metrics = httpx.get(f"{proxy_url}/metrics", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}).text
    assert f'endpoint="{LOOKUP}"' in metrics
    assert not re.search(r"\+\d{7,}", metrics) and "%2B" not in metrics


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_the_vault_key_reaches_no_upstream(proxy_url, key_for, run_id, stripe_emulator, twilio_emulator,
                                          twilio_products, resend_emulator):
    key = key_for(["GET /lookups/v2/PhoneNumbers/*", "POST /messaging/v1/Services",
                   "POST /2010-04-01/Accounts/*/Messages.json"])
    client = client_for(proxy_url, key["key"], run_id)
    client.lookups.v2.phone_numbers(NUMBER).fetch()
    client.messaging.v1.services.create(friendly_name="Alerts")
    client.messages.create(to=NUMBER, from_="+15005550006", body="hi")
    assert all(url.startswith(f"{proxy_url}/twilio/") for url in client.http_client.sent_to)  # type: ignore[attr-defined]
    secret = key["key"]
    emulators = [stripe_emulator[1], twilio_emulator[1], resend_emulator[1],
                 *(app for _, app in twilio_products.values())]
    seen = [request for app in emulators for request in app.state.received]
    assert len(seen) >= 3
    for request in seen:
        text = " ".join([request.path, request.query, *request.headers.values(), *_decoded_auth(request.headers),
                         request.body.decode("utf-8", "replace")])
        assert secret not in text and secret.split("_")[-1] not in text, request.path


def _decoded_auth(headers: dict[str, str]) -> list[str]:
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return []
    return [base64.b64decode(value + "==").decode("utf-8", "replace")]
