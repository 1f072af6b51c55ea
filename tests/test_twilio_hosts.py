"""vendors/twilio/ on Twilio's product hosts (pure): requests as twilio-python 9 puts them on the
wire for lookups.twilio.com, verify.twilio.com and messaging.twilio.com, handed over as Tollgate
routes them (``/lookups/...``, ``/verify/...``, ``/messaging/...``)."""

from __future__ import annotations

import base64
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
from twilio.rest import Client

from proxy import config
from tests.test_twilio_adapter import Wire
from vendors.base import ParsedRequest, RequestRejected
from vendors.twilio.adapter import TwilioAdapter
from vendors.twilio.routes import HOSTS, split_host

ADAPTER = TwilioAdapter()
ACCOUNT = "AC" + "a1" * 16
VAULT_KEY = "tg_AAAAAAAAAAAA_" + "s" * 32 + "cccccc"
SERVICE = "VA" + "0b" * 16


def routed(wire: Wire, account: str = ACCOUNT) -> ParsedRequest:
    """The last request as the core hands it to the adapter: the product host becomes the route prefix."""
    sent = wire.sent[-1]
    url = urlsplit(sent.url)
    product = (url.hostname or "").split(".")[0]
    path = url.path if product == "api" else f"/{product}{url.path}"
    body = sent.body or b""
    headers = {k.lower(): v for k, v in sent.headers.items()}
    if account != ACCOUNT:
        headers["authorization"] = "Basic " + base64.b64encode(f"{account}:{VAULT_KEY}".encode()).decode()
    return ADAPTER.parse_request(sent.method or "GET", path, url.query.encode(), headers,
                                 body.encode() if isinstance(body, str) else body)


def sdk(body: object = None) -> tuple[Client, Wire]:
    wire = Wire(200, body or {"sid": "VE" + "0c" * 16})
    return Client(ACCOUNT, VAULT_KEY, http_client=wire), wire


def test_the_adapter_names_twilios_product_hosts_and_their_overrides() -> None:
    assert dict(ADAPTER.hosts) == {"lookups": "https://lookups.twilio.com", "verify": "https://verify.twilio.com",
                                   "messaging": "https://messaging.twilio.com",
                                   "pricing": "https://pricing.twilio.com"} == dict(HOSTS)
    assert split_host("/lookups/v2/PhoneNumbers/+1") == ("lookups", "/v2/PhoneNumbers/+1")
    assert split_host("/2010-04-01/Accounts.json") == (None, "/2010-04-01/Accounts.json")
    assert split_host("/lookups") == (None, "/lookups")
    settings = config.load(env={"TOLLGATE_UPSTREAM_TWILIO_LOOKUPS": "http://127.0.0.1:9/lk"})
    assert settings.upstream_for("twilio_lookups", HOSTS["lookups"]) == "http://127.0.0.1:9/lk"


def test_a_basic_lookup_is_free_and_one_with_data_packages_is_unpriced() -> None:
    client, wire = sdk({"phone_number": "+14155550100"})
    client.lookups.v2.phone_numbers("+14155550100").fetch()
    basic = routed(wire)
    assert (basic.host, basic.path, basic.endpoint) == ("lookups", "/v2/PhoneNumbers/+14155550100",
                                                       "GET /lookups/v2/PhoneNumbers/{PhoneNumber}")
    assert (basic.recipients, basic.recipient_countries, basic.moves_money) == (("+14155550100",), ("US",), False)
    assert basic.account == ACCOUNT and basic.object_id is None  # the Basic username; no number as an object id
    assert ADAPTER.estimate_usd(basic) == Decimal(0)
    client.lookups.v2.phone_numbers("+447700900123").fetch(fields="line_type_intelligence,caller_name")
    packages = routed(wire)
    assert packages.recipient_countries == ("GB",)
    assert packages.summary["fields"] == "line_type_intelligence,caller_name"
    assert ADAPTER.estimate_usd(packages) is None
    assert ADAPTER.parse_response(packages, 200, {}, b"{}").cost_usd is None
    assert ADAPTER.parse_response(basic, 200, {}, b"{}").cost_usd == Decimal(0)


def test_a_lookup_of_a_number_not_in_e164_is_refused_naming_the_operation() -> None:
    with pytest.raises(RequestRejected) as refused:
        ADAPTER.parse_request("GET", "/lookups/v2/PhoneNumbers/4155550100", b"", {}, b"")
    assert refused.value.reason == "invalid_recipient"
    assert refused.value.endpoint == "GET /lookups/v2/PhoneNumbers/{PhoneNumber}"


@pytest.mark.parametrize("to, channel, recipients, countries", [
    ("+14155550100", "sms", ("+14155550100",), ("US",)),
    ("+33612345678", "call", ("+33612345678",), ("FR",)),
    ("Ana@Acme.example", "email", ("ana@acme.example",), ()),
])
def test_a_verification_reaches_its_to_by_its_channel_from_its_service(to, channel, recipients, countries) -> None:
    client, wire = sdk()
    client.verify.v2.services(SERVICE).verifications.create(to=to, channel=channel)
    parsed = routed(wire)
    assert parsed.endpoint == "POST /verify/v2/Services/{ServiceSid}/Verifications" and parsed.host == "verify"
    assert (parsed.recipients, parsed.recipient_countries, parsed.senders) == (recipients, countries, (SERVICE,))
    assert parsed.moves_money and ADAPTER.estimate_usd(parsed) is None  # no Verify price ships, and none is set
    if channel == "email":
        assert "@" not in str(parsed.summary)  # the summary names the domain, never the address


def test_a_verification_check_is_free_and_names_no_recipient() -> None:
    client, wire = sdk({"status": "approved"})
    client.verify.v2.services(SERVICE).verification_checks.create(to="+14155550100", code="123456")
    parsed = routed(wire)
    assert parsed.endpoint == "POST /verify/v2/Services/{ServiceSid}/VerificationCheck"
    # Twilio bills per verification, which its own set price covers: a check is not billed on its own.
    assert ADAPTER.estimate_usd(parsed) == 0 and not parsed.moves_money


def test_a_verify_service_takes_twilios_dotted_parameter_names() -> None:
    client, wire = sdk({"sid": SERVICE})
    client.verify.v2.services.create(friendly_name="Login", push_include_date=False, totp_issuer="Acme")
    parsed = routed(wire)
    assert parsed.endpoint == "POST /verify/v2/Services" and parsed.params["Totp.Issuer"] == "Acme"
    assert ADAPTER.estimate_usd(parsed) == Decimal(0)


def test_messaging_services_are_free_configuration_named_by_template() -> None:
    client, wire = sdk({"sid": "MG" + "0d" * 16})
    client.messaging.v1.services.create(friendly_name="Receipts")
    created = routed(wire)
    assert (created.endpoint, created.moves_money, ADAPTER.estimate_usd(created)) == (
        "POST /messaging/v1/Services", False, Decimal(0))
    client.messaging.v1.services("MG" + "0d" * 16).phone_numbers.create(phone_number_sid="PN" + "0e" * 16)
    assert routed(wire).endpoint == "POST /messaging/v1/Services/{ServiceSid}/PhoneNumbers"


def test_a_product_host_call_carries_the_basic_usernames_account() -> None:
    client, wire = sdk()
    client.verify.v2.services(SERVICE).fetch()
    other = "AC" + "ff" * 16
    assert routed(wire).account == ACCOUNT
    assert routed(wire, account=other).account == other  # the core refuses it: not the key's account


def test_buying_a_number_moves_money_at_an_unknown_price() -> None:
    client, wire = sdk({"sid": "PN" + "0e" * 16})
    client.incoming_phone_numbers.local.create(phone_number="+14155550199")
    parsed = routed(wire)
    assert parsed.endpoint == "POST /2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers/Local.json"
    assert parsed.moves_money and ADAPTER.estimate_usd(parsed) is None
    assert ADAPTER.parse_response(parsed, 201, {}, b'{"sid": "PN0e"}').cost_usd is None  # never recorded as priced
