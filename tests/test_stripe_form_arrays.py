"""Form arrays in the Stripe adapter (issue 16, guarantee 9): stripe-python indexes every array
(``_encode.py``: ``a[0]=x``, ``a[0][b]=y``), the catalogue names array elements ``a[][b]``, and every
object named inside an array is one the scope check sees. Pure, no I/O; end to end in
tests/test_e2e_stripe_form_arrays.py."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulators._stripe_params import FormDecodeError, decode_query
from tests.test_formencoding import stripe_python_form
from vendors.base import RequestRejected
from vendors.formencoding import decode
from vendors.stripe.adapter import StripeAdapter

FORM = {"content-type": "application/x-www-form-urlencoded"}
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parse(path: str, body: bytes) -> Any:
    return StripeAdapter().parse_request("POST", path, b"", FORM, body)


def refused(path: str, body: bytes) -> RequestRejected:
    with pytest.raises(RequestRejected) as info:
        parse(path, body)
    return info.value


def test_an_object_named_only_inside_an_array_is_one_the_call_names() -> None:
    credit_note = stripe_python_form({"invoice": "in_1", "amount": 100,
                                      "refunds": [{"refund": "re_mine", "amount_refunded": 50},
                                                  {"refund": "re_theirs", "amount_refunded": 50}]})
    assert parse("/v1/credit_notes", credit_note).objects == ("re_mine", "re_theirs")
    alert = stripe_python_form({"alert_type": "usage_threshold", "title": "t", "usage_threshold": {
        "gte": 1, "meter": "mtr_1", "filters": [{"type": "customer", "customer": "cus_theirs"}]}})
    assert parse("/v1/billing/alerts", alert).objects == ("cus_theirs",)


def test_default_tax_rates_as_stripe_python_sends_them_are_an_array_of_ids() -> None:
    body = stripe_python_form({"customer": "cus_1", "items": [{"price": "price_1"}],
                               "default_tax_rates": ["txr_1", "txr_2"]})
    assert b"default_tax_rates[0]=txr_1&default_tax_rates[1]=txr_2" in body
    request = parse("/v1/subscriptions", body)
    assert request.params["default_tax_rates"] == ["txr_1", "txr_2"]
    assert request.customer_id == "cus_1"


def test_a_form_array_and_a_json_array_read_alike() -> None:
    assert decode(b"items[0][price]=p&items[1][price]=q&expand[]=a&expand[]=b") == {
        "items": [{"price": "p"}, {"price": "q"}], "expand": ["a", "b"]}


@pytest.mark.parametrize("body", [
    b"refunds[0][refund]=re_a&refunds[2][refund]=re_b",  # a gap: Stripe might read two elements
    b"refunds[1][refund]=re_b",
    b"refunds[0][refund]=re_a&refunds[00][refund]=re_b",  # two spellings of index 0
    b"refunds[0][refund]=re_a&refunds[x][refund]=re_b",  # an index and a name
])
def test_an_array_that_could_hold_other_elements_than_we_read_is_refused(body: bytes) -> None:
    exc = refused("/v1/credit_notes", body)
    assert (exc.reason, exc.param, exc.endpoint) == ("ambiguous_parameter", "refunds", "POST /v1/credit_notes")


def test_appended_elements_with_more_than_one_field_are_refused() -> None:
    # Rack reads ``[][price]`` then ``[][quantity]`` as one element; a counting reader as two.
    assert refused("/v1/credit_notes", b"refunds[][refund]=re_a&refunds[][amount_refunded]=1").reason == (
        "ambiguous_parameter")


def test_a_hash_with_numeric_keys_is_still_a_hash() -> None:
    assert decode(b"metadata[7]=x&metadata[0]=y") == {"metadata": {"7": "x", "0": "y"}}
    assert decode(b"metadata[0]=y") == {"metadata": ["y"]}  # read by nothing: no decision rests on it


# --- property: nothing named in an array escapes, and two readers read alike -------------

INDEX = st.sampled_from(["", "0", "1", "2", "00", "01", "x"])
IDS = st.sampled_from(["re_a", "re_b", "re_c", "ch_a"])
FIELD = st.sampled_from(["refund", "amount_refunded"])


def _spelled(key: str, encode: bool) -> str:
    return quote(key, safe="") if encode else key


@st.composite
def array_forms(draw: st.DrawFn) -> bytes:
    pairs = draw(st.lists(st.tuples(INDEX, FIELD, IDS, st.booleans()), min_size=1, max_size=5))
    parts = [f"{_spelled(f'refunds[{index}][{field}]', encode)}={value}" for index, field, value, encode in pairs]
    return "&".join(["invoice=in_1", "amount=1", *parts]).encode()


def _named_by_stripe(tree: dict[str, Any]) -> set[str]:
    refunds = tree.get("refunds")
    items = refunds if isinstance(refunds, list) else list(refunds.values()) if isinstance(refunds, dict) else []
    return {item["refund"] for item in items if isinstance(item, dict) and isinstance(item.get("refund"), str)}


@PROPERTY
@given(array_forms())
def test_every_refund_an_accepted_credit_note_names_is_checked(body: bytes) -> None:
    try:
        request = parse("/v1/credit_notes", body)
    except RequestRejected as exc:
        assert exc.reason in {"ambiguous_parameter", "duplicate_parameter", "invalid_parameter", "invalid_amount"}
        return
    try:
        theirs = decode_query(body)  # the emulator's Rack-style reading, written apart from the adapter
    except FormDecodeError:
        pytest.fail(f"accepted a form Stripe's reader cannot read: {body!r}")
    assert theirs == decode(body)
    assert _named_by_stripe(theirs) <= set(request.objects)
