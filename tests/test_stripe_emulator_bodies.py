"""The Stripe emulator's /v2 JSON, file upload and meter event routes, driven by stripe-python 16
directly (no Tollgate): what the end-to-end tests rely on it to answer."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import stripe
from stripe.v2.money_management import OutboundPayment

from emulators._stripe_store import fixture
from emulators.stripe_api import create_app
from tests.support.servers import serve_asgi

SECRET = "sk_test_emulator"
PAYMENT = {"amount": {"value": 1200, "currency": "usd"}, "from": {"financial_account": "fa_1", "currency": "usd"},
           "to": {"recipient": "acct_1"}}


@pytest.fixture
def hosts() -> Iterator[dict[str, tuple[str, Any]]]:
    """One emulator per host stripe-python sends to, as in production: api, files, meter_events."""
    apps = {name: create_app(SECRET) for name in ("api", "files", "meter_events")}
    with serve_asgi(apps["api"]) as api, serve_asgi(apps["files"]) as files, \
            serve_asgi(apps["meter_events"]) as meter_events:
        yield {"api": (api, apps["api"]), "files": (files, apps["files"]),
               "meter_events": (meter_events, apps["meter_events"])}


@pytest.fixture
def client(hosts) -> stripe.StripeClient:
    return stripe.StripeClient(SECRET, base_addresses={name: url for name, (url, _) in hosts.items()},
                               max_network_retries=0)


def test_an_outbound_payment_has_every_attribute_of_the_sdks_class(client, hosts) -> None:
    payment = client.v2.money_management.outbound_payments.create(params=PAYMENT)
    assert isinstance(payment, OutboundPayment)
    assert (payment.amount.value, payment.amount.currency, payment.to.credited.value) == (1200, "usd", 1200)
    declared = {OutboundPayment._field_remappings.get(name, name) for name in OutboundPayment.__annotations__} - {
        "OBJECT_NAME"}
    assert set(json.loads(payment.last_response.body)) == declared
    [sent] = hosts["api"][1].state.received
    assert sent.headers["content-type"] == "application/json" and json.loads(sent.body) == PAYMENT


def test_a_v2_body_that_is_not_json_or_names_an_unknown_parameter_is_refused(hosts) -> None:
    url = f"{hosts['api'][0]}/v2/money_management/outbound_payments"
    auth = {"authorization": f"Bearer {SECRET}"}
    form = httpx.post(url, content=b"amount[value]=1",
                      headers={**auth, "content-type": "application/x-www-form-urlencoded"})
    unknown = httpx.post(url, json={**PAYMENT, "amount_usd": 5}, headers=auth)
    assert (form.status_code, unknown.status_code) == (400, 400)
    assert unknown.json()["error"]["code"] == "parameter_unknown"


def test_a_file_upload_answers_the_fixtures_file_with_what_was_sent(client, hosts) -> None:
    data = b"\x89PNG\r\n\x1a\n" + bytes(range(200))
    upload = io.BytesIO(data)
    upload.name = "evidence.png"
    file = client.v1.files.create(params={"file": upload, "purpose": "dispute_evidence"})
    assert (file.filename, file.size, file.purpose, file.type, file.object) == (
        "evidence.png", len(data), "dispute_evidence", "png", "file")
    assert set(json.loads(file.last_response.body)) == set(fixture("file"))
    assert hosts["api"][1].state.received == [] and len(hosts["files"][1].state.received) == 1


def test_the_meter_event_stream_answers_on_its_host(client, hosts) -> None:
    events = [{"event_name": "api_call", "payload": {"stripe_customer_id": "cus_1", "value": "25"}}]
    assert client.v2.billing.meter_event_stream.create(params={"events": events}) is None
    [sent] = hosts["meter_events"][1].state.received
    assert json.loads(sent.body) == {"events": events}
