"""Form arrays end to end through stripe-python (issue 16, guarantee 9): an object named only inside
an array (``usage_threshold[filters][0][customer]``) is checked against record scope like any other,
and an array of ids as the SDK indexes it (``default_tax_rates[0]=txr_1``) is an array, not refused."""

from __future__ import annotations

import pytest
import stripe

from tests.support.tollgate import STRIPE_SECRET, audit_rows, policy


def client_for(base: str, key: str) -> stripe.StripeClient:
    return stripe.StripeClient(key, base_addresses={"api": base}, max_network_retries=0)


def run(run_id: str) -> dict:
    return {"headers": {"X-Agent-Run-Id": run_id}}


def test_a_foreign_customer_named_only_inside_an_array_is_refused_before_stripe_sees_it(
        proxy_url, make_key, sql, run_id, stripe_emulator):
    document = policy(customers={"created_through_key": True})
    document["endpoints"]["allow"].append("POST /v1/billing/alerts")
    key = make_key(document)
    client = client_for(f"{proxy_url}/stripe", key["key"])
    theirs = client_for(stripe_emulator[0], STRIPE_SECRET).v1.customers.create(params={"email": "b@example.com"})
    received = len(stripe_emulator[1].state.received)

    with pytest.raises(stripe.PermissionError) as refused:
        client.v1.billing.alerts.create(params={
            "alert_type": "usage_threshold", "title": "their usage",
            "usage_threshold": {"gte": 10, "meter": "mtr_1", "filters": [{"type": "customer", "customer": theirs.id}]},
        }, options=run(run_id))

    assert refused.value.json_body["error"]["code"] == "object_not_created_through_key"
    assert theirs.id in refused.value.json_body["error"]["message"]
    assert stripe_emulator[1].state.received[received:] == []
    row = audit_rows(sql, run_id)[-1]
    assert (row["decision"], row["reason"], row["endpoint"]) == (
        "blocked", "object_not_created_through_key", "POST /v1/billing/alerts")


def test_default_tax_rates_as_the_sdk_indexes_them_are_forwarded(proxy_url, make_key, sql, run_id, stripe_emulator):
    document = policy()
    document["endpoints"] = {"allow": ["POST /v1/customers", "POST /v1/subscriptions"],
                             "priced_after": ["POST /v1/subscriptions"]}
    client = client_for(f"{proxy_url}/stripe", make_key(document)["key"])
    customer = client.v1.customers.create(params={"email": "a@example.com"}, options=run(run_id))

    subscription = client.v1.subscriptions.create(params={
        "customer": customer.id, "items": [{"price": "price_1"}], "default_tax_rates": ["txr_1", "txr_2"],
    }, options=run(run_id))

    assert [rate.id for rate in subscription.default_tax_rates] == ["txr_1", "txr_2"]
    sent = stripe_emulator[1].state.received[-1]
    assert sent.path == "/v1/subscriptions" and b"default_tax_rates[1]=txr_2" in sent.body
    row = audit_rows(sql, run_id)[-1]
    assert (row["decision"], row["endpoint"], row["upstream_status"]) == ("allowed", "POST /v1/subscriptions", 200)
