"""Stripe's currency table (vendors/stripe/currencies.json) and the code that reads it agree:
every presentment currency Stripe publishes is known, with its exponent and its special cases,
and "Stripe takes it" stays apart from "Tollgate has a USD rate for it"."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tests.test_stripe_adapter import ADAPTER, parse, refused
from vendors import money
from vendors.base import RequestRejected

TABLE = json.loads(money.CURRENCIES_FILE.read_text())


def test_the_table_is_stripes_list_with_provenance_and_sane_exponents() -> None:
    assert "https://docs.stripe.com/currencies" in TABLE["source"] and TABLE["read_on"]
    codes = TABLE["currencies"]
    assert len(codes) >= 135 and all(len(c) == 3 and c.islower() for c in codes)
    assert set(codes.values()) <= {0, 2, 3}
    assert {c for c, e in codes.items() if e == 0} == set(TABLE["zero_decimal"]) == money.ZERO_DECIMAL
    assert {c for c, e in codes.items() if e == 3} == set(TABLE["three_decimal"]) == money.THREE_DECIMAL
    assert set(money.fx_table().usd_per_unit) <= set(codes)  # every rate is for a currency Stripe takes
    assert "hrk" not in codes  # Stripe stopped accepting HRK with the euro


def test_every_special_case_is_enforced_as_written() -> None:
    for case in TABLE["special_cases"]:
        assert case["currency"] in TABLE["currencies"] and case["stripe_says"]
        endpoint = "POST /v1/charges" if case["endpoints"] == "*" else case["endpoints"][0]
        path = endpoint.split(" ")[1]
        good, bad = case["multiple_of"] * 7, case["multiple_of"] * 7 + 1
        assert parse("POST", path, f"amount={good}&currency={case['currency']}".encode()).amount_minor == good
        exc = refused("POST", path, f"amount={bad}&currency={case['currency']}".encode())
        assert (exc.reason, exc.param) == ("invalid_amount", "amount")
        assert f"multiple of {case['multiple_of']}" in str(exc) and case["stripe_says"] in str(exc)


@pytest.mark.parametrize("body", [b"amount=150&currency=isk", b"amount=1050&currency=ugx", b"amount=1005&currency=kwd"])
def test_fractions_stripe_forbids_are_refused_on_any_endpoint(body: bytes) -> None:
    assert refused("POST", "/v1/payment_intents", body).reason == "invalid_amount"


def test_huf_and_twd_fractions_are_charges_but_not_payouts() -> None:
    for currency in ("huf", "twd"):
        assert parse("POST", "/v1/charges", f"amount=1045&currency={currency}".encode()).amount_minor == 1045
        assert refused("POST", "/v1/payouts", f"amount=1045&currency={currency}".encode()).reason == "invalid_amount"
        assert parse("POST", "/v1/payouts", f"amount=1000&currency={currency}".encode()).amount_minor == 1000


def test_ugx_is_two_decimal_as_stripes_special_case_says() -> None:
    """Stripe: "to charge 5 UGX, provide an amount value of 500" (it was priced as 500 UGX)."""
    assert money.exponent("ugx") == 2 and money.exponent("isk") == 2
    five_ugx = parse("POST", "/v1/charges", b"amount=500&currency=ugx")
    assert ADAPTER.estimate_usd(five_ugx) == (5 * money.fx_table().usd_per_unit["ugx"]).quantize(money.MICRO)


def test_a_supported_currency_without_a_rate_is_unpriced_not_unknown() -> None:
    assert not money.has_rate("mmk")
    request = parse("POST", "/v1/charges", b"amount=1000&currency=mmk")
    assert request.currency == "mmk" and ADAPTER.estimate_usd(request) is None
    assert request.unpriced and "MMK" in request.unpriced and money.RATES_WHERE in request.unpriced


def test_an_unsupported_currency_says_how_many_are_known_and_where() -> None:
    with pytest.raises(RequestRejected) as info:
        money.check_currency("xyz")
    message = str(info.value)
    assert info.value.reason == "unknown_currency" and "'xyz'" in message
    assert str(len(TABLE["currencies"])) in message and money.CURRENCIES_WHERE in message


def test_exponents_price_zero_and_three_decimal_currencies() -> None:
    rates = money.fx_table().usd_per_unit
    assert money.minor_to_usd(1500, "jpy") == (1500 * rates["jpy"]).quantize(money.MICRO)
    assert money.minor_to_usd(1230, "bhd") == (Decimal("1.230") * rates["bhd"]).quantize(money.MICRO)
