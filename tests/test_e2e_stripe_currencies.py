"""Currencies through stripe-python against the emulator: a currency Stripe takes but Tollgate has
no USD rate for never reaches Stripe (unless the policy opts in), one Stripe does not take is
refused with where the table lives, and zero- and three-decimal currencies are priced right."""

from __future__ import annotations

from decimal import Decimal

import pytest
import stripe

from tests.support.tollgate import audit_rows
from vendors import money

POLICY = {"vendor": "stripe", "endpoints": {"allow": ["POST /v1/charges"]},
          "caps": [{"usd": "10000.00", "window": "day"}]}


def client_for(proxy_url: str, key: str) -> stripe.StripeClient:
    return stripe.StripeClient(key, base_addresses={"api": f"{proxy_url}/stripe"}, max_network_retries=0)


def run(run_id: str) -> dict:
    return {"headers": {"X-Agent-Run-Id": run_id}}


def test_a_supported_currency_without_a_rate_is_refused_before_stripe_sees_it(
        make_key, proxy_url, sql, run_id, stripe_emulator):
    assert not money.has_rate("mmk")
    client = client_for(proxy_url, make_key(POLICY)["key"])
    received = len(stripe_emulator[1].state.received)
    with pytest.raises(stripe.PermissionError) as refused:
        client.v1.charges.create(params={"amount": 5000, "currency": "mmk", "source": "tok_visa"}, options=run(run_id))
    message = str(refused.value.user_message)
    assert refused.value.error.code == "cost_unknown"
    assert "MMK" in message and "vendors/pricing/fx_usd.json" in message and "priced_after" in message
    assert len(stripe_emulator[1].state.received) == received
    [row] = audit_rows(sql, run_id)
    assert (row["decision"], row["reason"], row["endpoint"]) == ("blocked", "cost_unknown", "POST /v1/charges")


def test_a_rateless_currency_is_forwarded_when_the_policy_opts_in(make_key, proxy_url, sql, run_id, stripe_emulator):
    policy = {**POLICY, "endpoints": {"allow": ["POST /v1/charges"], "priced_after": ["POST /v1/charges"]}}
    client = client_for(proxy_url, make_key(policy)["key"])
    client.v1.charges.create(params={"amount": 5000, "currency": "mmk", "source": "tok_visa"}, options=run(run_id))
    assert stripe_emulator[1].state.received[-1].path == "/v1/charges"
    [row] = audit_rows(sql, run_id)
    assert (row["decision"], row["currency"]) == ("allowed", "mmk")


def test_an_unsupported_currency_names_the_table(make_key, proxy_url, sql, run_id, stripe_emulator):
    client = client_for(proxy_url, make_key(POLICY)["key"])
    received = len(stripe_emulator[1].state.received)
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.charges.create(params={"amount": 100, "currency": "xyz", "source": "tok_visa"}, options=run(run_id))
    message = str(refused.value.user_message)
    assert refused.value.error.code == "unknown_currency" and refused.value.param == "currency"
    assert "139 presentment currencies" in message and "vendors/stripe/currencies.json" in message
    assert len(stripe_emulator[1].state.received) == received


@pytest.mark.parametrize("amount, currency, major", [(1500, "jpy", "1500"), (12340, "kwd", "12.340"),
                                                     (1045, "huf", "10.45"), (50000, "ugx", "500.00")])
def test_zero_and_three_decimal_currencies_are_priced_right(make_key, proxy_url, sql, run_id, amount, currency,
                                                            major):
    client = client_for(proxy_url, make_key(POLICY)["key"])
    client.v1.charges.create(params={"amount": amount, "currency": currency, "source": "tok_visa"},
                             options=run(run_id))
    expected = (Decimal(major) * money.fx_table().usd_per_unit[currency]).quantize(money.MICRO)
    [row] = audit_rows(sql, run_id)
    assert (row["predicted_usd"], row["cost_usd"], row["currency"]) == (expected, expected, currency)


def test_an_isk_fraction_is_refused_with_stripes_words(make_key, proxy_url, sql, run_id):
    client = client_for(proxy_url, make_key(POLICY)["key"])
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.charges.create(params={"amount": 150, "currency": "isk", "source": "tok_visa"}, options=run(run_id))
    assert refused.value.error.code == "invalid_amount" and "You can't charge fractions of ISK" in str(
        refused.value.user_message)
    [row] = audit_rows(sql, run_id)
    assert (row["reason"], row["endpoint"]) == ("invalid_amount", "POST /v1/charges")
