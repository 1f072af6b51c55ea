"""The Twilio emulator, driven by the official twilio-python SDK over real HTTP.

These pin the emulator to what api.twilio.com answers, so that proxy tests built on
it exercise Tollgate against Twilio's wire format; the last tests feed its answers
to the adapter's pure pricing and reconciliation halves.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import httpx
import pytest
from starlette.applications import Starlette
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from emulators._twilio_store import example
from emulators.twilio_api import ReceivedRequest, create_app
from tests.support.servers import serve_asgi
from vendors.base import UpstreamCredential
from vendors.twilio.adapter import TwilioAdapter

ACCOUNT = "AC" + "1f" * 16
OTHER = "AC" + "2e" * 16
TOKEN = "emulator_token_123"
API_KEY, API_SECRET = "SK" + "3d" * 16, "api_key_secret"
SID = re.compile(r"(SM|MM|CA)[0-9a-f]{32}")


@dataclass
class Emulator:
    app: Starlette
    base_url: str

    @property
    def received(self) -> list[ReceivedRequest]:
        return self.app.state.received

    def client(self, username: str = ACCOUNT, password: str = TOKEN, account_sid: str | None = None) -> Client:
        client = Client(username, password, account_sid=account_sid)
        client.api.base_url = self.base_url  # twilio 9: the Api domain (client.api) holds the base URL
        return client


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    app = create_app(ACCOUNT, TOKEN, {API_KEY: API_SECRET})
    with serve_asgi(app) as base_url:
        yield Emulator(app, base_url)


@pytest.fixture
def client(emulator: Emulator) -> Client:
    emulator.app.state.fail_next = None
    return emulator.client()


def test_message_create_answers_queued_with_no_price(emulator: Emulator, client: Client) -> None:
    message = client.messages.create(to="+14155552345", from_="+15005550006", body="Hello! \U0001F44D")
    assert SID.fullmatch(message.sid) and message.sid.startswith("SM")
    assert (message.status, message.price, message.price_unit) == ("queued", None, None)
    assert (message.to, message.from_, message.account_sid, message.num_segments) == (
        "+14155552345", "+15005550006", ACCOUNT, "1")
    assert message.uri == f"/2010-04-01/Accounts/{ACCOUNT}/Messages/{message.sid}.json"
    sent = emulator.received[-1]
    assert (sent.method, sent.path) == ("POST", f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json")
    assert sent.headers["content-type"] == "application/x-www-form-urlencoded"
    assert sent.headers["authorization"].startswith("Basic ")
    assert {"user-agent", "x-twilio-client", "accept-charset"} <= set(sent.headers)


def test_message_body_has_every_field_of_twilios_example(client: Client, emulator: Emulator) -> None:
    message = client.messages.create(to="+14155552345", from_="+15005550006", body="x" * 161)
    stored = emulator.app.state.store.messages[message.sid]
    assert set(stored) == set(example("/Accounts/{AccountSid}/Messages.json", "post", "201", "create"))
    assert stored["num_segments"] == "2" and stored["direction"] == "outbound-api"


def test_media_message_repeats_media_url(client: Client, emulator: Emulator) -> None:
    message = client.messages.create(to="+14155552345", from_="+15005550006",
                                      media_url=["https://x.io/1.png", "https://x.io/2.png"])
    assert message.sid.startswith("MM") and message.num_media == "2"
    assert emulator.received[-1].body.count(b"MediaUrl=") == 2


def test_fetch_returns_the_price_once_twilio_has_set_it(client: Client, emulator: Emulator) -> None:
    message = client.messages.create(to="+14155552345", from_="+15005550006", body="hi")
    assert client.messages(message.sid).fetch().price is None
    emulator.app.state.store.set_price(message.sid, "-0.00790")
    fetched = client.messages(message.sid).fetch()
    assert (fetched.price, fetched.price_unit, fetched.status) == ("-0.00790", "USD", "delivered")


def test_list_filters_by_to(client: Client) -> None:
    client.messages.create(to="+447700900123", from_="+15005550006", body="uk")
    listed = client.messages.list(to="+447700900123", limit=5)
    assert listed and all(m.to == "+447700900123" for m in listed)


@pytest.mark.parametrize(
    "kwargs, code",
    [
        ({"to": "+15005550001", "from_": "+15005550006", "body": "x"}, 21211),
        ({"to": "not-a-number", "from_": "+15005550006", "body": "x"}, 21211),
        ({"to": "+14155552345", "body": "x"}, 21603),
        ({"to": "+14155552345", "from_": "+15005550006"}, 21602),
        ({"to": "+14155552345", "from_": "+15005550006", "body": "x" * 1601}, 21617),
    ],
)
def test_validation_errors_carry_twilios_codes(client: Client, kwargs: dict[str, str], code: int) -> None:
    with pytest.raises(TwilioRestException) as info:
        client.messages.create(**kwargs)
    assert (info.value.status, info.value.code) == (400, code)


def test_missing_to_is_21604(emulator: Emulator) -> None:
    response = httpx.post(f"{emulator.base_url}/2010-04-01/Accounts/{ACCOUNT}/Messages.json", auth=(ACCOUNT, TOKEN),
                          data={"From": "+15005550006", "Body": "x"})
    assert response.status_code == 400 and response.json()["code"] == 21604
    assert response.headers["twilio-request-id"].startswith("RQ")


def test_wrong_token_is_20003(emulator: Emulator) -> None:
    with pytest.raises(TwilioRestException) as info:
        emulator.client(password="wrong").messages.create(to="+14155552345", from_="+15005550006", body="x")
    assert (info.value.status, info.value.code) == (401, 20003)


def test_api_key_auth_and_other_accounts(emulator: Emulator) -> None:
    keyed = emulator.client(API_KEY, API_SECRET, account_sid=ACCOUNT)
    assert keyed.messages.create(to="+14155552345", from_="+15005550006", body="k").account_sid == ACCOUNT
    with pytest.raises(TwilioRestException) as info:
        keyed.api.v2010.accounts(OTHER).messages.create(to="+14155552345", from_="+15005550006", body="k")
    assert (info.value.status, info.value.code) == (404, 20404)


def test_calls_create_fetch_and_price(client: Client, emulator: Emulator) -> None:
    call = client.calls.create(to="+14155552345", from_="+15005550006", url="https://x.io/twiml",
                               status_callback_event=["initiated", "answered"])
    assert call.sid.startswith("CA") and (call.status, call.price) == ("queued", None)
    assert emulator.received[-1].body.count(b"StatusCallbackEvent=") == 2
    emulator.app.state.store.set_price(call.sid, "-0.03000")
    fetched = client.calls(call.sid).fetch()
    assert (fetched.price, fetched.status) == ("-0.03000", "completed")
    with pytest.raises(TwilioRestException) as info:
        client.calls.create(to="+14155552345", from_="+15005550006")
    assert info.value.code == 21205


def test_unknown_message_is_20404(client: Client) -> None:
    with pytest.raises(TwilioRestException) as info:
        client.messages("SM" + "9" * 32).fetch()
    assert (info.value.status, info.value.code) == (404, 20404)


def test_fail_next_answers_once(client: Client, emulator: Emulator) -> None:
    emulator.app.state.fail_next = (503, {"code": 20500, "message": "Internal Server Error", "status": 503})
    with pytest.raises(TwilioRestException) as info:
        client.messages.create(to="+14155552345", from_="+15005550006", body="x")
    assert (info.value.status, info.value.code) == (503, 20500)
    assert client.messages.create(to="+14155552345", from_="+15005550006", body="x").status == "queued"


def test_adapter_prices_and_reconciles_the_emulators_answers(emulator: Emulator) -> None:
    adapter = TwilioAdapter()
    path = f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
    body = b"To=%2B14155552345&From=%2B15005550006&Body=" + b"a" * 200
    parsed = adapter.parse_request("POST", path, b"", {"content-type": "application/x-www-form-urlencoded"}, body)
    # The upstream auth header as the core would build it from the key's real credential.
    headers = {"content-type": "application/x-www-form-urlencoded",
               **adapter.upstream_auth_headers(UpstreamCredential(TOKEN, ACCOUNT))}
    created = httpx.post(emulator.base_url + path, content=body, headers=headers)
    priced = adapter.parse_response(parsed, created.status_code, dict(created.headers), created.content)
    sid = created.json()["sid"]
    assert (priced.cost_usd, priced.object_id) == (None, sid)  # core records the estimate, 'estimated'
    assert priced.vendor_request_id == created.headers["twilio-request-id"]
    assert created.json()["num_segments"] == str(parsed.units) == "2"
    later = httpx.get(emulator.base_url + adapter.reconcile_path(ACCOUNT, sid), headers=headers)
    assert adapter.reconcile(later.status_code, later.content).final is False
    emulator.app.state.store.set_price(sid, "-0.01580")
    later = httpx.get(emulator.base_url + adapter.reconcile_path(ACCOUNT, sid), headers=headers)
    final = adapter.reconcile(later.status_code, later.content)
    assert (final.cost_usd, final.final, final.status) == (Decimal("0.015800"), True, "delivered")
    assert json.loads(later.content)["price"] == "-0.01580"

