"""The Resend adapter beyond sending: every operation of Resend's spec known by its catalogue entry,
inbound mail its own operation, contacts fetched by a percent-encoded address, API keys classified
as issuing credentials, sends whose size is unknown refused as cost_unknown, and every refusal
naming its endpoint (the blocked audit row then does too)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import pytest

from proxy import paths
from vendors.base import RequestRejected
from vendors.resend import ResendAdapter
from vendors.resend.adapter import catalogue

ADAPTER = ResendAdapter()
JSON = {"content-type": "application/json"}
EMAIL_ID = "4ef9a417-02e9-4d39-ad75-9611e0fcc33c"


def parse(method: str, path: str, body: Any = None, query: bytes = b""):
    raw = b"" if body is None else json.dumps(body).encode()
    return ADAPTER.parse_request(method, path, query, JSON if raw else {}, raw)


def refused(method: str, path: str, body: Any = None) -> RequestRejected:
    with pytest.raises(RequestRejected) as info:
        parse(method, path, body)
    return info.value


def kind(endpoint_key: str) -> str:
    return catalogue().operations[endpoint_key].kind


def test_inbound_mail_is_its_own_operation_not_an_email_id() -> None:
    listed = parse("GET", "/emails/receiving")
    assert (listed.endpoint, listed.object_id) == ("GET /emails/receiving", None)
    one = parse("GET", f"/emails/receiving/{EMAIL_ID}")
    assert (one.endpoint, one.object_id) == ("GET /emails/receiving/{id}", EMAIL_ID)
    sent = parse("GET", f"/emails/{EMAIL_ID}")
    assert (sent.endpoint, sent.object_id) == ("GET /emails/{id}", EMAIL_ID)
    for lookalike in ("/emails/Receiving", "/emails/RECEIVING"):
        assert (refused("GET", lookalike).reason, refused("GET", lookalike).status) == ("invalid_path", 404)


def test_a_contact_fetched_by_its_address_is_one_segment_and_named_without_it() -> None:
    # What resend-python 2 puts on the wire for resend.Contacts.get(email="ana@acme.example").
    path = "/contacts/" + quote("ana+vip@acme.example", safe="")  # resend/contacts/_contacts.py
    assert path == "/contacts/ana%2Bvip%40acme.example"
    assert paths.normalise(path.encode()) == path  # the core keeps it as sent, as one segment
    parsed = parse("GET", path)
    assert (parsed.endpoint, parsed.object_id, parsed.path) == ("GET /contacts/{id}", None, path)
    assert "acme" not in parsed.endpoint
    deleted = parse("DELETE", "/contacts/ana%40acme.example")
    assert deleted.endpoint == "DELETE /contacts/{id}" and kind("DELETE /contacts/{id}") == "configures"


def test_creating_an_api_key_is_classified_as_issuing_credentials() -> None:
    parsed = parse("POST", "/api-keys", {"name": "agent", "permission": "full_access"})
    assert parsed.endpoint == "POST /api-keys" and kind("POST /api-keys") == "issues_credentials"
    assert "raw key" in catalogue().operations["POST /api-keys"].note
    assert kind("GET /api-keys") == "reads" and kind("DELETE /api-keys/{api_key_id}") == "configures"


@pytest.mark.parametrize("method, path", [
    ("POST", "/emails/batch/validate"), ("GET", "/inboxes"), ("PUT", "/emails"), ("POST", "/audiences/x/contacts"),
])
def test_an_operation_outside_resends_spec_is_refused(method: str, path: str) -> None:
    exc = refused(method, path)
    assert (exc.reason, exc.status) == ("unknown_operation", 404) and exc.endpoint is not None
    assert exc.endpoint.startswith(method + " /")


def test_sends_whose_size_the_request_does_not_say_are_unpriced() -> None:
    draft = parse("POST", "/broadcasts", {"from": "news@acme.example", "subject": "s", "segment_id": EMAIL_ID})
    assert ADAPTER.estimate_usd(draft) == Decimal(0) and draft.senders == ("news@acme.example",)
    sent_now = parse("POST", "/broadcasts", {"from": "news@acme.example", "segment_id": EMAIL_ID, "send": True})
    assert ADAPTER.estimate_usd(sent_now) is None and sent_now.moves_money
    assert ADAPTER.estimate_usd(parse("POST", f"/broadcasts/{EMAIL_ID}/send", {})) is None
    event = parse("POST", "/events/send", {"event": "signed_up", "email": "Ana@Acme.example"})
    assert ADAPTER.estimate_usd(event) is None and event.recipients == ("ana@acme.example",)
    assert ADAPTER.estimate_usd(parse("GET", "/domains")) == Decimal(0)
    answer = ADAPTER.parse_response(sent_now, 200, {}, json.dumps({"id": EMAIL_ID}).encode())
    assert answer.cost_usd is None and answer.object_id == EMAIL_ID  # not recorded as a $0 send


@pytest.mark.parametrize("method, path, body, reason", [
    ("POST", "/emails", {"from": "not an address", "to": ["a@b.io"]}, "invalid_sender"),
    ("POST", "/emails", {"from": "a@b.io", "to": []}, "invalid_recipient"),
    ("POST", "/emails/batch", [{"from": "a@b.io", "to": "c@d.io"}] * 101, "batch_too_large"),
    ("GET", f"/emails/{EMAIL_ID}", {"x": 1}, "unexpected_body"),
    ("POST", "/events/send", {"event": "e", "email": "nobody"}, "invalid_recipient"),
])
def test_refusals_name_their_endpoint(method: str, path: str, body: Any, reason: str) -> None:
    exc = refused(method, path, body)
    assert exc.reason == reason and exc.endpoint == f"{method} {path.replace(EMAIL_ID, '{id}')}"


def test_a_contact_import_is_forwarded_unread() -> None:
    body = b"--b\r\nContent-Disposition: form-data; name=file; filename=c.csv\r\n\r\nemail\r\n--b--\r\n"
    parsed = ADAPTER.parse_request("POST", "/contacts/imports", b"",
                                   {"content-type": "multipart/form-data; boundary=b"}, body)
    assert parsed.endpoint == "POST /contacts/imports" and ADAPTER.estimate_usd(parsed) == 0
