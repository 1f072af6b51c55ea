"""vendors/resend.py, vendors/strictjson.py, vendors/emailaddress.py: the Resend adapter (pure, no I/O).

Requests are the exact bytes resend-python 2 sends: its HTTP client is replaced by
``Wire``, which prepares each request with requests (as resend's RequestsClient does)
and answers with a canned response, so error bodies go through the SDK's own
``raise_for_code_and_type``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import resend
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from resend import exceptions as resend_errors
from resend.http_client import HTTPClient

from vendors import emailaddress
from vendors.base import (
    ParsedRequest,
    RecordedObject,
    RequestRejected,
    UpstreamCredential,
    VendorError,
)
from vendors.resend import ResendAdapter, prices

PROPERTY = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ADAPTER = ResendAdapter()
VAULT_KEY = "tg_AAAAAAAAAAAA_" + "s" * 32 + "cccccc"
EMAIL_ID = "4ef9a417-02e9-4d39-ad75-9611e0fcc33c"
JSON = {"content-type": "application/json"}
RATE = Decimal("0.0009")


class Wire(HTTPClient):
    """resend-python's HTTP client, recording the prepared request instead of sending it."""

    def __init__(self) -> None:
        self.sent: list[requests.PreparedRequest] = []
        self.answer: tuple[int, Any] = (200, {"id": EMAIL_ID})

    def request(self, method: str, url: str, headers: Mapping[str, str], json: Any = None, files: Any = None,
                data: Any = None) -> tuple[bytes, int, Mapping[str, str]]:
        self.sent.append(requests.Request(method.upper(), url, headers=dict(headers), json=json).prepare())
        status, body = self.answer
        raw = body if isinstance(body, bytes) else _dumps(body)
        return raw, status, {"content-type": "application/json"}


def _dumps(body: Any) -> bytes:
    return json.dumps(body).encode()


@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch) -> Iterator[Wire]:
    fake = Wire()
    monkeypatch.setattr(resend, "default_http_client", fake)
    monkeypatch.setattr(resend, "api_key", VAULT_KEY)
    monkeypatch.setattr(resend, "api_url", "https://api.resend.com")
    yield fake


def on_the_wire(wire: Wire) -> tuple[str, str, bytes, dict[str, str], bytes]:
    sent = wire.sent[-1]
    url = urlsplit(sent.url)
    body = sent.body or b""
    return (sent.method, url.path, url.query.encode(), {k.lower(): v for k, v in sent.headers.items()},
            body.encode() if isinstance(body, str) else body)


def parsed_from(wire: Wire) -> ParsedRequest:
    return ADAPTER.parse_request(*on_the_wire(wire))


def parse(method: str, path: str, body: Any = b"", headers: Mapping[str, str] | None = None) -> ParsedRequest:
    raw = body if isinstance(body, bytes) else _dumps(body)
    return ADAPTER.parse_request(method, path, b"", {**(JSON if raw else {}), **(headers or {})}, raw)


def refused(method: str, path: str, body: Any = b"", **kwargs: Any) -> RequestRejected:
    with pytest.raises(RequestRejected) as info:
        parse(method, path, body, **kwargs)
    return info.value


def email(**fields: Any) -> dict[str, Any]:
    return {"from": "Acme <Onboarding@Acme.dev>", "to": "ada@example.com", "subject": "Hi", "html": "<p>x</p>",
            **fields}


# --- credentials ---------------------------------------------------------------------------------


def test_bearer_credentials_as_resend_python_sends_them(wire: Wire) -> None:
    resend.Emails.send(email())
    headers = on_the_wire(wire)[3]
    assert ADAPTER.presented_credentials(headers).vault_key == VAULT_KEY
    assert ADAPTER.presented_credentials(headers).account is None


@pytest.mark.parametrize("header", ["", "Bearer ", "Basic abc", VAULT_KEY, "Bearer\t", "Token x"])
def test_unusable_credentials_give_no_key(header: str) -> None:
    assert ADAPTER.presented_credentials({"authorization": header} if header else {}).vault_key is None


def test_upstream_auth_and_forwarded_headers(wire: Wire) -> None:
    assert ADAPTER.upstream_auth_headers(UpstreamCredential("re_123")) == {"authorization": "Bearer re_123"}
    resend.Batch.send([email()], {"idempotency_key": "k1", "batch_validation": "permissive"})
    sent = set(on_the_wire(wire)[3])
    hop_by_hop = {"authorization", "content-length", "accept-encoding", "connection"}
    assert sent - hop_by_hop <= ADAPTER.forward_request_headers
    assert {"idempotency-key", "x-batch-validation"} <= sent
    assert "authorization" not in ADAPTER.forward_request_headers


# --- parsing what the SDK sends ---------------------------------------------------------------------


def test_send_built_by_resend_python(wire: Wire) -> None:
    resend.Emails.send(email(to=["Ada <ADA@Example.com>", "bob@example.org"], cc="carol@example.com",
                             bcc=["dave@corp.example.com"]), {"idempotency_key": "order-17"})
    parsed = parsed_from(wire)
    assert (parsed.method, parsed.path, parsed.endpoint) == ("POST", "/emails", "POST /emails")
    assert parsed.recipients == ("ada@example.com", "bob@example.org", "carol@example.com", "dave@corp.example.com")
    assert parsed.senders == ("onboarding@acme.dev",)
    assert (parsed.units, parsed.moves_money, parsed.idempotency_key) == (4, True, "order-17")
    assert parsed.summary == {"emails": 1, "recipients": 4, "from": "onboarding@acme.dev",
                              "recipient_domains": "corp.example.com, example.com, example.org"}
    assert "<p>x</p>" not in json.dumps(parsed.summary) and "Hi" not in json.dumps(parsed.summary)
    assert ADAPTER.estimate_usd(parsed) == Decimal("0.003600")


def test_batch_built_by_resend_python(wire: Wire) -> None:
    wire.answer = (200, {"data": [{"id": EMAIL_ID}, {"id": "b"}]})
    resend.Batch.send([email(), email(**{"from": "billing@acme.dev", "to": ["x@a.io", "y@a.io"], "cc": []})])
    parsed = parsed_from(wire)
    assert (parsed.endpoint, parsed.units, parsed.params["units_per_email"]) == ("POST /emails/batch", 3, (1, 2))
    assert parsed.senders == ("onboarding@acme.dev", "billing@acme.dev")
    assert parsed.summary["emails"] == 2
    assert ADAPTER.estimate_usd(parsed) == Decimal("0.002700")


def test_get_built_by_resend_python_carries_an_empty_object(wire: Wire) -> None:
    wire.answer = (200, {"object": "email", "id": EMAIL_ID})
    resend.Emails.get(EMAIL_ID)
    method, _, _, _, body = on_the_wire(wire)
    assert (method, body) == ("GET", b"{}")  # resend-python sends json={} on GET
    parsed = parsed_from(wire)
    assert (parsed.endpoint, parsed.object_id, parsed.moves_money) == ("GET /emails/{id}", EMAIL_ID, False)
    assert ADAPTER.estimate_usd(parsed) == 0


def test_to_limit_is_fifty() -> None:
    assert parse("POST", "/emails", email(to=[f"u{i}@x.io" for i in range(50)])).units == 50
    exc = refused("POST", "/emails", email(to=[f"u{i}@x.io" for i in range(51)]))
    assert (exc.reason, exc.status, exc.param) == ("too_many_to_addresses", 422, "to")


def test_batch_limit_is_one_hundred() -> None:
    assert parse("POST", "/emails/batch", [email()] * 100).units == 100
    assert refused("POST", "/emails/batch", [email()] * 101).reason == "batch_too_large"
    assert refused("POST", "/emails/batch", []).reason == "invalid_batch"
    assert refused("POST", "/emails/batch", email()).reason == "invalid_batch"


# --- refusals ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, reason",
    [
        (b'{"from": "a@b.io", "to": "x@y.io", "to": "evil@z.io", "subject": "s"}', "duplicate_parameter"),
        (b'[{"from": "a@b.io", "to": "x@y.io", "subject": "s", "subject": "t"}]', "duplicate_parameter"),
        (b'{"from": "a@b.io", "to": "x@y.io", "n": NaN}', "invalid_json"),
        (b'{"from": "a@b.io", "to": "x@y.io", "n": Infinity}', "invalid_json"),
        (b'{"from": "a@b.io", "to": "x@y.io", "n": 1e999}', "invalid_json"),
        (b'{"from": "a@b.io", "to": "x@y.io", "n": ' + b"9" * 5000 + b"}", "invalid_json"),
        (b'{"from": "a@b.io", "to": "x@y.io", "s": "\\ud800"}', "invalid_json"),
        (b'{"from": "a@b.io", "to": "x@y.io"', "invalid_json"),
        (b'\xef\xbb\xbf{"from": "a@b.io", "to": "x@y.io"}', "invalid_json"),
        (b'{"from": "a@b.io", "to": "x@y.io", "d": ' + b"[" * 40 + b"]" * 40 + b"}", "invalid_json"),
        (b"[" * 100_000, "invalid_json"),
        (b'{"from": "a@b.io", "to": "\xff"}', "invalid_utf8"),
        (b'{"from": "a@b.io", "To": "x@y.io"}', "ambiguous_parameter"),
        (b'{"from": "a@b.io", "to": "x@y.io", "CC": "z@y.io"}', "ambiguous_parameter"),
        (b'"just a string"', "invalid_parameter"),
    ],
)
def test_ambiguous_or_malformed_json_is_refused(body: bytes, reason: str) -> None:
    assert refused("POST", "/emails", body).reason == reason


@pytest.mark.parametrize(
    "fields, reason, param",
    [
        ({"to": "not-an-address"}, "invalid_recipient", "to"),
        ({"to": []}, "invalid_recipient", "to"),
        ({"to": None}, "invalid_recipient", "to"),
        ({"to": 5}, "invalid_recipient", "to"),
        ({"to": ["ok@x.io", 7]}, "invalid_recipient", "to"),
        ({"to": "a@x.io, b@y.io"}, "invalid_recipient", "to"),
        ({"to": "ceo@bank.com <attacker@evil.io>"}, "invalid_recipient", "to"),
        ({"to": "z\u00fc@example.com"}, "invalid_recipient", "to"),
        ({"cc": "bad"}, "invalid_recipient", "cc"),
        ({"bcc": ["ok@x.io", "bad@"]}, "invalid_recipient", "bcc"),
        ({"from": "nobody"}, "invalid_sender", "from"),
        ({"from": None}, "invalid_sender", "from"),
        ({"from": ["a@b.io"]}, "invalid_sender", "from"),
    ],
)
def test_invalid_addresses_are_refused(fields: dict[str, Any], reason: str, param: str) -> None:
    exc = refused("POST", "/emails", email(**fields))
    assert (exc.reason, exc.param, exc.status) == (reason, param, 422)


@pytest.mark.parametrize(
    "value, expected",
    [("a@b.io", "a@b.io"), ("  A@B.IO ", "a@b.io"), ("Ada Lovelace <Ada@Example.COM>", "ada@example.com"),
     ('"Acme, Inc" <hello@acme.dev>', "hello@acme.dev"), ("<x.y+tag@sub.example.co.uk>", "x.y+tag@sub.example.co.uk"),
     ("Z\u00fc <z@example.com>", "z@example.com"), ('"ceo@bank.com" <a@evil.io>', "a@evil.io")],
)
def test_address_forms(value: str, expected: str) -> None:
    assert emailaddress.bare(value) == expected


def test_content_type_and_paths() -> None:
    with pytest.raises(RequestRejected) as info:
        ADAPTER.parse_request("POST", "/emails", b"", {"content-type": "text/plain"}, _dumps(email()))
    assert info.value.reason == "unsupported_content_type"
    for path in ("/Emails", "/EMAILS/batch", "/emails/Batch", "/emails.json"):
        assert (refused("POST", path, email()).reason, refused("POST", path, email()).status) == ("invalid_path", 404)
    assert refused("GET", f"/emails/{EMAIL_ID}", {"to": "x@y.io"}).reason == "unexpected_body"


def test_other_endpoints_are_named_not_governed() -> None:
    parsed = parse("POST", f"/emails/{EMAIL_ID}/cancel")
    assert (parsed.endpoint, parsed.moves_money, parsed.recipients) == ("POST /emails/{id}/cancel", False, ())
    assert parse("GET", "/domains").endpoint == "GET /domains"
    assert refused("POST", "/broadcasts", b'{"a": 1, "a": 2}').reason == "duplicate_parameter"


# --- responses --------------------------------------------------------------------------------------

SEND = parse("POST", "/emails", email(to=["a@x.io", "b@x.io"]))
BATCH = parse("POST", "/emails/batch", [email(), email(to=["a@x.io", "b@x.io", "c@x.io"]), email()])
FETCH = parse("GET", f"/emails/{EMAIL_ID}")


def respond(request: ParsedRequest, status: int, body: Any, headers: Mapping[str, str] | None = None) -> Any:
    raw = body if isinstance(body, bytes) else _dumps(body)
    return ADAPTER.parse_response(request, status, dict(headers or {}), raw)


def test_send_cost_is_recipients_times_rate() -> None:
    assert prices().usd_per_email == RATE and prices().source and prices().as_of
    result = respond(SEND, 200, {"id": EMAIL_ID}, {"x-request-id": "rq1"})
    assert (result.cost_usd, result.object_id, result.vendor_request_id) == (Decimal("0.001800"), EMAIL_ID, "rq1")
    assert result.cost_usd == ADAPTER.estimate_usd(SEND) == ADAPTER.estimate_usd(SEND, None)
    assert result.created == RecordedObject(EMAIL_ID, "email")


def test_batch_cost_and_first_id() -> None:
    result = respond(BATCH, 200, {"data": [{"id": "id-1"}, {"id": "id-2"}, {"id": "id-3"}]})
    assert (result.cost_usd, result.object_id) == (Decimal("0.004500"), "id-1")
    assert result.created == RecordedObject("id-1", "email")


def test_permissive_batch_bills_only_what_was_sent() -> None:
    body = {"data": [{"id": "id-1"}, {"id": "id-3"}], "errors": [{"index": 1, "message": "Invalid `to` field."}]}
    assert respond(BATCH, 200, body).cost_usd == Decimal("0.001800")
    junk = {"data": [], "errors": [{"index": 7}, {"index": True}, {"index": -1}, "x"]}
    assert respond(BATCH, 200, junk).cost_usd == Decimal("0.004500")


def test_errors_and_fetches_cost_nothing() -> None:
    assert respond(SEND, 422, {"statusCode": 422, "name": "validation_error", "message": "x"}).cost_usd == 0
    assert respond(FETCH, 200, {"id": EMAIL_ID}).cost_usd == 0
    assert respond(FETCH, 200, {"id": EMAIL_ID}).created is None
    assert respond(SEND, 422, {"id": EMAIL_ID}).created is None
    assert respond(FETCH, 200, b"<html>").object_id == EMAIL_ID


def test_unreadable_success_still_costs_the_estimate() -> None:
    assert respond(SEND, 200, b"not json").cost_usd == ADAPTER.estimate_usd(SEND)


# --- errors as resend-python reads them -------------------------------------------------------------


@pytest.mark.parametrize(
    "error, exception, status",
    [
        (VendorError(401, "invalid_secret", "Invalid API key: wrong secret.", "auth"),
         resend_errors.InvalidApiKeyError, 403),
        (VendorError(401, "key_revoked", "This vault key was revoked.", "auth"), resend_errors.InvalidApiKeyError, 403),
        (VendorError(403, "recipient_not_allowed", "x@y.io is outside the scope."), resend_errors.ResendError, 403),
        (VendorError(403, "cap_exceeded", "Daily cap reached."), resend_errors.ResendError, 403),
        (VendorError(422, "invalid_recipient", "Invalid 'to'.", param="to"), resend_errors.ValidationError, 422),
        (VendorError(400, "duplicate_parameter", "Key twice."), resend_errors.ValidationError, 400),
        (VendorError(429, "cap_exceeded", "Slow down."), resend_errors.RateLimitError, 429),
        (VendorError(500, "internal", "Oops.", "unavailable"), resend_errors.ApplicationError, 500),
        (VendorError(503, "database_unavailable", "Try later.", "unavailable", retryable=True),
         resend_errors.ResendError, 503),
    ],
)
def test_render_error_raises_the_sdk_exception_with_our_message(wire: Wire, error: VendorError, exception: type,
                                                                 status: int) -> None:
    rendered = ADAPTER.render_error(error)
    assert rendered.status == status and rendered.headers["content-type"] == "application/json"
    wire.answer = (rendered.status, rendered.body)
    with pytest.raises(resend_errors.ResendError) as info:
        resend.Emails.send(email())
    assert type(info.value) is exception
    assert str(info.value.code) == str(status)
    assert info.value.message == f"[tollgate:{error.reason}] {error.message}"
    assert json.loads(rendered.body)["tollgate_reason"] == error.reason


def test_approval_id_travels_in_the_body() -> None:
    rendered = ADAPTER.render_error(VendorError(403, "cap_requires_approval", "Held.", approval_id="ap_9"))
    assert json.loads(rendered.body)["approval_id"] == "ap_9"


def test_missing_key_is_the_sdks_missing_api_key_error(wire: Wire) -> None:
    rendered = ADAPTER.render_error(VendorError(401, "missing_key", "No vault key provided.", "auth"))
    assert json.loads(rendered.body)["message"] == "[tollgate:missing_key] No vault key provided."
    wire.answer = (rendered.status, rendered.body)
    with pytest.raises(resend_errors.MissingApiKeyError) as info:
        resend.Emails.send(email())
    assert info.value.code == 401  # resend-python replaces the message with its own for this class


# --- properties ---------------------------------------------------------------------------------------

ADDRESSES = st.one_of(st.sampled_from(["a@b.io", "Ada <ada@x.dev>", "bad", "", "a@b", "<>", '"q" <q@x.io>']),
                      st.text(max_size=12))
FIELD = st.one_of(ADDRESSES, st.lists(ADDRESSES, max_size=4), st.none(), st.integers(), st.booleans())
EMAILS = st.fixed_dictionaries({}, optional={"from": FIELD, "to": FIELD, "cc": FIELD, "bcc": FIELD, "To": FIELD,
                                             "subject": st.text(max_size=5)})
JSON_LIKE = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5)),
                         lambda inner: st.lists(inner, max_size=3)
                         | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                         max_leaves=12)
BODIES = st.one_of(EMAILS.map(_dumps), st.lists(EMAILS, max_size=3).map(_dumps), JSON_LIKE.map(_dumps),
                   st.binary(max_size=64))
PATHS = st.one_of(st.sampled_from(["/emails", "/emails/batch", f"/emails/{EMAIL_ID}", "/Emails", "/domains", "/"]),
                  st.text(max_size=20))
HEADERS = st.fixed_dictionaries({}, optional={
    "content-type": st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain", ""]),
    "authorization": st.text(max_size=20), "idempotency-key": st.text(max_size=8)})


@PROPERTY
@given(st.sampled_from(["GET", "POST", "DELETE"]), PATHS, st.binary(max_size=16), HEADERS, BODIES)
def test_parse_request_returns_facts_or_refuses(method: str, path: str, query: bytes, headers: dict[str, str],
                                                body: bytes) -> None:
    try:
        parsed = ADAPTER.parse_request(method, path, query, headers, body)
    except RequestRejected as exc:
        assert exc.reason and exc.message and exc.status in {400, 404, 422}
        return
    assert parsed.units == len(parsed.recipients) or not parsed.moves_money
    assert all(r == r.lower() and "@" in r for r in parsed.recipients + parsed.senders)
    json.dumps(dict(parsed.summary))
    estimate = ADAPTER.estimate_usd(parsed)
    assert isinstance(estimate, Decimal) and estimate == (RATE * parsed.units if parsed.moves_money else 0)


@PROPERTY
@given(HEADERS)
def test_presented_credentials_never_raise(headers: dict[str, str]) -> None:
    key = ADAPTER.presented_credentials(headers).vault_key
    assert key is None or (isinstance(key, str) and key == key.strip() and key)


@PROPERTY
@given(st.sampled_from([SEND, BATCH, FETCH]), st.integers(min_value=0, max_value=999),
       st.one_of(st.binary(max_size=64), JSON_LIKE.map(_dumps),
                 st.fixed_dictionaries({}, optional={"id": JSON_LIKE, "data": JSON_LIKE, "errors": JSON_LIKE})
                 .map(_dumps)))
def test_parse_response_never_raises(request: ParsedRequest, status: int, body: bytes) -> None:
    result = ADAPTER.parse_response(request, status, {}, body)
    if result.uncertain:  # a 5xx on a send: it may have gone out, the estimate stands
        assert status >= 500 and request.moves_money and result.cost_usd is None
        return
    assert isinstance(result.cost_usd, Decimal) and 0 <= result.cost_usd <= ADAPTER.estimate_usd(request)
    assert result.object_id is None or isinstance(result.object_id, str)
