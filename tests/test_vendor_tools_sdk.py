"""A tool call's request is the one the vendor's own SDK sends: stripe-python, twilio-python and
resend-python make the same call against a loopback server standing where Tollgate would, and what
arrives there is compared with ``tool_request``'s request (Stripe's form byte for byte, since the
adapter reads it by the same bracket rules; Twilio's and Resend's by the values they carry, since
their SDKs order parameters their own way)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
import resend
import stripe
from resend.http_client_requests import RequestsClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from twilio.rest import Client

from tests.support.servers import serve_asgi
from tests.test_vendor_tools import ACCOUNT, ADAPTERS, SERVICE, VAULT_KEY, tool
from vendors import multipart
from vendors.tools import ToolRequest

Seen = dict[str, Any]


class Recorder:
    """What arrives, as Tollgate's route would see it: method, path under /<vendor>, query, headers, body."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []

    async def handle(self, request: Request) -> JSONResponse:
        vendor, _, path = request.url.path[1:].partition("/")
        self.seen.append({"vendor": vendor, "method": request.method, "path": "/" + path,
                          "query": request.scope["query_string"], "headers": dict(request.headers),
                          "body": await request.body()})
        return JSONResponse({"id": "obj_1", "object": "refund"}, status_code=201 if vendor == "twilio" else 200)

    def last(self) -> Seen:
        return self.seen[-1]


@pytest.fixture(scope="module")
def recorder() -> Iterator[tuple[Recorder, str]]:
    record = Recorder()
    app = Starlette(routes=[Route("/{path:path}", record.handle, methods=["GET", "POST", "DELETE"])])
    with serve_asgi(app) as url:
        yield record, url


def built(vendor: str, name: str, arguments: dict[str, Any], account: str | None = None) -> ToolRequest:
    request: ToolRequest = ADAPTERS[vendor].tool_request(tool(vendor, name), arguments,  # type: ignore[attr-defined]
                                                         VAULT_KEY, account)
    return request


def same_wire(seen: Seen, request: ToolRequest) -> None:
    assert (seen["method"], seen["path"]) == (request.method, request.path)
    assert seen["headers"]["authorization"] == request.headers["authorization"]
    if request.body:
        assert seen["headers"]["content-type"].split(";")[0] == request.headers["content-type"].split(";")[0]


def stripe_client(url: str) -> stripe.StripeClient:
    return stripe.StripeClient(VAULT_KEY, base_addresses={"api": f"{url}/stripe", "files": f"{url}/stripe/files",
                                                          "meter_events": f"{url}/stripe/meter_events"},
                               max_network_retries=0)


REFUND = {"charge": "ch_3Mx", "amount": 500, "metadata": {"order": "42", "note": "late & cold"},
          "expand": ["charge", "payment_intent"]}
CHECKOUT = {"mode": "payment", "success_url": "https://shop.example/ok?order=1",
            "line_items": [{"price": "price_1", "quantity": 2},
                           {"price_data": {"currency": "eur", "unit_amount": 1200, "product_data": {"name": "Tea"}},
                            "quantity": 1}],
            "allow_promotion_codes": True, "metadata": {"": "empty key", "a b": "c[d]"}}


@pytest.mark.parametrize("params", [REFUND, CHECKOUT], ids=["refund", "checkout"])
def test_the_stripe_form_is_stripe_pythons_own_encoding(params: dict[str, Any]) -> None:
    from stripe._encode import _api_encode  # the encoder stripe/_api_requestor.py forms bodies with

    theirs = urlencode(list(_api_encode(params))).replace("%5B", "[").replace("%5D", "]").encode()
    name = "refunds_create" if "charge" in params else "checkout_sessions_create"
    assert built("stripe", name, params).body == theirs


def test_a_stripe_refund_is_what_stripe_python_sends(recorder: tuple[Recorder, str]) -> None:
    record, url = recorder
    stripe_client(url).v1.refunds.create(params=REFUND)  # type: ignore[arg-type]
    seen, request = record.last(), built("stripe", "refunds_create", REFUND)
    same_wire(seen, request)
    assert (seen["query"], seen["body"]) == (request.query, request.body)


def test_a_stripe_checkout_session_is_what_stripe_python_sends(recorder: tuple[Recorder, str]) -> None:
    record, url = recorder
    stripe_client(url).v1.checkout.sessions.create(params=CHECKOUT)  # type: ignore[arg-type]
    seen, request = record.last(), built("stripe", "checkout_sessions_create", CHECKOUT)
    same_wire(seen, request)
    assert seen["body"] == request.body


def test_a_stripe_list_and_a_capture_are_what_stripe_python_sends(recorder: tuple[Recorder, str]) -> None:
    record, url = recorder
    client = stripe_client(url)
    client.v1.charges.list(params={"limit": 3, "customer": "cus_1", "expand": ["data.customer"]})
    listed = built("stripe", "charges_list", {"limit": 3, "customer": "cus_1", "expand": ["data.customer"]})
    same_wire(record.last(), listed)
    assert (record.last()["query"], record.last()["body"]) == (listed.query, b"")
    client.v1.charges.capture("ch_9", params={"amount": 300})
    captured = built("stripe", "charges_capture", {"charge": "ch_9", "amount": 300})
    same_wire(record.last(), captured)
    assert record.last()["body"] == captured.body


def test_a_stripe_v2_meter_event_is_what_stripe_python_sends(recorder: tuple[Recorder, str]) -> None:
    record, url = recorder
    params = {"event_name": "api_calls", "payload": {"stripe_customer_id": "cus_1", "value": "1"}}
    stripe_client(url).v2.billing.meter_events.create(params=params)  # type: ignore[arg-type]
    seen, request = record.last(), built("stripe", "v2_billing_meter_events_create", params)
    same_wire(seen, request)
    assert seen["body"] == request.body


def twilio_client(url: str) -> Client:
    client = Client(ACCOUNT, VAULT_KEY)
    client.api.base_url = f"{url}/twilio"
    client.verify.base_url = f"{url}/twilio/verify"
    return client


def form_of(body: bytes) -> list[tuple[str, str]]:
    return sorted(parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=True))


def test_a_twilio_message_with_two_media_urls_is_what_twilio_python_sends(recorder: tuple[Recorder, str]) -> None:
    record, url = recorder
    media = ["https://cdn.example/a.png", "https://cdn.example/b.png"]
    twilio_client(url).messages.create(to="+14155550100", from_="+14155550199", body="Shipped & on its way",
                                       media_url=media, send_as_mms=True)
    request = built("twilio", "create_message", {"To": "+14155550100", "From": "+14155550199",
                                                 "Body": "Shipped & on its way", "MediaUrl": media,
                                                 "SendAsMms": True}, ACCOUNT)
    same_wire(record.last(), request)
    assert form_of(record.last()["body"]) == form_of(request.body)
    assert [v for k, v in parse_qsl(request.body.decode()) if k == "MediaUrl"] == media  # repeated, in order


def test_a_twilio_verification_is_what_twilio_python_sends(recorder: tuple[Recorder, str]) -> None:
    record, url = recorder
    twilio_client(url).verify.v2.services(SERVICE).verifications.create(to="+14155550100", channel="sms")
    request = built("twilio", "verify_create_verification", {"ServiceSid": SERVICE, "To": "+14155550100",
                                                             "Channel": "sms"}, ACCOUNT)
    same_wire(record.last(), request)
    assert form_of(record.last()["body"]) == form_of(request.body)


def test_a_resend_email_is_what_resend_python_sends(recorder: tuple[Recorder, str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    record, url = recorder
    monkeypatch.setattr(resend, "api_key", VAULT_KEY)
    monkeypatch.setattr(resend, "api_url", f"{url}/resend")
    monkeypatch.setattr(resend, "default_http_client", RequestsClient())
    email = {"from": "Shop <shop@acme.example>", "to": ["ana@acme.example", "bo@acme.example"],
             "subject": "Shipped", "html": "<p>On its way.</p>", "tags": [{"name": "kind", "value": "order"}]}
    resend.Emails.send(email)  # type: ignore[arg-type]
    request = built("resend", "emails_send", email)
    same_wire(record.last(), request)
    assert json.loads(record.last()["body"]) == json.loads(request.body) == email


def test_a_stripe_file_upload_is_what_stripe_python_sends(recorder: tuple[Recorder, str]) -> None:
    """The boundary is random in both; the parts, their names, the file's name, type and bytes are not."""
    record, url = recorder
    csv = "order,amount\n1,500\n"
    params = {"purpose": "dispute_evidence", "file_link_data": {"create": True}}
    stripe_client(url).v1.files.create(params={**params, "file": io.BytesIO(csv.encode())})  # type: ignore
    seen, request = record.last(), built("stripe", "files_create", {**params, "file": csv})
    same_wire(seen, request)
    theirs = multipart.decode(seen["body"], seen["headers"]["content-type"])
    ours = multipart.decode(request.body, request.headers["content-type"])
    assert sorted(theirs.fields) == sorted(ours.fields) == [("file_link_data[create]", "true"),
                                                             ("purpose", "dispute_evidence")]
    assert theirs.files == ours.files and ours.files[0].filename == "blob"

