"""Every money-moving Stripe endpoint through the proxy: predicted from the request where
the request says, priced from Stripe's answer always."""

from __future__ import annotations

from decimal import Decimal

import pytest
import stripe

from tests.support.tollgate import audit_rows

MONEY_POLICY = {
    "vendor": "stripe",
    "endpoints": {"allow": [
        "POST /v1/charges", "POST /v1/refunds", "POST /v1/payment_intents", "POST /v1/payment_intents/*/confirm",
        "POST /v1/payment_intents/*/capture", "POST /v1/payouts", "POST /v1/transfers",
    ]},
    "caps": [{"usd": "10000.00", "window": "day"}],
}


@pytest.fixture()
def client(proxy_url, make_key):
    key = make_key(MONEY_POLICY)
    return stripe.StripeClient(key["key"], base_addresses={"api": f"{proxy_url}/stripe"}, max_network_retries=0)


def run(run_id: str, **extra) -> dict:
    return {"headers": {"X-Agent-Run-Id": run_id}, **extra}


def facts(sql, run_id: str) -> list[tuple]:
    return [(r["endpoint"], r["predicted_usd"], r["cost_usd"], r["cost_source"], r["currency"])
            for r in audit_rows(sql, run_id)]


def test_partial_then_full_refund(client, sql, run_id):
    charge = client.v1.charges.create(params={"amount": 5000, "currency": "eur", "source": "tok_visa"},
                                      options=run(run_id))
    client.v1.refunds.create(params={"charge": charge.id, "amount": 1500}, options=run(run_id))
    client.v1.refunds.create(params={"charge": charge.id}, options=run(run_id))  # the rest: 35.00 EUR
    rows = audit_rows(sql, run_id)
    assert facts(sql, run_id) == [
        # Converted at the reference rate: an estimate until Stripe's balance transaction settles it
        # (tests/test_stripe_settlement.py), a refund's by its own (the refund's, not the charge's).
        ("POST /v1/charges", Decimal("54"), Decimal("54"), "estimated", "eur"),
        # A refund names no currency: it is the recorded charge's, EUR.
        ("POST /v1/refunds", Decimal("16.2"), Decimal("16.2"), "estimated", "eur"),
        # A full refund names no amount: predicted at the whole recorded charge (50.00 EUR, the
        # most it can be), priced at what Stripe refunded (the remaining 35.00 EUR).
        ("POST /v1/refunds", Decimal("54"), Decimal("37.8"), "estimated", "eur"),
    ]
    assert rows[1]["object_id"] == rows[2]["object_id"] == charge.id


def test_payment_intent_confirm_and_capture(client, sql, run_id):
    intent = client.v1.payment_intents.create(
        params={"amount": 2000, "currency": "usd", "payment_method": "pm_card_visa", "capture_method": "manual"},
        options=run(run_id))
    client.v1.payment_intents.confirm(intent.id, options=run(run_id))
    captured = client.v1.payment_intents.capture(intent.id, params={"amount_to_capture": 1500}, options=run(run_id))
    assert captured.amount_received == 1500
    assert facts(sql, run_id) == [
        ("POST /v1/payment_intents", Decimal("0"), Decimal("0"), "parsed", "usd"),  # not confirmed: no money yet
        # Confirm names no amount: predicted from the recorded intent; with manual capture nothing moved yet.
        ("POST /v1/payment_intents/{id}/confirm", Decimal("20"), Decimal("0"), "parsed", "usd"),
        ("POST /v1/payment_intents/{id}/capture", Decimal("15"), Decimal("15"), "parsed", "usd"),
    ]


def test_payouts_and_transfers(client, sql, run_id):
    client.v1.payouts.create(params={"amount": 10000, "currency": "usd"}, options=run(run_id))
    client.v1.transfers.create(params={"amount": 2500, "currency": "gbp", "destination": "acct_1032D82eZvKYlo2C"},
                               options=run(run_id))
    assert facts(sql, run_id) == [
        ("POST /v1/payouts", Decimal("100"), Decimal("100"), "parsed", "usd"),
        ("POST /v1/transfers", Decimal("31.75"), Decimal("31.75"), "parsed", "gbp"),
    ]


def test_connected_account_header_is_passed_through_and_recorded(client, sql, run_id, stripe_emulator):
    client.v1.charges.create(params={"amount": 700, "currency": "usd", "source": "tok_visa"},
                             options=run(run_id, stripe_account="acct_1032D82eZvKYlo2C"))
    [row] = audit_rows(sql, run_id)
    assert row["vendor_account"] == "acct_1032D82eZvKYlo2C"
    assert stripe_emulator[1].state.received[-1].headers["stripe-account"] == "acct_1032D82eZvKYlo2C"


def test_an_idempotent_replay_is_not_counted_twice(client, sql, run_id, stripe_emulator):
    params = {"amount": 4200, "currency": "usd", "source": "tok_visa"}
    first = client.v1.charges.create(params=params, options=run(run_id, idempotency_key="order-42"))
    again = client.v1.charges.create(params=params, options=run(run_id, idempotency_key="order-42"))
    assert first.id == again.id
    rows = audit_rows(sql, run_id)
    assert [(r["idempotency_key"], r["cost_usd"], r["reason"]) for r in rows] == [
        ("order-42", Decimal("42"), None),
        ("order-42", Decimal("0"), "idempotent_replay"),
    ]


# Money a call names no amount for, on an object this key did not create: read from Stripe first
# (a GET with the key's secret, before the gate), or refused (DESIGN.md guarantee 8).

def _other_keys_charge(make_key, proxy_url: str, amount: int, currency: str = "usd") -> str:
    other = make_key(MONEY_POLICY)
    client = stripe.StripeClient(other["key"], base_addresses={"api": f"{proxy_url}/stripe"}, max_network_retries=0)
    return client.v1.charges.create(params={"amount": amount, "currency": currency, "source": "tok_visa"}).id


def _limited_client(make_key, proxy_url: str, **policy_fields) -> stripe.StripeClient:
    key = make_key({**MONEY_POLICY, "per_call_usd": "50.00", **policy_fields})
    return stripe.StripeClient(key["key"], base_addresses={"api": f"{proxy_url}/stripe"}, max_network_retries=0)


def test_a_full_refund_of_a_charge_the_key_did_not_create_is_priced_by_reading_it(
        make_key, proxy_url, sql, run_id, stripe_emulator):
    charge_id = _other_keys_charge(make_key, proxy_url, 3000, "eur")
    client = _limited_client(make_key, proxy_url)
    client.v1.refunds.create(params={"charge": charge_id}, options=run(run_id))
    [row] = audit_rows(sql, run_id)
    assert (row["decision"], row["predicted_usd"], row["cost_usd"]) == ("allowed", Decimal("32.4"), Decimal("32.4"))
    price = row["request_summary"]["price"]
    assert price["lookup"] == f"/v1/charges/{charge_id}" and price["lookup_status"] == 200 and price["lookup_ms"] >= 0
    read, refund = stripe_emulator[1].state.received[-2:]
    assert (read.method, read.path, refund.path) == ("GET", f"/v1/charges/{charge_id}", "/v1/refunds")
    assert read.headers["authorization"].startswith("Bearer sk_test_")  # the real secret, never the vault key


def test_an_amountless_refund_over_the_per_call_limit_never_reaches_stripe(
        make_key, proxy_url, sql, run_id, stripe_emulator):
    charge_id = _other_keys_charge(make_key, proxy_url, 60000)  # 600.00 USD
    client = _limited_client(make_key, proxy_url)
    received = len(stripe_emulator[1].state.received)
    with pytest.raises(stripe.PermissionError) as refused:
        client.v1.refunds.create(params={"charge": charge_id}, options=run(run_id))
    assert refused.value.error.code == "per_call_limit" and "600.00 USD" in str(refused.value.user_message)
    assert [r.method for r in stripe_emulator[1].state.received[received:]] == ["GET"]  # only the read
    [row] = audit_rows(sql, run_id)
    assert (row["reason"], row["predicted_usd"]) == ("per_call_limit", Decimal("600"))


def test_a_price_that_cannot_be_known_is_refused_unless_the_policy_opts_in(
        make_key, proxy_url, sql, run_id, stripe_emulator):
    client = _limited_client(make_key, proxy_url)
    with pytest.raises(stripe.PermissionError) as refused:  # no such charge: the read says nothing
        client.v1.refunds.create(params={"charge": "ch_NotThere01"}, options=run(run_id))
    assert refused.value.error.code == "cost_unknown" and "priced_after" in str(refused.value.user_message)
    opted_in = _limited_client(make_key, proxy_url, endpoints={
        "allow": MONEY_POLICY["endpoints"]["allow"], "priced_after": ["POST /v1/refunds"]})
    with pytest.raises(stripe.InvalidRequestError):  # forwarded: Stripe itself says no such charge
        opted_in.v1.refunds.create(params={"charge": "ch_NotThere01"}, options=run(run_id))
    refused_row, forwarded = audit_rows(sql, run_id)
    assert (refused_row["decision"], refused_row["reason"]) == ("blocked", "cost_unknown")
    assert refused_row["request_summary"]["price"]["lookup_status"] == 404
    assert (forwarded["decision"], forwarded["predicted_usd"], forwarded["cost_usd"]) == ("allowed", 0, 0)
    assert forwarded["request_summary"]["price"]["predicted"] == "unknown"
    assert stripe_emulator[1].state.received[-1].path == "/v1/refunds"


def test_a_key_bound_to_a_connected_account_acts_on_it_unasked(make_key, proxy_url, sql, run_id, stripe_emulator):
    key = make_key(MONEY_POLICY, upstream_account="acct_1032D82eZvKYlo2C")
    client = stripe.StripeClient(key["key"], base_addresses={"api": f"{proxy_url}/stripe"}, max_network_retries=0)
    client.v1.charges.create(params={"amount": 700, "currency": "usd", "source": "tok_visa"}, options=run(run_id))
    assert stripe_emulator[1].state.received[-1].headers["stripe-account"] == "acct_1032D82eZvKYlo2C"
    with pytest.raises(stripe.AuthenticationError):  # another account than the key's: refused, as before
        client.v1.charges.create(params={"amount": 700, "currency": "usd", "source": "tok_visa"},
                                 options=run(run_id, stripe_account="acct_OTHER0000000001"))


def test_a_request_refused_while_its_body_was_read_names_its_endpoint(client, sql, run_id):
    for params, reason in (({"amount": "12.50", "currency": "usd"}, "invalid_amount"),
                           ({"amount": 100, "currency": "xyz"}, "unknown_currency")):
        with pytest.raises(stripe.InvalidRequestError):
            client.v1.charges.create(params=params, options=run(run_id))
        assert (audit_rows(sql, run_id)[-1]["reason"], audit_rows(sql, run_id)[-1]["endpoint"]) == (
            reason, "POST /v1/charges")


# Scope covers what an answer reveals (DESIGN.md guarantee 9): a key limited to its customers
# cannot read another customer's charge by id, nor list everyone's.

READS = {"vendor": "stripe", "endpoints": {"allow": ["POST /v1/customers", "POST /v1/charges", "GET /v1/charges",
                                                     "GET /v1/charges/*"]}}


def _charge_for_a_new_customer(client: stripe.StripeClient) -> tuple[str, str]:
    customer = client.v1.customers.create(params={"email": "ana@example.com", "source": "tok_visa"})
    charge = client.v1.charges.create(params={"amount": 900, "currency": "usd", "customer": customer.id})
    return customer.id, charge.id


def test_an_answer_naming_a_customer_outside_the_scope_is_withheld(make_key, proxy_url, sql, run_id):
    other = stripe.StripeClient(make_key(READS)["key"], base_addresses={"api": f"{proxy_url}/stripe"},
                                max_network_retries=0)
    _, foreign_charge = _charge_for_a_new_customer(other)
    mine, own_charge = _charge_for_a_new_customer(other)
    scoped = stripe.StripeClient(make_key({**READS, "customers": {"allow": [mine]}})["key"],
                                 base_addresses={"api": f"{proxy_url}/stripe"}, max_network_retries=0)
    assert scoped.v1.charges.retrieve(own_charge, options=run(run_id)).customer == mine
    with pytest.raises(stripe.PermissionError) as withheld:
        scoped.v1.charges.retrieve(foreign_charge, options=run(run_id))
    assert withheld.value.error.code == "answer_withheld" and "outside this key's customer scope" in str(
        withheld.value.user_message)
    with pytest.raises(stripe.PermissionError):  # everyone's charges: withheld too
        scoped.v1.charges.list(params={"limit": 100}, options=run(run_id))
    assert all(c.customer == mine for c in scoped.v1.charges.list(params={"customer": mine}, options=run(run_id)))
    rows = audit_rows(sql, run_id)
    assert [(r["decision"], r["reason"], r["upstream_status"]) for r in rows] == [
        ("allowed", None, 200), ("blocked", "answer_withheld", 200), ("blocked", "answer_withheld", 200),
        ("allowed", None, 200)]


def test_in_shadow_mode_a_revealing_answer_is_recorded_and_returned(make_key, proxy_url, sql, run_id):
    other = stripe.StripeClient(make_key(READS)["key"], base_addresses={"api": f"{proxy_url}/stripe"},
                                max_network_retries=0)
    _, foreign_charge = _charge_for_a_new_customer(other)
    shadow = stripe.StripeClient(make_key({**READS, "mode": "shadow", "customers": {"allow": ["cus_NobodyAtAll"]}})[
        "key"], base_addresses={"api": f"{proxy_url}/stripe"}, max_network_retries=0)
    assert shadow.v1.charges.retrieve(foreign_charge, options=run(run_id)).id == foreign_charge
    [row] = audit_rows(sql, run_id)
    assert (row["decision"], row["reason"]) == ("shadow_blocked", "answer_withheld")


# The catalogue's flagged decisions (vendors/stripe/operations.json says why for each).

def test_a_credit_to_a_customers_balance_is_priced_at_its_size(make_key, proxy_url, sql, run_id):
    """Stripe reads a negative amount as a credit; it was refused (invalid_amount). It counts as a debit would."""
    client = _limited_client(make_key, proxy_url, endpoints={"allow": ["POST /v1/customers",
                                                                        "POST /v1/customers/*/balance_transactions"]})
    customer = client.v1.customers.create(params={"email": "ana@example.com"}).id
    credit = client.v1.customers.balance_transactions.create(customer, params={"amount": -1500, "currency": "usd"},
                                                             options=run(run_id))
    assert credit.amount == -1500
    with pytest.raises(stripe.PermissionError) as refused:  # 6,000.00 USD of credit: over the 50.00 limit
        client.v1.customers.balance_transactions.create(customer, params={"amount": -600000, "currency": "usd"},
                                                        options=run(run_id))
    assert refused.value.error.code == "per_call_limit"
    assert [(r["decision"], r["predicted_usd"], r["cost_usd"], r["cost_source"]) for r in audit_rows(sql, run_id)] == [
        ("allowed", Decimal("15"), Decimal("15"), "parsed"), ("blocked", Decimal("6000"), 0, "none")]


def test_a_full_refund_named_by_its_payment_intent_is_priced_by_reading_the_intent(
        make_key, proxy_url, sql, run_id, stripe_emulator):
    other = stripe.StripeClient(make_key(MONEY_POLICY)["key"], base_addresses={"api": f"{proxy_url}/stripe"},
                                max_network_retries=0)
    intent = other.v1.payment_intents.create(params={"amount": 3000, "currency": "usd", "confirm": True,
                                                     "payment_method": "pm_card_visa"})
    client = _limited_client(make_key, proxy_url)
    client.v1.refunds.create(params={"payment_intent": intent.id}, options=run(run_id))  # no amount: the rest
    [row] = audit_rows(sql, run_id)
    assert (row["decision"], row["predicted_usd"], row["cost_usd"]) == ("allowed", Decimal("30"), Decimal("30"))
    assert row["request_summary"]["price"]["lookup"] == f"/v1/payment_intents/{intent.id}"
    assert [(r.method, r.path) for r in stripe_emulator[1].state.received[-2:]] == [
        ("GET", f"/v1/payment_intents/{intent.id}"), ("POST", "/v1/refunds")]
