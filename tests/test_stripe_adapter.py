"""vendors/stripe/adapter.py, vendors/money.py, vendors/endpoints.py: the Stripe adapter (pure, no I/O)."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import stripe
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stripe._api_requestor import _APIRequestor
from stripe._encode import _api_encode
from stripe._http_client import HTTPClient

from vendors import money
from vendors.base import (
    LookedUp,
    Lookup,
    ParsedRequest,
    ParsedResponse,
    RecordedObject,
    RequestRejected,
    UpstreamCredential,
    VendorError,
)
from vendors.endpoints import generic_template, looks_like_id, pattern_matches
from vendors.stripe.adapter import MAX_AMOUNT_MINOR, OPERATIONS, StripeAdapter

PROPERTY = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FORM = {"content-type": "application/x-www-form-urlencoded"}
ADAPTER = StripeAdapter()
VAULT_KEY = "tg_AAAAAAAAAAAA_" + "s" * 32 + "cccccc"


def sdk_form(params: dict[str, Any]) -> bytes:
    """stripe 16's own v1 form encoding (stripe/_api_requestor.py)."""
    return urlencode(list(_api_encode(params))).replace("%5B", "[").replace("%5D", "]").encode("ascii")


def parse(
    method: str, path: str, body: bytes = b"", *, query: bytes = b"", headers: Mapping[str, str] | None = None
) -> ParsedRequest:
    hdrs = dict(FORM if body else {})
    hdrs.update(headers or {})
    return ADAPTER.parse_request(method, path, query, hdrs, body)


def refused(method: str, path: str, body: bytes = b"", **kwargs: Any) -> RequestRejected:
    with pytest.raises(RequestRejected) as info:
        parse(method, path, body, **kwargs)
    return info.value


def usd(amount_minor: int, currency: str) -> Decimal:
    """The expected USD price, computed independently from the FX table and the exponent."""
    code = currency.lower()
    exp = 0 if code in money.ZERO_DECIMAL else 3 if code in money.THREE_DECIMAL else 2
    return (Decimal(amount_minor) / (Decimal(10) ** exp) * money.fx_table().usd_per_unit[code]).quantize(
        Decimal("0.000001")
    )


# --- endpoint templates ------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path, template, params",
    [
        ("GET", "/v1/charges/ch_123", "GET /v1/charges/{id}", {"charge": "ch_123"}),
        ("POST", "/v1/charges", "POST /v1/charges", {}),
        ("POST", "/v1/charges/ch_3MmlLrLkdIwHu7ix/capture", "POST /v1/charges/{id}/capture",
         {"charge": "ch_3MmlLrLkdIwHu7ix"}),
        ("POST", "/v1/payment_intents/pi_1/confirm", "POST /v1/payment_intents/{id}/confirm", {"intent": "pi_1"}),
        ("DELETE", "/v1/customers/cus_NffrFeUfNV2Hib", "DELETE /v1/customers/{id}", {"customer": "cus_NffrFeUfNV2Hib"}),
        ("GET", "/v1/balance", "GET /v1/balance", {}),
        ("GET", "/v1/subscriptions/sub_1MowQVLkdIwHu7ixeRlqHVzs", "GET /v1/subscriptions/{id}",
         {"subscription_exposed_id": "sub_1MowQVLkdIwHu7ixeRlqHVzs"}),
        ("POST", "/v1/invoices/in_1ABC/pay", "POST /v1/invoices/{id}/pay", {"invoice": "in_1ABC"}),
        ("GET", "/v1/invoices/search", "GET /v1/invoices/search", {}),  # 'search' is no id
    ],
)
def test_known_endpoint_templates(method: str, path: str, template: str, params: dict[str, str]) -> None:
    endpoint, bound, name = OPERATIONS.match(method, path)
    assert endpoint is not None
    assert name == endpoint.name == template
    assert bound == params


@pytest.mark.parametrize(
    "method, path, template",
    [
        ("PUT", "/v1/charges/ch_1", "PUT /v1/charges/{id}"),  # known path, unknown method
        ("POST", "/v1/charges/ch_1/refund", "POST /v1/charges/{id}/refund"),  # legacy: stripe-python 16 sends none
        ("GET", "/v1/emails/4ef9a417-02e9-4d39-ad75-9611e0fcc33c", "GET /v1/emails/{id}"),
    ],
)
def test_an_operation_the_catalogue_does_not_know_is_refused(method: str, path: str, template: str) -> None:
    endpoint, bound, name = OPERATIONS.match(method, path)
    assert endpoint is None and bound == {}
    assert name == template
    with pytest.raises(RequestRejected) as refused:
        parse(method, path)
    assert (refused.value.reason, refused.value.status, refused.value.endpoint) == ("unknown_operation", 404, template)


@pytest.mark.parametrize(
    "segment, expected",
    [
        ("ch_123", True),
        ("ch_3MmlLrLkdIwHu7ix", True),
        ("cus_NffrFeUfNV2Hib", True),
        ("SM0123456789abcdef0123456789abcdef", True),
        ("SM0123456789abcdef0123456789abcdef.json", True),
        ("4ef9a417-02e9-4d39-ad75-9611e0fcc33c", True),
        ("payment_intents", False),
        ("charges", False),
        ("v1", False),
        ("confirm", False),
        ("Messages.json", False),
        ("ch_", False),
    ],
)
def test_looks_like_id(segment: str, expected: bool) -> None:
    assert looks_like_id(segment) is expected


def test_generic_template_replaces_only_ids() -> None:
    assert generic_template(["v1", "payment_intents", "pi_3Abc", "confirm"]) == "/v1/payment_intents/{id}/confirm"


@pytest.mark.parametrize(
    "pattern, method, path, expected",
    [
        ("GET /v1/charges/*", "GET", "/v1/charges/ch_1", True),
        ("GET /v1/charges/{id}", "GET", "/v1/charges/ch_1", True),
        ("GET /v1/charges/*", "GET", "/v1/charges", False),
        ("GET /v1/charges/*", "GET", "/v1/charges/ch_1/refunds", False),
        ("GET /v1/charges/*", "POST", "/v1/charges/ch_1", False),
        ("get /v1/charges/*", "GET", "/v1/charges/ch_1", True),
        ("POST /v1/charges", "POST", "/v1/charges", True),
        ("POST /v1/charges", "POST", "/v1/refunds", False),
        ("POST /v1/charges", "GET", "/v1/charges", False),
        ("POST /v1/*/confirm", "POST", "/v1/payment_intents/confirm", True),
        ("POST /v1/payment_intents/*/confirm", "POST", "/v1/payment_intents/pi_1/confirm", True),
        ("POST /v1/payment_intents/*/confirm", "POST", "/v1/payment_intents/pi_1/capture", False),
        ("POST /v1/payment_intents/*", "POST", "/v1/payment_intents/pi_1/confirm", False),
        ("POST /v1/charges*", "POST", "/v1/charges_x", False),
        ("GET /*", "GET", "/v1/charges", False),
    ],
)
def test_pattern_matches(pattern: str, method: str, path: str, expected: bool) -> None:
    assert pattern_matches(pattern, method, path) is expected


# --- credentials ---------------------------------------------------------------------------


def test_bearer_credentials() -> None:
    assert ADAPTER.presented_credentials({"authorization": f"Bearer {VAULT_KEY}"}).vault_key == VAULT_KEY
    assert ADAPTER.presented_credentials({"authorization": f"bearer  {VAULT_KEY} "}).vault_key == VAULT_KEY
    assert ADAPTER.presented_credentials({"authorization": "Bearer "}).vault_key is None


def test_basic_credentials_use_the_username() -> None:
    for userpass in (f"{VAULT_KEY}:", VAULT_KEY, f"{VAULT_KEY}:ignored"):
        header = "Basic " + base64.b64encode(userpass.encode()).decode()
        creds = ADAPTER.presented_credentials({"authorization": header})
        assert creds.vault_key == VAULT_KEY
        assert creds.account is None


@pytest.mark.parametrize(
    "header",
    [
        "",
        "Token abc",
        VAULT_KEY,
        "Basic not-base64!",
        "Basic " + base64.b64encode(b":password").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:").decode(),
        "Basic \u00e9\u00e9\u00e9\u00e9",  # latin-1 bytes in the header, as the ASGI layer decodes them
        "Basic ",
    ],
)
def test_unusable_credentials_give_no_key(header: str) -> None:
    assert ADAPTER.presented_credentials({"authorization": header} if header else {}).vault_key is None


def test_upstream_auth_header() -> None:
    assert ADAPTER.upstream_auth_headers(UpstreamCredential("sk_test_123")) == {"authorization": "Bearer sk_test_123"}


def test_proxy_only_headers_are_not_forwarded() -> None:
    assert "authorization" not in ADAPTER.forward_request_headers
    assert "x-agent-run-id" not in ADAPTER.forward_request_headers
    assert {"idempotency-key", "stripe-account", "stripe-context"} <= ADAPTER.forward_request_headers


# --- parsing requests ------------------------------------------------------------------------


def test_charge_built_by_the_stripe_sdk() -> None:
    body = sdk_form(
        {
            "amount": 2000,
            "currency": "USD",
            "customer": "cus_NffrFeUfNV2Hib",
            "source": "tok_visa",
            "description": "Refill order 6735",
            "metadata": {"order_id": "6735"},
            "expand": ["balance_transaction"],
            "capture": True,
        }
    )
    headers = {
        "authorization": f"Bearer {VAULT_KEY}",
        "idempotency-key": "stripe-python-retry-1234",
        "stripe-account": "acct_1Context",
        "stripe-context": "acct_1Context",
    }
    parsed = parse("POST", "/v1/charges", body, headers=headers)
    assert parsed.method == "POST" and parsed.path == "/v1/charges"
    assert parsed.endpoint == "POST /v1/charges"
    assert parsed.amount_minor == 2000
    assert parsed.currency == "usd"
    assert parsed.customer_id == "cus_NffrFeUfNV2Hib"
    assert parsed.object_id is None
    assert parsed.moves_money is True
    assert parsed.idempotency_key == "stripe-python-retry-1234"
    assert parsed.account == "acct_1Context"  # both name it (two different ones are refused)
    assert parsed.params["metadata"] == {"order_id": "6735"}
    assert parsed.params["expand"] == ["balance_transaction"]
    assert parsed.summary == {"amount": "2000", "currency": "USD", "customer": "cus_NffrFeUfNV2Hib"}
    flat = json.dumps(parsed.summary)
    assert VAULT_KEY not in flat and "tok_visa" not in flat and "6735" not in flat
    assert ADAPTER.estimate_usd(parsed) == Decimal("20.000000")


def test_stripe_account_is_recorded_without_context() -> None:
    parsed = parse("GET", "/v1/balance", headers={"stripe-account": "acct_1Account"})
    assert parsed.account == "acct_1Account"
    assert parse("GET", "/v1/balance").account is None


def test_query_parameters_are_parsed() -> None:
    parsed = parse("GET", "/v1/charges", query=b"customer=cus_1&limit=3&expand[]=data.customer")
    assert parsed.params == {"customer": "cus_1", "limit": "3", "expand": ["data.customer"]}
    assert parsed.customer_id == "cus_1"
    assert parsed.moves_money is False and parsed.amount_minor is None


def test_same_param_in_query_and_body_is_refused() -> None:
    exc = refused("POST", "/v1/charges", b"amount=100&currency=usd", query=b"amount=1")
    assert (exc.reason, exc.param, exc.status) == ("duplicate_parameter", "amount", 400)


def test_different_params_in_query_and_body_are_merged() -> None:
    parsed = parse("POST", "/v1/charges", b"amount=100&currency=usd", query=b"customer=cus_9")
    assert (parsed.amount_minor, parsed.currency, parsed.customer_id) == (100, "usd", "cus_9")


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "multipart/form-data; boundary=x", "text/plain", ""],
)
def test_non_form_body_is_refused(content_type: str) -> None:
    headers = {"content-type": content_type} if content_type else {}
    with pytest.raises(RequestRejected) as info:
        ADAPTER.parse_request("POST", "/v1/charges", b"", headers, b'{"amount": 100}')
    assert info.value.reason == "unsupported_content_type"


def test_form_content_type_with_charset_is_accepted() -> None:
    headers = {"content-type": "Application/X-WWW-Form-URLEncoded; charset=utf-8"}
    assert ADAPTER.parse_request("POST", "/v1/charges", b"", headers, b"amount=5&currency=usd").amount_minor == 5


def test_form_errors_surface_from_the_decoder() -> None:
    assert refused("POST", "/v1/charges", b"amount=1&amount=2").reason == "duplicate_parameter"
    assert refused("GET", "/v1/charges", query=b"limit=%zz").reason == "malformed_form"


@pytest.mark.parametrize(
    "amount",
    ["-100", "1.5", "1e3", "", "abc", " 100", "100 ", "+100", "0x10", str(MAX_AMOUNT_MINOR + 1), "9" * 16,
     "\u00b2", "\u0661\u0662\u0663", "\uff11\uff12"],
)
def test_bad_amounts_are_refused(amount: str) -> None:
    exc = refused("POST", "/v1/charges", b"currency=usd&amount=" + quote(amount).encode())
    assert (exc.reason, exc.param) == ("invalid_amount", "amount")


def test_amount_that_is_not_a_leaf_is_refused() -> None:
    assert refused("POST", "/v1/charges", b"currency=usd&amount[x]=1").reason == "invalid_amount"


def test_amount_boundaries() -> None:
    assert parse("POST", "/v1/charges", b"amount=0&currency=usd").amount_minor == 0
    largest = f"amount={MAX_AMOUNT_MINOR}&currency=usd".encode()
    assert parse("POST", "/v1/charges", largest).amount_minor == MAX_AMOUNT_MINOR
    assert parse("POST", "/v1/charges", b"amount=000000000000042&currency=usd").amount_minor == 42


def test_unknown_currency_is_refused() -> None:
    exc = refused("POST", "/v1/charges", b"amount=100&currency=xyz")
    assert (exc.reason, exc.param) == ("unknown_currency", "currency")
    assert refused("POST", "/v1/charges", b"amount=100&currency=").reason == "unknown_currency"


def test_currency_that_is_not_a_leaf_is_refused() -> None:
    exc = refused("POST", "/v1/charges", b"amount=100&currency[0]=usd")
    assert (exc.reason, exc.param) == ("invalid_parameter", "currency")


def test_customer_that_is_not_a_leaf_is_refused() -> None:
    exc = refused("POST", "/v1/charges", b"amount=100&currency=usd&customer[id]=cus_1")
    assert (exc.reason, exc.param) == ("invalid_parameter", "customer")


def test_empty_customer_counts_as_none() -> None:
    assert parse("POST", "/v1/charges", b"amount=1&currency=usd&customer=").customer_id is None


# --- pricing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "amount, currency, minor_units_per_unit",
    [(2000, "usd", 100), (1500, "jpy", 1), (1500, "JPY", 1), (1000, "kwd", 1000), (999, "eur", 100), (7, "krw", 1),
     (1230, "bhd", 1000)],
)
def test_minor_to_usd_follows_the_currency_exponent(amount: int, currency: str, minor_units_per_unit: int) -> None:
    rate = money.fx_table().usd_per_unit[currency.lower()]
    expected = (Decimal(amount) / minor_units_per_unit * rate).quantize(Decimal("0.000001"))
    assert money.minor_to_usd(amount, currency) == expected == usd(amount, currency)


def test_zero_and_three_decimal_pricing_exactly() -> None:
    rates = money.fx_table().usd_per_unit
    jpy = parse("POST", "/v1/charges", b"amount=1500&currency=jpy")
    assert ADAPTER.estimate_usd(jpy) == (1500 * rates["jpy"]).quantize(Decimal("0.000001"))
    kwd = parse("POST", "/v1/charges", b"amount=1000&currency=kwd")  # 1.000 KWD
    assert ADAPTER.estimate_usd(kwd) == rates["kwd"].quantize(Decimal("0.000001"))
    usd_charge = parse("POST", "/v1/charges", b"amount=1999&currency=usd")
    assert ADAPTER.estimate_usd(usd_charge) == Decimal("19.99")
    for value in (ADAPTER.estimate_usd(jpy), ADAPTER.estimate_usd(kwd)):
        assert isinstance(value, Decimal) and value.as_tuple().exponent == -6


def test_fx_table_is_decimal_and_has_provenance() -> None:
    table = money.fx_table()
    assert table.source and table.as_of
    assert table.usd_per_unit["usd"] == Decimal(1)
    assert all(isinstance(rate, Decimal) and rate > 0 for rate in table.usd_per_unit.values())
    assert set(table.usd_per_unit) >= money.ZERO_DECIMAL | money.THREE_DECIMAL


def test_check_currency() -> None:
    assert money.check_currency("EUR") == "eur"
    with pytest.raises(RequestRejected) as info:
        money.check_currency("zzz")
    assert (info.value.reason, info.value.param) == ("unknown_currency", "currency")


def test_exponent() -> None:
    assert [money.exponent(c) for c in ("usd", "JPY", "kwd", "xof", "tnd", "eur")] == [2, 0, 3, 0, 3, 2]


def test_payment_intent_create_without_confirm_moves_no_money() -> None:
    parsed = parse("POST", "/v1/payment_intents", sdk_form({"amount": 5000, "currency": "usd", "customer": "cus_1"}))
    assert parsed.amount_minor == 5000 and parsed.moves_money is False
    assert ADAPTER.estimate_usd(parsed) == Decimal(0)
    explicit = parse("POST", "/v1/payment_intents", sdk_form({"amount": 5000, "currency": "usd", "confirm": False}))
    assert explicit.moves_money is False


def test_payment_intent_create_with_confirm_moves_money() -> None:
    parsed = parse("POST", "/v1/payment_intents", sdk_form({"amount": 5000, "currency": "usd", "confirm": True}))
    assert parsed.moves_money is True
    assert ADAPTER.estimate_usd(parsed) == Decimal("50.000000")


def test_payment_intent_confirm_moves_money_of_unknown_amount() -> None:
    parsed = parse("POST", "/v1/payment_intents/pi_1/confirm", b"payment_method=pm_card_visa")
    assert parsed.endpoint == "POST /v1/payment_intents/{id}/confirm"
    assert parsed.object_id == "pi_1"
    assert parsed.moves_money is True and parsed.amount_minor is None
    assert ADAPTER.estimate_usd(parsed) is None  # unknown: refused as cost_unknown, unless read first
    lookup = ADAPTER.price_lookup(parsed, None)
    assert lookup == Lookup("/v1/payment_intents/pi_1")
    intent = json.dumps({"id": "pi_1", "object": "payment_intent", "amount": 4200, "currency": "gbp"}).encode()
    assert ADAPTER.estimate_usd(parsed, None, LookedUp(200, intent)) == usd(4200, "gbp")


def test_a_refund_in_its_charges_currency_is_priced_from_the_charge() -> None:
    parsed = parse("POST", "/v1/refunds", b"charge=ch_123&amount=500")
    assert parsed.object_id == "ch_123" and parsed.customer_id is None
    assert parsed.moves_money is True and parsed.currency is None
    assert ADAPTER.estimate_usd(parsed) is None  # 500 of what? Not guessed as USD
    assert ADAPTER.price_lookup(parsed, None) == Lookup("/v1/charges/ch_123")
    charge = json.dumps({"id": "ch_123", "amount": 9000, "amount_refunded": 0, "currency": "jpy"}).encode()
    assert ADAPTER.estimate_usd(parsed, None, LookedUp(200, charge)) == usd(500, "jpy")


def test_a_full_refund_of_a_partly_refunded_charge_moves_the_rest() -> None:
    parsed = parse("POST", "/v1/refunds", b"charge=ch_123", headers={"stripe-account": "acct_1"})
    lookup = ADAPTER.price_lookup(parsed, None)
    assert lookup == Lookup("/v1/charges/ch_123", {"stripe-account": "acct_1"})  # read in the same account
    charge = json.dumps({"id": "ch_123", "amount": 9000, "amount_refunded": 2500, "currency": "usd"}).encode()
    assert ADAPTER.estimate_usd(parsed, None, LookedUp(200, charge)) == usd(6500, "usd")
    for answer in (LookedUp(404, b'{"error": {}}'), LookedUp(0), LookedUp(200, b'{"amount": "9000"}'),
                   LookedUp(200, b'{"amount": true, "currency": "usd"}')):
        assert ADAPTER.estimate_usd(parsed, None, answer) is None  # a read that says nothing prices nothing


def test_a_refund_by_payment_intent_alone_is_priced_at_what_the_intent_received() -> None:
    # An intent does not say what was refunded already: what it received is the most a refund returns.
    parsed = parse("POST", "/v1/refunds", b"payment_intent=pi_9")
    assert parsed.objects == ("pi_9",) and ADAPTER.price_lookup(parsed, None) == Lookup("/v1/payment_intents/pi_9")
    answer = LookedUp(200, b'{"id": "pi_9", "amount": 5000, "amount_received": 4000, "currency": "usd"}', 1.0)
    assert ADAPTER.estimate_usd(parsed, None, answer) == Decimal("40")
    assert ADAPTER.estimate_usd(parsed) is None  # unread, it is not guessed
    assert ADAPTER.price_lookup(parse("POST", "/v1/refunds", b"charge=../balance"), None) is None  # not an id


def test_nothing_is_read_when_the_request_or_the_records_price_it() -> None:
    charge = RecordedObject("ch_1", "charge", amount_minor=5000, currency="eur")
    assert ADAPTER.price_lookup(parse("POST", "/v1/refunds", b"charge=ch_1"), charge) is None
    assert ADAPTER.price_lookup(parse("POST", "/v1/charges", b"amount=100&currency=usd"), None) is None
    assert ADAPTER.price_lookup(parse("GET", "/v1/charges/ch_1"), None) is None


def test_capture_uses_amount_to_capture() -> None:
    parsed = parse("POST", "/v1/payment_intents/pi_1/capture", b"amount_to_capture=750")
    assert (parsed.amount_minor, parsed.moves_money, parsed.object_id) == (750, True, "pi_1")


def test_customer_endpoints_take_the_customer_from_the_path() -> None:
    parsed = parse("GET", "/v1/customers/cus_NffrFeUfNV2Hib")
    assert parsed.customer_id == parsed.object_id == "cus_NffrFeUfNV2Hib"
    assert parsed.moves_money is False


def test_non_money_endpoints_ignore_amount_and_currency() -> None:
    parsed = parse("POST", "/v1/customers", b"amount=abc&currency=xyz&email=a%40b.c")
    assert parsed.moves_money is False and parsed.amount_minor is None and parsed.currency is None
    assert ADAPTER.estimate_usd(parsed) == Decimal(0)


# --- parsing responses -------------------------------------------------------------------------


def _response(request: ParsedRequest, status: int, obj: Any,
              headers: Mapping[str, str] | None = None) -> ParsedResponse:
    body = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return ADAPTER.parse_response(request, status, {"request-id": "req_123", **(headers or {})}, body)


def test_charge_response() -> None:
    request = parse("POST", "/v1/charges", b"amount=2000&currency=eur&customer=cus_1")
    charge = {"id": "ch_3Mml", "object": "charge", "amount": 2000, "currency": "EUR", "customer": "cus_1"}
    result = _response(request, 200, charge)
    assert result == ParsedResponse(
        cost_usd=usd(2000, "eur"), currency="eur", amount_minor=2000, object_id="ch_3Mml", customer_id="cus_1",
        vendor_request_id="req_123",
        created=RecordedObject("ch_3Mml", "charge", customer_id="cus_1", amount_minor=2000, currency="eur"),
        revealed_customers=("cus_1",), settles_later=True,  # a conversion: its balance transaction settles it
    )


def test_charge_response_with_expanded_customer() -> None:
    request = parse("POST", "/v1/charges", b"amount=100&currency=usd")
    charge = {"id": "ch_1", "amount": 100, "currency": "usd", "customer": {"id": "cus_X", "object": "customer"}}
    assert _response(request, 200, charge).customer_id == "cus_X"


def test_refund_response() -> None:
    request = parse("POST", "/v1/refunds", b"charge=ch_1&amount=500")
    refund = {"id": "re_1", "object": "refund", "amount": 500, "currency": "jpy", "charge": "ch_1"}
    result = _response(request, 200, refund)
    assert (result.cost_usd, result.currency, result.amount_minor, result.object_id) == (
        usd(500, "jpy"), "jpy", 500, "re_1")


def test_payment_intent_confirm_response_uses_amount_received() -> None:
    request = parse("POST", "/v1/payment_intents/pi_1/confirm")
    pi = {"id": "pi_1", "object": "payment_intent", "amount": 9000, "amount_received": 4000, "currency": "usd"}
    assert _response(request, 200, pi).cost_usd == Decimal("40.000000")


def test_customer_response() -> None:
    request = parse("POST", "/v1/customers", b"email=a%40b.c")
    result = _response(request, 200, {"id": "cus_New1", "object": "customer"})
    assert result == ParsedResponse(Decimal(0), object_id="cus_New1", customer_id="cus_New1",
                                    vendor_request_id="req_123",
                                    created=RecordedObject("cus_New1", "customer", customer_id="cus_New1"),
                                    revealed_customers=("cus_New1",))


def test_reads_and_updates_create_nothing() -> None:
    retrieve = parse("GET", "/v1/charges/ch_1")
    update = parse("POST", "/v1/customers/cus_1", b"email=a%40b.c")
    assert _response(retrieve, 200, {"id": "ch_1", "object": "charge", "amount": 5}).created is None
    assert _response(update, 200, {"id": "cus_1", "object": "customer"}).created is None


def test_a_full_refund_is_estimated_from_the_recorded_charge() -> None:
    refund = parse("POST", "/v1/refunds", b"charge=ch_1")
    charge = RecordedObject("ch_1", "charge", customer_id="cus_1", amount_minor=5000, currency="eur")
    assert refund.object_id == "ch_1" and refund.amount_minor is None
    assert ADAPTER.estimate_usd(refund, charge) == usd(5000, "eur")
    assert ADAPTER.estimate_usd(parse("POST", "/v1/refunds", b"charge=ch_1&amount=100"), charge) == usd(100, "eur")
    assert ADAPTER.estimate_usd(refund) is None  # an unknown charge: nothing to predict from


@pytest.mark.parametrize("status", [400, 401, 402, 404, 409, 429])  # 5xx: tests/test_stripe_outcomes.py
def test_error_status_costs_nothing(status: int) -> None:
    request = parse("POST", "/v1/charges", b"amount=2000&currency=usd")
    body = {"error": {"type": "card_error", "amount": 2000, "currency": "usd"}, "amount": 2000, "currency": "usd"}
    assert _response(request, status, body) == ParsedResponse(cost_usd=Decimal(0), vendor_request_id="req_123")


@pytest.mark.parametrize("body", [b"", b"<html>502 Bad Gateway</html>", b"\xff\xfe\x00", b"[1,2]", b"null", b'"x"'])
def test_non_json_or_non_object_body_does_not_crash(body: bytes) -> None:
    money_request = parse("POST", "/v1/charges", b"amount=2000&currency=usd")
    assert _response(money_request, 200, body) == ParsedResponse(None, vendor_request_id="req_123")
    plain_request = parse("GET", "/v1/balance")
    assert _response(plain_request, 200, body) == ParsedResponse(Decimal(0), vendor_request_id="req_123")


@pytest.mark.parametrize(
    "obj",
    [
        {"id": "ch_1", "amount": "2000", "currency": "usd"},
        {"id": "ch_1", "amount": 2000},
        {"id": "ch_1", "amount": 2000, "currency": "xyz"},
        {"id": "ch_1", "amount": 20.5, "currency": "usd"},
        {"id": "ch_1", "amount": True, "currency": "usd"},
        {"id": "ch_1", "amount": -2000, "currency": "usd"},
        {"id": "ch_1", "amount": 10**30, "currency": "usd"},
    ],
)
def test_unpriceable_money_response_leaves_the_estimate(obj: dict[str, Any]) -> None:
    request = parse("POST", "/v1/charges", b"amount=2000&currency=usd")
    result = _response(request, 200, obj)
    assert result.cost_usd is None and result.amount_minor is None
    assert result.object_id == "ch_1"


def test_deeply_nested_json_does_not_crash() -> None:
    request = parse("POST", "/v1/charges", b"amount=2000&currency=usd")
    assert _response(request, 200, b"[" * 100_000).cost_usd is None
    assert _response(request, 200, b'{"a":' * 100_000).cost_usd is None


def test_non_string_ids_are_not_reported() -> None:
    request = parse("POST", "/v1/customers")
    result = _response(request, 200, {"id": 42, "object": "customer"})
    assert result.object_id is None and result.customer_id is None


def test_idempotent_replay_costs_nothing() -> None:
    request = parse("POST", "/v1/charges", b"amount=2000&currency=usd")
    charge = {"id": "ch_1", "amount": 2000, "currency": "usd", "customer": "cus_1"}
    result = _response(request, 200, charge, {"idempotent-replayed": "true"})
    assert result.cost_usd == Decimal(0) and result.replayed is True
    assert (result.object_id, result.customer_id) == ("ch_1", "cus_1")


# --- errors as stripe-python reads them -----------------------------------------------------------


def stripe_python_raises(status: int, headers: Mapping[str, str], body: bytes) -> stripe.StripeError:
    """Feed a response through stripe-python's own response handling (v1 API mode)."""
    with pytest.raises(stripe.StripeError) as info:
        _APIRequestor()._interpret_response(body, status, headers, "V1")
    return info.value


@pytest.mark.parametrize(
    "error, exception",
    [
        (VendorError(401, "invalid_secret", "Invalid API key.", "auth"), stripe.AuthenticationError),
        (VendorError(403, "endpoint_not_allowed", "Endpoint POST /v1/payouts is not allowed."), stripe.PermissionError),
        (VendorError(400, "invalid_amount", "Bad amount.", "invalid_request", param="amount"),
         stripe.InvalidRequestError),
        (VendorError(404, "invalid_path", "No such path.", "not_found"), stripe.InvalidRequestError),
        (VendorError(503, "database_unavailable", "Try later.", "unavailable", retryable=True), stripe.APIError),
        (VendorError(429, "cap_exceeded", "Slow down."), stripe.RateLimitError),
    ],
)
def test_render_error_maps_to_the_right_stripe_exception(error: VendorError, exception: type) -> None:
    rendered = ADAPTER.render_error(error)
    assert rendered.status == error.status
    assert rendered.headers["content-type"] == "application/json"
    exc = stripe_python_raises(rendered.status, rendered.headers, rendered.body)
    assert type(exc) is exception
    assert exc.http_status == error.status
    assert exc.user_message == error.message
    assert exc.json_body["error"]["code"] == error.reason
    if isinstance(exc, stripe.InvalidRequestError):
        assert exc.code == error.reason  # stripe-python copies code (and param) onto these only
    payload = json.loads(rendered.body)["error"]
    assert payload["type"] == ("api_error" if error.kind == "unavailable" else "invalid_request_error")
    assert payload["code"] == error.reason and payload["message"] == error.message


def test_invalid_request_error_carries_param() -> None:
    rendered = ADAPTER.render_error(
        VendorError(400, "duplicate_parameter", "Twice.", "invalid_request", param="amount"))
    exc = stripe_python_raises(rendered.status, rendered.headers, rendered.body)
    assert isinstance(exc, stripe.InvalidRequestError)
    assert exc.param == "amount"
    assert "param" not in json.loads(ADAPTER.render_error(VendorError(400, "x", "y")).body)["error"]


def test_policy_refusals_tell_the_sdk_not_to_retry() -> None:
    client = HTTPClient()
    for status in (400, 401, 403, 409, 503):
        rendered = ADAPTER.render_error(VendorError(status, "blocked", "No."))
        assert rendered.headers["stripe-should-retry"] == "false"
        assert client._should_retry((rendered.body, status, rendered.headers), None, 0, 5) is False
    retryable = ADAPTER.render_error(VendorError(503, "database_unavailable", "Later.", "unavailable", retryable=True))
    assert retryable.headers["stripe-should-retry"] == "true"
    assert client._should_retry((retryable.body, 503, retryable.headers), None, 0, 5) is True


def test_request_id_header() -> None:
    rendered = ADAPTER.render_error(VendorError(403, "blocked", "No.", request_id="tg_req_1"))
    assert rendered.headers["request-id"] == "tg_req_1"
    exc = stripe_python_raises(rendered.status, rendered.headers, rendered.body)
    assert exc.request_id == "tg_req_1"
    assert "request-id" not in ADAPTER.render_error(VendorError(403, "blocked", "No.")).headers


# --- properties ------------------------------------------------------------------------------

KEYS = st.sampled_from(
    ["amount", "currency", "customer", "charge", "confirm", "amount_to_capture", "metadata[k]", "expand[]", "expand[0]",
     "amount[x]", "currency[0]", "customer[id]", "description", "a", "%61mount"]
)
VALUES = st.one_of(
    st.sampled_from(["100", "0", "-1", "1.5", "99999999999", "999999999999", "\u00b2", "\u0661", "usd", "USD", "jpy",
                     "kwd", "xyz", "", "true", "cus_1", "ch_1"]),
    st.text(max_size=12),
)
FORMS = st.one_of(
    st.dictionaries(KEYS, VALUES, max_size=5).map(lambda d: "&".join(f"{k}={quote(v)}" for k, v in d.items()).encode()),
    st.lists(st.tuples(KEYS, VALUES), max_size=6).map(
        lambda pairs: "&".join(f"{k}={quote(v)}" for k, v in pairs).encode()
    ),
    st.binary(max_size=64),
)
PATHS = st.one_of(
    st.sampled_from(["/v1/charges", "/v1/refunds", "/v1/payment_intents", "/v1/payment_intents/pi_1/confirm",
                     "/v1/payment_intents/pi_1/capture", "/v1/customers/cus_1", "/v1/charges/ch_1/capture",
                     "/v1/payouts", "/v1/transfers", "/v1/balance", "/v1/subscriptions/sub_1A"]),
    st.text(max_size=30),
)
HEADERS = st.fixed_dictionaries(
    {},
    optional={
        "content-type": st.sampled_from(["application/x-www-form-urlencoded", "application/json", ""]),
        "idempotency-key": st.text(max_size=10),
        "stripe-account": st.text(max_size=10),
        "stripe-context": st.text(max_size=10),
        "authorization": st.text(max_size=20),
    },
)


@PROPERTY
@given(st.sampled_from(["GET", "POST", "DELETE", "PUT", "get"]), PATHS, FORMS, HEADERS, FORMS)
def test_parse_request_returns_facts_or_refuses(method: str, path: str, query: bytes, headers: dict[str, str],
                                                body: bytes) -> None:
    try:
        parsed = ADAPTER.parse_request(method, path, query, headers, body)
    except RequestRejected as exc:
        assert exc.reason and exc.message and exc.status in {400, 401, 404, 413, 414}
        return
    assert isinstance(parsed, ParsedRequest)
    assert parsed.amount_minor is None or (
        type(parsed.amount_minor) is int and 0 <= parsed.amount_minor <= MAX_AMOUNT_MINOR)
    assert parsed.currency is None or parsed.currency in money.fx_table().usd_per_unit
    assert parsed.customer_id is None or isinstance(parsed.customer_id, str)
    assert parsed.object_id is None or isinstance(parsed.object_id, str)
    assert all(isinstance(v, str) for v in parsed.summary.values())
    estimate = ADAPTER.estimate_usd(parsed)
    assert (isinstance(estimate, Decimal) and estimate >= 0) or (estimate is None and parsed.moves_money)


@PROPERTY
@given(st.sampled_from(["GET", "POST", "DELETE", "PUT", "get"]), PATHS, HEADERS)
def test_presented_credentials_never_raise(method: str, path: str, headers: dict[str, str]) -> None:
    creds = ADAPTER.presented_credentials(headers)
    assert creds.vault_key is None or (isinstance(creds.vault_key, str) and creds.vault_key)


JSON_LEAF = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**40), max_value=10**40), st.floats(allow_nan=False),
    st.text(max_size=8), st.sampled_from(["usd", "JPY", "kwd", "xyz", "customer", "charge", "ch_1", "cus_1"]),
)
JSON_KEYS = st.sampled_from(
    ["id", "object", "amount", "amount_received", "amount_captured", "currency", "customer", "error", "x"]
)
JSON_OBJECTS = st.recursive(
    JSON_LEAF, lambda inner: st.dictionaries(JSON_KEYS, inner, max_size=6) | st.lists(inner, max_size=3), max_leaves=20
)
# Shaped like a Stripe object, so that the pricing path is reached often.
AMOUNTS = st.one_of(st.integers(min_value=-(10**40), max_value=10**40), st.booleans(), st.floats(allow_nan=False),
                    st.sampled_from([0, 1, 2000, MAX_AMOUNT_MINOR, MAX_AMOUNT_MINOR + 1, -1, 10**30]))
STRIPE_OBJECTS = st.fixed_dictionaries(
    {"currency": st.sampled_from(["usd", "JPY", "kwd", "xyz", 5, None])},
    optional={"id": JSON_LEAF, "object": st.sampled_from(["charge", "customer", "refund", 1]), "amount": AMOUNTS,
              "amount_received": AMOUNTS, "amount_captured": AMOUNTS, "customer": JSON_OBJECTS},
)
REQUESTS = [
    parse("POST", "/v1/charges", b"amount=2000&currency=usd"),
    parse("POST", "/v1/refunds", b"charge=ch_1"),
    parse("POST", "/v1/payment_intents/pi_1/confirm"),
    parse("POST", "/v1/charges/ch_1/capture"),
    parse("GET", "/v1/customers/cus_1"),
    parse("GET", "/v1/subscriptions/sub_1A"),
]


@PROPERTY
@given(
    st.sampled_from(REQUESTS),
    st.one_of(st.sampled_from([200, 201, 204, 302, 400, 402, 500]), st.integers(min_value=0, max_value=999)),
    st.fixed_dictionaries({}, optional={"request-id": st.text(max_size=8),
                                        "idempotent-replayed": st.sampled_from(["true", "false"])}),
    st.one_of(st.binary(max_size=128), st.one_of(JSON_OBJECTS, STRIPE_OBJECTS).map(lambda o: json.dumps(o).encode())),
)
def test_parse_response_never_raises(request: ParsedRequest, status: int, headers: dict[str, str], body: bytes) -> None:
    result = ADAPTER.parse_response(request, status, headers, body)
    assert isinstance(result, ParsedResponse)
    assert result.cost_usd is None or (isinstance(result.cost_usd, Decimal) and result.cost_usd >= 0)
    assert result.amount_minor is None or type(result.amount_minor) is int
    for text in (result.currency, result.object_id, result.customer_id, result.vendor_request_id):
        assert text is None or isinstance(text, str)
    if status >= 400:  # nothing moved, or (a 5xx on a money call) nobody knows yet
        assert result.cost_usd == Decimal(0) or (result.uncertain and status >= 500 and request.moves_money)


@PROPERTY
@given(
    st.sampled_from(["/v1/charges", "/v1/refunds", "/v1/payment_intents", "/v1/payment_intents/pi_1/capture",
                     "/v1/charges/ch_1/capture", "/v1/payouts", "/v1/transfers"]),
    FORMS,
)
def test_money_endpoints_price_exactly_or_refuse(path: str, body: bytes) -> None:
    try:
        parsed = ADAPTER.parse_request("POST", path, b"", dict(FORM), body)
    except RequestRejected as exc:
        assert exc.reason in {"malformed_form", "invalid_utf8", "duplicate_parameter", "ambiguous_parameter",
                              "invalid_amount", "unknown_currency", "invalid_parameter"}
        return
    estimate = ADAPTER.estimate_usd(parsed)
    if not parsed.moves_money:
        assert estimate == Decimal(0)
    elif parsed.amount_minor is not None and parsed.currency is not None:
        assert estimate == usd(parsed.amount_minor, parsed.currency)
    else:
        assert estimate is None  # never a guess


def test_two_connect_headers_naming_two_accounts_are_refused() -> None:
    same = parse("GET", "/v1/balance", headers={"stripe-account": "acct_1", "stripe-context": "acct_1"})
    assert same.account == "acct_1"
    with pytest.raises(RequestRejected) as refused:
        parse("GET", "/v1/balance", headers={"stripe-account": "acct_OTHER", "stripe-context": "acct_1"})
    assert (refused.value.reason, refused.value.status) == ("account_mismatch", 401)
