"""The bodies Stripe accepts, as the Stripe adapter reads them (pure, no I/O): /v2 JSON, file
uploads to the files host, the meter events host, and Connect OAuth refused.

Requests are built by stripe-python 16 itself (a StripeClient whose HTTP client hands the wire
request to the adapter), so what is read is what the SDK sends; then each way a body could be
read twice is refused. The properties at the end hold the JSON reading to two others (last and
first duplicate wins): whatever the adapter accepts, both readers read the same."""

from __future__ import annotations

import hashlib
import io
import json
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import pytest
import stripe
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stripe._http_client import HTTPClient

from vendors.base import ParsedRequest, RequestRejected
from vendors.stripe.adapter import MAX_AMOUNT_MINOR, StripeAdapter

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ADAPTER = StripeAdapter()
JSON = {"content-type": "application/json"}
FORM = {"content-type": "application/x-www-form-urlencoded"}
PAYMENTS = "/v2/money_management/outbound_payments"
PAYMENT = {"amount": {"value": 1200, "currency": "usd"}, "from": {"financial_account": "fa_1", "currency": "usd"},
           "to": {"recipient": "acct_1"}}


class _Wire(HTTPClient):
    """stripe-python's HTTP client slot: the request it would send, parsed by the adapter instead."""

    name = "tollgate-test-wire"

    def __init__(self) -> None:
        super().__init__()
        self.parsed: list[ParsedRequest] = []

    def request(self, method: str, url: str, headers: Any, post_data: Any = None) -> tuple[bytes, int, dict]:
        parts = urlsplit(url)
        body = post_data.encode() if isinstance(post_data, str) else post_data or b""
        lowered = {k.lower(): v for k, v in headers.items()}
        self.parsed.append(ADAPTER.parse_request(method.upper(), parts.path.removeprefix("/stripe"),
                                                 parts.query.encode(), lowered, body))
        return b"{}", 200, {}

    def close(self) -> None:
        pass


def sdk(call: Any) -> ParsedRequest:
    """What the adapter reads from one call of a StripeClient pointed at Tollgate's routes."""
    wire = _Wire()
    client = stripe.StripeClient("tg_test", http_client=wire, max_network_retries=0, base_addresses={
        "api": "http://tollgate/stripe", "files": "http://tollgate/stripe/files",
        "meter_events": "http://tollgate/stripe/meter_events", "connect": "http://tollgate/stripe/connect"})
    call(client)
    [parsed] = wire.parsed
    return parsed


def refused(method: str, path: str, body: bytes | str = b"", headers: dict[str, str] | None = None,
            query: bytes = b"") -> RequestRejected:
    raw = body.encode() if isinstance(body, str) else body
    with pytest.raises(RequestRejected) as info:
        ADAPTER.parse_request(method, path, query, dict(JSON if headers is None else headers), raw)
    return info.value


# --- what stripe-python sends is read -----------------------------------------------------------


def test_a_v2_outbound_payment_as_the_sdk_sends_it_is_priced_from_its_json() -> None:
    parsed = sdk(lambda c: c.v2.money_management.outbound_payments.create(params=PAYMENT))
    assert (parsed.endpoint, parsed.path, parsed.host) == (f"POST {PAYMENTS}", PAYMENTS, None)
    assert (parsed.amount_minor, parsed.currency, parsed.moves_money) == (1200, "usd", True)
    assert parsed.params["to"] == {"recipient": "acct_1"}
    assert ADAPTER.estimate_usd(parsed) == Decimal("12.000000")


def test_a_file_upload_as_the_sdk_sends_it_is_read_without_its_bytes() -> None:
    secret_bytes = b"%PDF-1.7 the contract's text, which no audit row may hold"
    upload = io.BytesIO(secret_bytes)
    upload.name = "contract.pdf"
    parsed = sdk(lambda c: c.v1.files.create(params={"file": upload, "purpose": "dispute_evidence",
                                                     "file_link_data": {"create": True}}))
    assert (parsed.endpoint, parsed.path, parsed.host, parsed.moves_money) == (
        "POST /files/v1/files", "/v1/files", "files", False)
    described = {"filename": "contract.pdf", "content_type": "application/octet-stream", "size": len(secret_bytes),
                 "sha256": hashlib.sha256(secret_bytes).hexdigest()}
    assert parsed.params == {"purpose": "dispute_evidence", "file_link_data": {"create": "true"}, "file": described}
    assert parsed.summary == {"purpose": "dispute_evidence", "file": described}
    assert b"contract's text" not in json.dumps([parsed.params, parsed.summary]).encode()
    assert ADAPTER.estimate_usd(parsed) == Decimal(0)


def test_the_meter_event_stream_goes_to_its_host_and_cannot_be_priced_before() -> None:
    parsed = sdk(lambda c: c.v2.billing.meter_event_stream.create(params={"events": [
        {"event_name": "api_call", "payload": {"stripe_customer_id": "cus_1", "value": "25"}}]}))
    assert (parsed.endpoint, parsed.host, parsed.path) == (
        "POST /meter_events/v2/billing/meter_event_stream", "meter_events", "/v2/billing/meter_event_stream")
    assert parsed.moves_money and ADAPTER.estimate_usd(parsed) is None  # cost_unknown unless priced_after


def test_reading_a_file_stays_on_the_api_host() -> None:
    parsed = sdk(lambda c: c.v1.files.retrieve("file_1Pgag2B7WZ01zgkWITx3dIQc"))
    assert (parsed.endpoint, parsed.host) == ("GET /v1/files/{id}", None)


def test_a_v2_delete_carries_its_parameters_in_the_query() -> None:
    parsed = sdk(lambda c: c.v2.core.event_destinations.delete("ed_1"))
    assert (parsed.method, parsed.endpoint, parsed.params) == ("DELETE", "DELETE /v2/core/event_destinations/{id}", {})


def test_every_host_the_adapter_routes_is_the_sdks_default() -> None:
    assert dict(ADAPTER.hosts) == {"files": stripe.DEFAULT_UPLOAD_API_BASE,
                                   "meter_events": stripe.DEFAULT_METER_EVENTS_API_BASE}


def test_policies_see_the_other_hosts_operations_by_their_prefix_and_never_connect() -> None:
    named = {f"{op.method} {op.path}": op for op in ADAPTER.operations()}
    assert named["POST /files/v1/files"].kind == "configures"
    assert named["POST /meter_events/v2/billing/meter_event_stream"].priced == "after"
    assert named["POST /v2/money_management/outbound_payments"].priced == "request"
    assert not {"POST /connect/oauth/token", "POST /connect/oauth/deauthorize", "GET /files/v1/quotes/{id}/pdf"} & set(
        named)


# --- the wrong host, or an operation Tollgate never forwards -------------------------------------


@pytest.mark.parametrize("method, path, asked, right", [
    ("POST", "/v1/files", "POST /v1/files", "/stripe/files/v1/files"),
    ("GET", "/files/v1/files/file_1", "GET /files/v1/files/{id}", "/stripe/v1/files/file_1"),
    ("POST", "/v2/billing/meter_event_stream", "POST /v2/billing/meter_event_stream",
     "/stripe/meter_events/v2/billing/meter_event_stream"),
    ("POST", "/files/v1/charges", "POST /files/v1/charges", "/stripe/v1/charges"),
])
def test_an_operation_sent_to_another_host_than_the_sdks_is_refused_with_its_route(
        method: str, path: str, asked: str, right: str) -> None:
    exc = refused(method, path, headers={})
    assert (exc.reason, exc.status, exc.endpoint) == ("unknown_operation", 404, asked)
    assert right in exc.message and "base_addresses" in exc.message


def test_an_unknown_path_on_another_host_is_named_with_its_prefix() -> None:
    exc = refused("POST", "/files/v1/nothing_here", headers={})
    assert (exc.reason, exc.endpoint) == ("unknown_operation", "POST /files/v1/nothing_here")


def test_connect_oauth_is_refused_before_its_body_is_read() -> None:
    token = refused("POST", "/connect/oauth/token", "grant_type=authorization_code&code=ac_1", FORM)
    assert (token.reason, token.status, token.endpoint) == ("operation_not_served", 403, "POST /connect/oauth/token")
    assert "access token" in token.message and "--upstream-account" in token.message
    deauthorize = refused("POST", "/connect/oauth/deauthorize", "client_id=ca_1&stripe_user_id=acct_1", FORM)
    assert (deauthorize.reason, deauthorize.endpoint) == ("operation_not_served", "POST /connect/oauth/deauthorize")
    pdf = refused("GET", "/files/v1/quotes/qt_1/pdf", headers={})
    assert (pdf.reason, pdf.endpoint) == ("operation_not_served", "GET /files/v1/quotes/{id}/pdf")


# --- which body goes where -----------------------------------------------------------------------


@pytest.mark.parametrize("path, content_type, expected", [
    (PAYMENTS, "application/x-www-form-urlencoded", "application/json"),  # a form on /v2
    (PAYMENTS, "", "application/json"),
    (PAYMENTS, "multipart/form-data; boundary=x", "application/json"),
    ("/v1/charges", "application/json", "application/x-www-form-urlencoded"),  # JSON on /v1
    ("/v1/charges", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded"),
    ("/files/v1/files", "application/json", "multipart/form-data"),
    ("/files/v1/files", "application/x-www-form-urlencoded", "multipart/form-data"),
])
def test_a_body_of_another_type_than_the_route_takes_is_refused_naming_it(
        path: str, content_type: str, expected: str) -> None:
    exc = refused("POST", path, b'{"amount": {"value": 1, "currency": "usd"}}',
                  {"content-type": content_type} if content_type else {})
    assert exc.reason == "unsupported_content_type" and expected in exc.message and "Stripe" in exc.message


@pytest.mark.parametrize("body, reason", [
    ('{"amount": {"value": 1, "value": 99999999, "currency": "usd"}}', "duplicate_parameter"),
    ('{"amount": {"value": 1, "currency": "usd"}, "amount": {"value": 9, "currency": "usd"}}', "duplicate_parameter"),
    ('{"amount": {"value": NaN, "currency": "usd"}}', "invalid_json"),
    ('{"amount": {"value": 1e999, "currency": "usd"}}', "invalid_json"),
    ('{"amount": {"value": 1, "currency": "\\ud800"}}', "invalid_json"),
    ('{"amount[value]": 1, "amount": {"currency": "usd"}}', "ambiguous_parameter"),
    ('{"metadata": {"a]": "x"}}', "ambiguous_parameter"),
    ('[{"amount": {"value": 1, "currency": "usd"}}]', "invalid_json"),
    ('"amount"', "invalid_json"),
    ('{"amount": ' * 40 + "1" + "}" * 40, "invalid_json"),
    (b'{"description": "\xff"}', "invalid_utf8"),
    ('{"amount": {"value": 1.0, "currency": "usd"}}', "invalid_amount"),
    ('{"amount": {"value": true, "currency": "usd"}}', "invalid_amount"),
    ('{"amount": {"value": -1, "currency": "usd"}}', "invalid_amount"),
    ('{"amount": {"value": "12.5", "currency": "usd"}}', "invalid_amount"),
    (f'{{"amount": {{"value": {MAX_AMOUNT_MINOR + 1}, "currency": "usd"}}}}', "invalid_amount"),
    ('{"amount": {"value": 10000000000000000000000000000000, "currency": "usd"}}', "invalid_amount"),
    ('{"amount": {"value": 1, "currency": 840}}', "invalid_parameter"),
    ('{"amount": {"value": 1, "currency": "xyz"}}', "unknown_currency"),
    ('{"to": {"recipient": 7}, "amount": {"value": 1, "currency": "usd"}}', "invalid_parameter"),
])
def test_a_json_body_with_more_than_one_reading_or_no_price_is_refused(body: str | bytes, reason: str) -> None:
    exc = refused("POST", PAYMENTS, body)
    assert exc.reason == reason and exc.endpoint == f"POST {PAYMENTS}"  # the blocked row names the operation


def test_the_query_string_and_the_json_body_may_not_both_name_a_parameter() -> None:
    exc = refused("POST", PAYMENTS, json.dumps(PAYMENT), query=b"amount[value]=1")
    assert (exc.reason, exc.param) == ("duplicate_parameter", "amount")


@pytest.mark.parametrize("value, minor", [(1200, 1200), ("1200", 1200), (0, 0), (MAX_AMOUNT_MINOR, MAX_AMOUNT_MINOR)])
def test_a_json_integer_or_an_int64_string_is_an_amount(value: Any, minor: int) -> None:
    body = json.dumps({**PAYMENT, "amount": {"value": value, "currency": "jpy"}}).encode()
    parsed = ADAPTER.parse_request("POST", PAYMENTS, b"", JSON, body)
    assert (parsed.amount_minor, parsed.currency) == (minor, "jpy")


def test_a_v2_money_call_without_an_amount_cannot_be_priced_before() -> None:
    for amount in ({"currency": "usd"}, {"value": None, "currency": "usd"}, 1200, None):  # 1200: not an Amount
        parsed = ADAPTER.parse_request("POST", PAYMENTS, b"", JSON, json.dumps({**PAYMENT, "amount": amount}).encode())
        assert parsed.moves_money and ADAPTER.estimate_usd(parsed) is None
    empty = ADAPTER.parse_request("POST", PAYMENTS, b"", {}, b"")  # no body at all
    assert empty.params == {} and ADAPTER.estimate_usd(empty) is None


@pytest.mark.parametrize("parts, reason", [
    ([('name="file"; filename="a.png"', b"x"), ('name="file"; filename="b.png"', b"y")], "duplicate_parameter"),
    ([('name="purpose"', b"identity_document"), ('name="logo"; filename="a.png"', b"x")], "invalid_parameter"),
    ([('name="file"', b"not a file")], "invalid_parameter"),
    ([('name="file[x]"', b"1"), ('name="file"; filename="a.png"', b"x")], "invalid_parameter"),
    ([('name="file_link_data[create]"', b"true"), ('name="file_link_data[create]"', b"false")],
     "duplicate_parameter"),
    ([('name="expand[]"', b"a"), ('name="expand[0]"', b"b")], "ambiguous_parameter"),
    ([('name="pur pose"', b"x")], "malformed_form"),
])
def test_an_upload_that_could_be_read_two_ways_is_refused(parts: list[tuple[str, bytes]], reason: str) -> None:
    body = b"".join(f"--xyz\r\nContent-Disposition: form-data; {d}\r\n\r\n".encode() + v + b"\r\n" for d, v in parts)
    multipart = {"content-type": "multipart/form-data; boundary=xyz"}
    exc = refused("POST", "/files/v1/files", body + b"--xyz--\r\n", multipart)
    assert exc.reason == reason and exc.endpoint == "POST /files/v1/files"


# --- properties: nothing ambiguous is read -------------------------------------------------------

NUMBERS = st.sampled_from(["1200", "0", "-1", "1200.0", "1.2e3", "12e2", "1e999", "-0", "NaN", "Infinity", "true",
                           "null", '"1200"', '"12.5"', '"\\u0031200"', "99999999999", "100000000000",
                           "1" + "0" * 30])
TEXTS = st.sampled_from(['"usd"', '"USD"', '"jpy"', '"xyz"', '"\\ud800"', '"fa_1"', '"acct_1"', "7", "null", '""'])
KEYS = st.sampled_from(["amount", "value", "currency", "from", "to", "financial_account", "recipient", "metadata",
                        "amount[value]", "a]", "description", "\\u0061mount", "valu\\u0065"])


def _object(pairs: list[tuple[str, str]]) -> str:
    return "{" + ", ".join(f'"{k}": {v}' for k, v in pairs) + "}"


LEAVES = st.one_of(NUMBERS, TEXTS)
VALUES = st.recursive(LEAVES, lambda inner: st.one_of(
    st.lists(st.tuples(KEYS, inner), max_size=4).map(_object), st.lists(inner, max_size=3).map(
        lambda items: "[" + ", ".join(items) + "]")), max_leaves=12)
AMOUNT_PAIRS = st.tuples(st.sampled_from(["value", "currency", "valu\\u0065"]), st.one_of(NUMBERS, TEXTS))
AMOUNTS = st.one_of(  # mostly one value and one currency, so that pricing is reached; sometimes not
    st.tuples(NUMBERS, st.sampled_from(['"usd"', '"jpy"', '"kwd"'])).map(
        lambda t: _object([("value", t[0]), ("currency", t[1])])),
    st.lists(AMOUNT_PAIRS, min_size=1, max_size=3).map(_object))
BODIES = st.one_of(
    st.lists(st.tuples(KEYS, VALUES), max_size=5).map(_object),
    st.tuples(AMOUNTS, st.lists(st.tuples(KEYS, VALUES), max_size=3, unique_by=lambda kv: kv[0])).map(
        lambda t: _object([("amount", t[0]), *((k, v) for k, v in t[1] if "amount" not in k)])),
    st.tuples(AMOUNTS, st.lists(st.tuples(KEYS, VALUES), max_size=3)).map(
        lambda t: _object([("amount", t[0]), *t[1]])),
    VALUES,
)


def _first_wins(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        out.setdefault(key, value)
    return out


@PROPERTY
@given(BODIES)
def test_whatever_json_is_accepted_every_reader_reads_the_same(text: str) -> None:
    try:
        parsed = ADAPTER.parse_request("POST", PAYMENTS, b"", JSON, text.encode())
    except RequestRejected as exc:
        assert exc.reason in {"invalid_json", "duplicate_parameter", "ambiguous_parameter", "invalid_amount",
                              "invalid_parameter", "unknown_currency", "invalid_utf8"}
        return
    last_wins = json.loads(text)  # Python's own: last duplicate wins, NaN and 1e999 let through
    first_wins = json.loads(text, object_pairs_hook=_first_wins)
    assert parsed.params == last_wins == first_wins
    amount = (last_wins.get("amount") or {}).get("value") if isinstance(last_wins.get("amount"), dict) else None
    if parsed.amount_minor is not None:  # the amount priced is the one in the body, a whole number of minor units
        assert type(parsed.amount_minor) is int and 0 <= parsed.amount_minor <= MAX_AMOUNT_MINOR
        assert parsed.amount_minor == (amount if type(amount) is int else int(amount))
    else:
        assert amount is None and ADAPTER.estimate_usd(parsed) is None


@PROPERTY
@given(st.dictionaries(st.sampled_from(["value", "currency"]), st.one_of(
    st.integers(min_value=-10, max_value=10**12), st.floats(allow_nan=True), st.booleans(), st.none(),
    st.text(max_size=4), st.sampled_from(["usd", "jpy", "kwd"])), min_size=1))
def test_a_v2_amount_is_priced_exactly_or_refused(amount: dict[str, Any]) -> None:
    body = json.dumps({**PAYMENT, "amount": amount}).encode()  # json.dumps writes NaN: a refusal
    try:
        parsed = ADAPTER.parse_request("POST", PAYMENTS, b"", JSON, body)
    except RequestRejected as exc:
        assert exc.reason in {"invalid_json", "invalid_amount", "invalid_parameter", "unknown_currency"}
        return
    value = amount.get("value")
    assert value is None or (type(value) is int and parsed.amount_minor == value) or (
        isinstance(value, str) and parsed.amount_minor == int(value))
    estimate = ADAPTER.estimate_usd(parsed)
    assert (estimate is None) == (parsed.amount_minor is None or parsed.currency is None)
