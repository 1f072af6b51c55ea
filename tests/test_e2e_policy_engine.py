"""The policy engine end to end with the stripe SDK: shadow mode, approvals (by endpoint
and by cap), record-level customer scope, policy versions, spend against caps."""

from __future__ import annotations

from decimal import Decimal

import pytest
import stripe

from tests.support.tollgate import STRIPE_SECRET, audit_rows, policy


def client_for(proxy_url: str, key: str) -> stripe.StripeClient:
    return stripe.StripeClient(key, base_addresses={"api": f"{proxy_url}/stripe"}, max_network_retries=0)


def run(run_id: str) -> dict:
    return {"headers": {"X-Agent-Run-Id": run_id}}


def error_of(raised: pytest.ExceptionInfo) -> dict:
    return raised.value.json_body["error"]


CHARGE = {"amount": 1500, "currency": "usd", "source": "tok_visa"}


def test_shadow_mode_forwards_and_records_what_it_would_refuse(proxy_url, make_key, sql, run_id, stripe_emulator):
    key = make_key(policy(mode="shadow", caps=[{"usd": "10.00", "window": "day"}]))
    client = client_for(proxy_url, key["key"])
    charge = client.v1.charges.create(params=CHARGE, options=run(run_id))  # $15 > $10 cap: forwarded anyway
    payout = client.v1.payouts.create(params={"amount": 500, "currency": "usd"}, options=run(run_id))  # not allowed
    assert charge.status == "succeeded" and payout.id.startswith("po_")
    rows = audit_rows(sql, run_id)
    assert [(r["decision"], r["reason"], r["cost_usd"], r["upstream_status"]) for r in rows] == [
        ("shadow_blocked", "cap_exceeded", Decimal("15"), 200),
        ("shadow_blocked", "endpoint_not_allowed", Decimal("5"), 200),
    ]
    assert "Cap of 10.00 USD per day reached" in rows[0]["message"]


def test_an_approved_request_passes_once_and_a_changed_one_does_not(proxy_url, make_key, admin, sql, run_id):
    document = policy()
    document["endpoints"]["require_approval"] = ["POST /v1/payouts"]
    key = make_key(document)
    client = client_for(proxy_url, key["key"])
    payout = {"amount": 25000, "currency": "usd", "description": "quarterly"}

    with pytest.raises(stripe.PermissionError) as held:
        client.v1.payouts.create(params=payout, options=run(run_id))
    error = error_of(held)
    approval_id = error["approval_id"]
    assert error["code"] == "endpoint_requires_approval" and approval_id in error["message"]
    pending = admin.get("/admin/v1/approvals", params={"status": "pending", "key_id": key["id"]}).json()["data"]
    assert [(a["id"], a["endpoint"], a["predicted_usd"], a["request"]) for a in pending] == [
        (approval_id, "POST /v1/payouts", "250.000000",
         {"params": {"amount": "25000", "currency": "usd", "description": "quarterly"},
          "account": None, "headers": {"stripe-version": stripe.api_version}})]

    with pytest.raises(stripe.PermissionError) as again:  # asking again does not pile up approvals
        client.v1.payouts.create(params=payout, options=run(run_id))
    assert error_of(again)["approval_id"] == approval_id

    approved = admin.post(f"/admin/v1/approvals/{approval_id}/approve", json={"by": "ops@acme", "note": "ok"})
    assert approved.json()["status"] == "approved"
    with pytest.raises(stripe.PermissionError) as changed:  # a different amount is a different request
        client.v1.payouts.create(params={**payout, "amount": 99999}, options=run(run_id))
    assert error_of(changed)["approval_id"] != approval_id

    done = client.v1.payouts.create(params={"description": "quarterly", "currency": "usd", "amount": 25000},
                                    options=run(run_id))  # same parameters, any order: passes
    assert done.amount == 25000
    with pytest.raises(stripe.PermissionError) as once:  # and only once
        client.v1.payouts.create(params=payout, options=run(run_id))
    assert error_of(once)["approval_id"] not in (approval_id, None)

    decisions = [(r["decision"], r["reason"]) for r in audit_rows(sql, run_id)]
    assert decisions == [("approval_required", "endpoint_requires_approval")] * 3 + [
        ("allowed", None), ("approval_required", "endpoint_requires_approval")]
    used = admin.get(f"/admin/v1/approvals/{approval_id}").json()
    assert used["status"] == "used" and used["decided_by"] == "ops@acme"


def test_an_approval_covers_the_account_the_call_acts_on(proxy_url, make_key, admin, sql, run_id, stripe_emulator):
    document = policy()
    document["endpoints"]["require_approval"] = ["POST /v1/payouts"]
    key = make_key(document)
    client = client_for(proxy_url, key["key"])
    payout = {"amount": 25000, "currency": "usd"}
    on = {"stripe_account": "acct_1032D82eZvKYlo2C"}

    with pytest.raises(stripe.PermissionError) as held:
        client.v1.payouts.create(params=payout, options={**run(run_id), **on})
    approval_id = error_of(held)["approval_id"]
    shown = admin.get(f"/admin/v1/approvals/{approval_id}").json()["request"]
    assert shown["account"] == "acct_1032D82eZvKYlo2C"
    assert shown["headers"]["stripe-account"] == "acct_1032D82eZvKYlo2C"
    admin.post(f"/admin/v1/approvals/{approval_id}/approve")
    received = len(stripe_emulator[1].state.received)

    for elsewhere in ({"stripe_account": "acct_VICTIM00000000001"}, {"stripe_context": "acct_VICTIM00000000001"},
                      {}):  # another account, or the platform's own: not what was approved
        with pytest.raises(stripe.PermissionError) as again:
            client.v1.payouts.create(params=payout, options={**run(run_id), **elsewhere})
        assert error_of(again)["code"] == "endpoint_requires_approval"
        assert error_of(again)["approval_id"] != approval_id
    assert len(stripe_emulator[1].state.received) == received  # none of them reached Stripe
    assert admin.get(f"/admin/v1/approvals/{approval_id}").json()["status"] == "approved"

    done = client.v1.payouts.create(params=payout, options={**run(run_id), **on})  # what was approved passes
    assert done.amount == 25000
    assert stripe_emulator[1].state.received[-1].headers["stripe-account"] == "acct_1032D82eZvKYlo2C"
    assert admin.get(f"/admin/v1/approvals/{approval_id}").json()["status"] == "used"


def test_a_bound_keys_approval_names_the_account_tollgate_sets(proxy_url, make_key, admin, run_id):
    document = policy()
    document["endpoints"]["require_approval"] = ["POST /v1/payouts"]
    key = make_key(document, upstream_account="acct_1032D82eZvKYlo2C")
    with pytest.raises(stripe.PermissionError) as held:
        client_for(proxy_url, key["key"]).v1.payouts.create(params={"amount": 100, "currency": "usd"},
                                                            options=run(run_id))
    shown = admin.get(f"/admin/v1/approvals/{error_of(held)['approval_id']}").json()["request"]
    assert shown["account"] == "acct_1032D82eZvKYlo2C" and "stripe-account" not in shown["headers"]


def test_an_expired_approval_asks_again_and_a_denied_one_blocks(proxy_url, make_key, admin, sql, run_id):
    document = policy()
    document["endpoints"]["require_approval"] = ["POST /v1/payouts"]
    key = make_key(document)
    client = client_for(proxy_url, key["key"])
    params = {"amount": 100, "currency": "usd"}

    def ask() -> dict:
        with pytest.raises(stripe.PermissionError) as raised:
            client.v1.payouts.create(params=params, options=run(run_id))
        return error_of(raised)

    first = ask()["approval_id"]
    sql.execute("UPDATE approvals SET expires_at = now() - interval '1 second' WHERE id = %s", (first,))
    assert admin.get(f"/admin/v1/approvals/{first}").json()["status"] == "expired"
    late = admin.post(f"/admin/v1/approvals/{first}/approve")
    assert late.status_code == 409 and late.json()["error"]["code"] == "approval_not_pending"

    second = ask()["approval_id"]
    assert second != first
    denial = admin.post(f"/admin/v1/approvals/{second}/deny", json={"note": "not this quarter"})
    assert denial.json()["status"] == "denied"
    denied = ask()
    assert denied["code"] == "approval_denied" and second in denied["message"]
    assert [r["reason"] for r in audit_rows(sql, run_id)] == [
        "endpoint_requires_approval", "endpoint_requires_approval", "approval_denied"]


def test_a_cap_can_hold_calls_for_approval_instead_of_refusing(proxy_url, make_key, admin, sql, run_id):
    key = make_key(policy(caps=[{"usd": "20.00", "window": "run", "action": "require_approval"}]))
    client = client_for(proxy_url, key["key"])
    client.v1.charges.create(params=CHARGE, options=run(run_id))  # $15 of $20
    with pytest.raises(stripe.PermissionError) as held:
        client.v1.charges.create(params=CHARGE, options=run(run_id))  # would make $30
    error = error_of(held)
    assert error["code"] == "cap_requires_approval" and "Cap of 20.00 USD per run reached" in error["message"]
    admin.post(f"/admin/v1/approvals/{error['approval_id']}/approve")
    client.v1.charges.create(params=CHARGE, options=run(run_id))
    spend = admin.get(f"/admin/v1/keys/{key['id']}/spend", params={"agent_run_id": run_id}).json()
    assert spend["caps"] == [{
        "window": "run", "action": "require_approval", "bucket": f"run:{run_id}", "limit_usd": "20.00",
        "limit_requests": None, "spent_usd": "30.000000", "reserved_usd": "0.000000", "requests": 2, "remaining": "0",
    }]


def test_only_records_created_through_the_key(proxy_url, make_key, sql, run_id, stripe_emulator):
    document = policy(customers={"created_through_key": True})
    key = make_key(document)
    client = client_for(proxy_url, key["key"])
    direct = stripe.StripeClient(STRIPE_SECRET, base_addresses={"api": stripe_emulator[0]}, max_network_retries=0)

    ours = client.v1.customers.create(params={"email": "a@example.com", "source": "tok_visa"}, options=run(run_id))
    theirs = direct.v1.customers.create(params={"email": "b@example.com", "source": "tok_visa"})
    our_charge = client.v1.charges.create(params={"amount": 4000, "currency": "eur", "customer": ours.id},
                                          options=run(run_id))
    with pytest.raises(stripe.PermissionError) as other_customer:
        client.v1.charges.create(params={"amount": 4000, "currency": "eur", "customer": theirs.id}, options=run(run_id))
    assert error_of(other_customer)["code"] == "customer_not_allowed"

    their_charge = direct.v1.charges.create(params={"amount": 4000, "currency": "eur", "customer": theirs.id})
    with pytest.raises(stripe.PermissionError) as other_charge:
        client.v1.refunds.create(params={"charge": their_charge.id}, options=run(run_id))
    assert error_of(other_charge)["code"] == "object_not_created_through_key"

    refund = client.v1.refunds.create(params={"charge": our_charge.id}, options=run(run_id))  # full refund
    assert refund.amount == 4000
    last = audit_rows(sql, run_id)[-1]
    # Priced before it left from the recorded charge: 40.00 EUR.
    assert (last["endpoint"], last["predicted_usd"], last["cost_usd"]) == (
        "POST /v1/refunds", Decimal("43.2"), Decimal("43.2"))
    recorded = sql.execute("SELECT object_id, kind, customer_id FROM key_objects WHERE key_id = %s ORDER BY created_at",
                           (key["id"],)).fetchall()
    assert [(r["object_id"], r["kind"]) for r in recorded] == [
        (ours.id, "customer"), (our_charge.id, "charge"), (refund.id, "refund")]


def test_a_new_policy_version_decides_the_very_next_call(proxy_url, make_key, admin, sql, run_id):
    key = make_key(policy())
    client = client_for(proxy_url, key["key"])
    client.v1.charges.create(params=CHARGE, options=run(run_id))
    stricter = policy(per_call_usd="10.00")
    response = admin.post(f"/admin/v1/policies/{key['policy_id']}/versions", json={"document": stricter})
    assert response.status_code == 201 and response.json()["current_version"] == 2
    with pytest.raises(stripe.PermissionError) as raised:
        client.v1.charges.create(params=CHARGE, options=run(run_id))
    assert error_of(raised)["code"] == "per_call_limit"

    other = admin.post("/admin/v1/policies", json={"document": policy(), "name": "lenient"}).json()
    attached = admin.post(f"/admin/v1/keys/{key['id']}/policy", json={"policy_id": other["id"]})
    assert attached.json()["policy_id"] == other["id"]
    client.v1.charges.create(params=CHARGE, options=run(run_id))
    assert [(r["decision"], r["policy_id"], r["policy_version"]) for r in audit_rows(sql, run_id)] == [
        ("allowed", key["policy_id"], 1), ("blocked", key["policy_id"], 2), ("allowed", other["id"], 1)]
    versions = admin.get(f"/admin/v1/policies/{key['policy_id']}").json()["versions"]
    assert [v["version"] for v in versions] == [1, 2] and versions[0]["document"] == policy()


def test_policy_admin_refusals(admin, make_key):
    key = make_key(policy())
    bad = admin.post(f"/admin/v1/policies/{key['policy_id']}/versions",
                     json={"document": {"vendor": "stripe", "endpoints": {"allow": ["nope"]}}})
    assert bad.status_code == 400 and bad.json()["error"]["errors"][0]["pointer"] == "/endpoints/allow/0"
    vendor = admin.post(f"/admin/v1/policies/{key['policy_id']}/versions",
                        json={"document": {"vendor": "resend", "endpoints": {"allow": []}}})
    assert vendor.json()["error"]["code"] == "vendor_mismatch"
    assert admin.get("/admin/v1/policies/pol_nope").status_code == 404
    assert admin.get("/admin/v1/approvals/apr_nope").status_code == 404
