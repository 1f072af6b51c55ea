"""Meter events through stripe-python 16: usage is reported for a customer named inside the event's
payload, under the key its meter's ``customer_mapping`` says (``stripe_customer_id`` by default),
so customer scope holds there too (DESIGN.md guarantee 9); and a meter event session, whose token
would let the agent report usage to meter-events.stripe.com without Tollgate, issues credentials.

Every call goes through Tollgate to the emulators (api and meter-events hosts); the meters a
payload's customer key is read from are made through Tollgate first.
"""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from tests.support.tollgate import audit_rows

METER_EVENTS = ["POST /v1/billing/meter_events", "POST /v2/billing/meter_events",
                "POST /meter_events/v2/billing/meter_event_stream"]
POLICY: dict[str, Any] = {"vendor": "stripe", "endpoints": {
    "allow": ["POST /v1/customers", "POST /v1/billing/meters", *METER_EVENTS], "priced_after": METER_EVENTS}}


def _client(make_key, proxy_url: str, **policy: Any) -> stripe.StripeClient:
    key = make_key({**POLICY, **policy})
    return stripe.StripeClient(key["key"], max_network_retries=0, base_addresses={
        "api": f"{proxy_url}/stripe", "meter_events": f"{proxy_url}/stripe/meter_events"})


def _run(run_id: str) -> dict[str, Any]:
    return {"headers": {"X-Agent-Run-Id": run_id}}


@pytest.fixture()
def customers(make_key, proxy_url) -> tuple[str, str]:
    """Two customers of the account: the scoped key's own, and another."""
    setup = _client(make_key, proxy_url)
    return tuple(setup.v1.customers.create(params={"email": f"{who}@example.com"}).id  # type: ignore[return-value]
                 for who in ("mine", "theirs"))


def _event(customer: str, key: str = "stripe_customer_id", **more: str) -> dict[str, Any]:
    return {"event_name": "api_calls", "payload": {key: customer, "value": "25", **more}}


def test_usage_is_reported_only_for_the_keys_customers(make_key, proxy_url, sql, run_id, customers) -> None:
    mine, theirs = customers
    scoped = _client(make_key, proxy_url, customers={"allow": [mine]})
    scoped.v1.billing.meter_events.create(params=_event(mine), options=_run(run_id))
    scoped.v2.billing.meter_events.create(params=_event(mine), options=_run(run_id))
    scoped.v2.billing.meter_event_stream.create(params={"events": [_event(mine), _event(mine)]},
                                                options=_run(run_id))
    for send, params in ((scoped.v1.billing.meter_events.create, _event(theirs)),
                         (scoped.v2.billing.meter_events.create, _event(theirs)),
                         (scoped.v2.billing.meter_event_stream.create, {"events": [_event(mine), _event(theirs)]})):
        with pytest.raises(stripe.PermissionError) as refused:
            send(params=params, options=_run(run_id))
        assert refused.value.error.code == "customer_not_allowed" and theirs in str(refused.value.user_message)
    rows = audit_rows(sql, run_id)
    assert [(r["decision"], r["reason"], r["customer_id"]) for r in rows] == [
        ("allowed", None, mine)] * 3 + [("blocked", "customer_not_allowed", theirs)] * 2 + [
        ("blocked", "customer_not_allowed", mine)]


def test_the_customer_is_where_the_meters_customer_mapping_says(make_key, proxy_url, sql, run_id,
                                                                customers, stripe_emulator) -> None:
    mine, theirs = customers
    setup = _client(make_key, proxy_url)
    setup.v1.billing.meters.create(params={
        "display_name": "Seats", "event_name": "seats", "default_aggregation": {"formula": "sum"},
        "customer_mapping": {"type": "by_id", "event_payload_key": "account_ref"}})
    scoped = _client(make_key, proxy_url, customers={"allow": [mine]})
    # Stripe bills account_ref's customer: the stripe_customer_id beside it is only a dimension.
    decoy = {"event_name": "seats", "payload": {"stripe_customer_id": mine, "account_ref": theirs, "value": "3"}}
    with pytest.raises(stripe.PermissionError) as refused:
        scoped.v1.billing.meter_events.create(params=decoy, options=_run(run_id))
    assert refused.value.error.code == "customer_not_allowed"
    own = {"event_name": "seats", "payload": {"stripe_customer_id": theirs, "account_ref": mine, "value": "3"}}
    scoped.v1.billing.meter_events.create(params=own, options=_run(run_id))
    blocked, allowed = audit_rows(sql, run_id)
    assert (blocked["customer_id"], allowed["customer_id"], allowed["decision"]) == (theirs, mine, "allowed")
    assert allowed["request_summary"]["price"]["lookup"] == "/v1/billing/meters"
    assert stripe_emulator[1].state.received[-1].path == "/v1/billing/meter_events"


def test_a_meter_event_session_is_refused_by_default_and_warned_when_allowed(make_key, proxy_url, admin,
                                                                           run_id) -> None:
    client = _client(make_key, proxy_url)
    with pytest.raises(stripe.PermissionError) as refused:
        client.v2.billing.meter_event_session.create(options=_run(run_id))
    assert refused.value.error.code == "endpoint_not_allowed"
    allowing = {"vendor": "stripe", "endpoints": {"allow": ["POST /v2/billing/meter_event_session"]}}
    checked = admin.post("/admin/v1/policies/validate", json=allowing).json()
    assert checked["valid"] and any("POST /v2/billing/meter_event_session, which issues credentials" in w
                                    for w in checked["warnings"])
