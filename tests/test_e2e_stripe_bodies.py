"""The bodies and hosts stripe-python 16 sends beyond /v1 forms, end to end: the SDK against
Tollgate against the Stripe emulators (api, files and meter-events hosts, one each).

A file upload goes to the files host and its row keeps no byte of the file; a /v2 outbound payment
is priced from its JSON, refused before Stripe over the per-call limit; bodies that could be read two
ways are refused and never forwarded; the meter event stream is refused unless priced after; Connect
OAuth is refused whatever the policy says."""

from __future__ import annotations

import hashlib
import io
import json
from decimal import Decimal
from typing import Any

import httpx
import pytest
import stripe

from tests.support.tollgate import audit_rows

PAYMENTS = "/v2/money_management/outbound_payments"
POLICY = {
    "vendor": "stripe",
    "per_call_usd": "50.00",
    "endpoints": {"allow": ["POST /files/v1/files", f"POST {PAYMENTS}",
                            "POST /meter_events/v2/billing/meter_event_stream",
                            "POST /connect/oauth/token", "POST /connect/oauth/deauthorize"]},
}


def payment(value: int) -> dict[str, Any]:
    return {"amount": {"value": value, "currency": "usd"}, "from": {"financial_account": "fa_1", "currency": "usd"},
            "to": {"recipient": "acct_1Recipient"}}


def sdk(proxy_url: str, key: str) -> stripe.StripeClient:
    """stripe-python with every one of its hosts sent through Tollgate (the README's setting)."""
    return stripe.StripeClient(key, max_network_retries=0, client_id="ca_Tollgate0000000001", base_addresses={
        "api": f"{proxy_url}/stripe", "files": f"{proxy_url}/stripe/files",
        "meter_events": f"{proxy_url}/stripe/meter_events", "connect": f"{proxy_url}/stripe/connect"})


@pytest.fixture()
def key(make_key) -> str:
    return make_key(POLICY)["key"]


@pytest.fixture()
def client(proxy_url: str, key: str) -> stripe.StripeClient:
    return sdk(proxy_url, key)


@pytest.fixture()
def seen(stripe_emulator, stripe_hosts):
    """How many requests each Stripe host has received so far, and what arrived after."""
    apps = {"api": stripe_emulator[1], **{name: app for name, (_, app) in stripe_hosts.items()}}
    before = {name: len(app.state.received) for name, app in apps.items()}
    return lambda: {name: app.state.received[before[name]:] for name, app in apps.items()}


def run(run_id: str) -> dict[str, Any]:
    return {"headers": {"X-Agent-Run-Id": run_id}}


def test_a_file_upload_goes_to_the_files_host_and_its_row_keeps_no_byte_of_it(client, sql, run_id, seen) -> None:
    contents = b"%PDF-1.7\n" + b"the signed delivery note, confidential " * 40
    upload = io.BytesIO(contents)
    upload.name = "delivery-note.pdf"
    file = client.v1.files.create(params={"file": upload, "purpose": "dispute_evidence"}, options=run(run_id))
    assert (file.filename, file.size, file.purpose) == ("delivery-note.pdf", len(contents), "dispute_evidence")
    arrived = seen()
    [forwarded] = arrived["files"]
    assert arrived["api"] == [] and (forwarded.method, forwarded.path) == ("POST", "/v1/files")
    assert contents in forwarded.body and forwarded.headers["authorization"].startswith("Bearer sk_test_")
    [row] = audit_rows(sql, run_id)
    assert (row["decision"], row["endpoint"], row["path"], row["cost_usd"], row["object_id"]) == (
        "allowed", "POST /files/v1/files", "/files/v1/files", Decimal(0), file.id)
    assert row["request_summary"]["file"] == {"filename": "delivery-note.pdf", "size": len(contents),
                                              "content_type": "application/octet-stream",
                                              "sha256": hashlib.sha256(contents).hexdigest()}
    assert "confidential" not in json.dumps(row, default=str)


def test_a_v2_outbound_payment_under_the_limit_is_forwarded_and_priced(client, sql, run_id, seen) -> None:
    sent = client.v2.money_management.outbound_payments.create(params=payment(1250), options=run(run_id))
    assert (sent.amount.value, sent.status) == (1250, "processing")
    [forwarded] = seen()["api"]
    assert json.loads(forwarded.body) == payment(1250) and forwarded.headers["content-type"] == "application/json"
    [row] = audit_rows(sql, run_id)
    assert (row["decision"], row["endpoint"], row["predicted_usd"], row["cost_usd"]) == (
        "allowed", f"POST {PAYMENTS}", Decimal("12.5"), Decimal("12.5"))
    assert (row["amount_minor"], row["currency"], row["object_id"]) == (1250, "usd", sent.id)
    # Priced from Stripe's answer: amount.value beside amount.currency, where the request named them.
    assert row["cost_source"] == "parsed"


def test_a_v2_outbound_payment_over_the_limit_never_reaches_stripe(client, sql, run_id, seen) -> None:
    with pytest.raises(stripe.PermissionError) as refused:
        client.v2.money_management.outbound_payments.create(params=payment(600000), options=run(run_id))
    assert refused.value.error.code == "per_call_limit" and "6000.00 USD" in str(refused.value)
    assert seen() == {"api": [], "files": [], "meter_events": []}
    [row] = audit_rows(sql, run_id)
    assert (row["decision"], row["reason"], row["predicted_usd"], row["endpoint"]) == (
        "blocked", "per_call_limit", Decimal("6000"), f"POST {PAYMENTS}")


TWICE = '{"amount": {"value": 100, "currency": "usd", "value": 9000000}, "from": {"financial_account": "fa_1"}}'
UPLOAD = b'--x\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nidentity_document\r\n--x\r\n' \
         b'Content-Disposition: form-data; name="file"; filename="a.png"\r\n%s\r\nPNG\r\n--x--\r\n'
AMBIGUOUS = [  # (path, content type, body, reason)
    (PAYMENTS, "application/json", TWICE, "duplicate_parameter"),
    (PAYMENTS, "application/json", '{"amount[value]": 100, "amount": {"currency": "usd"}}', "ambiguous_parameter"),
    (PAYMENTS, "application/json", '{"amount": {"value": 1e999, "currency": "usd"}}', "invalid_json"),
    (PAYMENTS, "application/json", '{"amount": {"value": 100.0, "currency": "usd"}}', "invalid_amount"),
    (PAYMENTS, "application/x-www-form-urlencoded", "amount[value]=100&amount[currency]=usd",
     "unsupported_content_type"),
    ("/files/v1/files", "multipart/form-data; boundary=x; boundary=y", UPLOAD % b"", "malformed_multipart"),
    ("/files/v1/files", "multipart/form-data; boundary=x", UPLOAD % b"Content-Transfer-Encoding: base64\r\n",
     "malformed_multipart"),
    ("/files/v1/files", "multipart/form-data; boundary=x", UPLOAD.replace(b"identity_document", b"a\r\n--x\r\n")
     % b"", "malformed_multipart"),
    ("/files/v1/files", "multipart/form-data; boundary=x",
     UPLOAD.replace(b'name="purpose"', b'name="file"') % b"", "duplicate_parameter"),
]


@pytest.mark.parametrize("path, content_type, body, reason", AMBIGUOUS, ids=[a[3] for a in AMBIGUOUS])
def test_a_body_with_more_than_one_reading_is_refused_and_never_forwarded(
        proxy_url, key, sql, run_id, seen, path: str, content_type: str, body: str | bytes, reason: str) -> None:
    headers = {"authorization": f"Bearer {key}", "content-type": content_type, "x-agent-run-id": run_id}
    answer = httpx.post(f"{proxy_url}/stripe{path}", content=body, headers=headers)
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, reason)
    assert seen() == {"api": [], "files": [], "meter_events": []}
    [row] = audit_rows(sql, run_id)
    assert (row["decision"], row["reason"], row["endpoint"]) == ("blocked", reason, f"POST {path}")


def test_the_meter_event_stream_is_refused_unless_priced_after_and_goes_to_its_host(
        client, make_key, proxy_url, sql, run_id, seen) -> None:
    events = {"events": [{"event_name": "api_call", "payload": {"stripe_customer_id": "cus_1", "value": "3"}}]}
    with pytest.raises(stripe.PermissionError) as refused:
        client.v2.billing.meter_event_stream.create(params=events, options=run(run_id))
    assert refused.value.error.code == "cost_unknown"
    assert seen() == {"api": [], "files": [], "meter_events": []}
    after = make_key({**POLICY, "endpoints": {**POLICY["endpoints"],
                                              "priced_after": ["POST /meter_events/v2/billing/meter_event_stream"]}})
    sdk(proxy_url, after["key"]).v2.billing.meter_event_stream.create(params=events, options=run(run_id))
    arrived = seen()
    assert [r.path for r in arrived["meter_events"]] == ["/v2/billing/meter_event_stream"] and arrived["api"] == []
    blocked, forwarded = audit_rows(sql, run_id)
    assert (blocked["reason"], forwarded["decision"], forwarded["cost_source"], forwarded["cost_usd"]) == (
        "cost_unknown", "allowed", "none", Decimal(0))


def test_connect_oauth_is_refused_whatever_the_policy_says(client, admin, sql, run_id, seen) -> None:
    with pytest.raises(stripe.PermissionError) as token:
        client.oauth.token(params={"grant_type": "authorization_code", "code": "ac_Tollgate0001"}, options=run(run_id))
    with pytest.raises(stripe.PermissionError) as deauthorize:
        client.oauth.deauthorize(params={"stripe_user_id": "acct_1Connected"}, options=run(run_id))
    assert (token.value.error.code, deauthorize.value.error.code) == ("operation_not_served", "operation_not_served")
    assert "access token" in str(token.value)
    assert seen() == {"api": [], "files": [], "meter_events": []}
    rows = audit_rows(sql, run_id)
    assert [(r["decision"], r["reason"], r["endpoint"]) for r in rows] == [
        ("blocked", "operation_not_served", "POST /connect/oauth/token"),
        ("blocked", "operation_not_served", "POST /connect/oauth/deauthorize")]
    review = admin.post("/admin/v1/policies/validate", json=POLICY).json()
    assert "POST /connect/oauth/token matches no operation Tollgate knows: every call to it is refused." in (
        review["warnings"])


def test_an_upload_sent_to_the_api_route_is_refused_with_the_files_route(proxy_url, key, sql, run_id, seen) -> None:
    misconfigured = stripe.StripeClient(key, max_network_retries=0, base_addresses={
        "api": f"{proxy_url}/stripe", "files": f"{proxy_url}/stripe"})  # "files" left on the api route
    with pytest.raises(stripe.InvalidRequestError) as refused:
        misconfigured.v1.files.create(params={"file": io.BytesIO(b"x"), "purpose": "dispute_evidence"},
                                      options=run(run_id))
    assert refused.value.error.code == "unknown_operation" and "/stripe/files/v1/files" in str(refused.value)
    assert seen() == {"api": [], "files": [], "meter_events": []}
