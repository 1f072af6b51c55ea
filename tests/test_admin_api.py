"""The admin API: keys created, listed, shown and revoked over HTTP; secrets never
returned after creation; bad input refused with reasons; health endpoints."""

from __future__ import annotations

import httpx
import pytest
import stripe

from proxy import migrate
from tests.support.tollgate import STRIPE_SECRET, policy


def test_admin_routes_need_the_admin_token(proxy_url):
    assert httpx.get(f"{proxy_url}/admin/v1/keys").status_code == 401
    wrong = httpx.get(f"{proxy_url}/admin/v1/keys", headers={"authorization": "Bearer tga_wrong"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthorized"


def test_key_lifecycle_never_returns_a_secret_twice(admin, make_key):
    created = make_key(policy(), label="support-bot")
    assert created["key"].startswith("tg_") and created["status"] == "active" and created["label"] == "support-bot"
    assert created["policy_version"] == 1 and created["policy"]["vendor"] == "stripe"

    listed = admin.get("/admin/v1/keys").json()["data"]
    shown = admin.get(f"/admin/v1/keys/{created['id']}").json()
    revoked = admin.post(f"/admin/v1/keys/{created['id']}/revoke").json()
    again = admin.post(f"/admin/v1/keys/{created['id']}/revoke").json()

    assert created["id"] in {k["id"] for k in listed}
    assert shown["id"] == created["id"] and "key" not in shown
    assert revoked["status"] == "revoked" and again["revoked_at"] == revoked["revoked_at"]
    everything = admin.get("/admin/v1/keys").text + str(shown) + str(revoked)
    assert created["key"] not in everything and created["key"].split("_")[2] not in everything
    assert STRIPE_SECRET not in everything + str(created)


def test_a_policy_can_be_shared_by_id(admin, make_key):
    first = make_key(policy())
    response = admin.post("/admin/v1/keys", json={"vendor": "stripe", "policy_id": first["policy_id"],
                                                  "upstream_secret": STRIPE_SECRET})
    assert response.status_code == 201
    assert response.json()["policy_id"] == first["policy_id"]


def test_bad_requests_are_refused_with_reasons(admin):
    cases = [
        ({"vendor": "paypal", "policy": policy(), "upstream_secret": "x"}, 400, "unknown_vendor"),
        ({"vendor": "stripe", "policy": policy()}, 400, "missing_field"),
        ({"vendor": "stripe", "upstream_secret": "x"}, 400, "policy_required"),
        ({"vendor": "stripe", "policy_id": "pol_nope", "upstream_secret": "x"}, 404, "unknown_policy"),
        ({"vendor": "stripe", "policy": policy(vendor="twilio"), "upstream_secret": "x"}, 400, "vendor_mismatch"),
        ({"vendor": "stripe", "policy": policy(), "upstream_secret": 7}, 400, "invalid_field"),
        ({"vendor": "stripe", "policy": policy(), "upstream_secret": "x", "expires_at": "2030-01-01T00:00:00"},
         400, "invalid_field"),
    ]
    for body, status, code in cases:
        response = admin.post("/admin/v1/keys", json=body)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), body
    assert admin.post("/admin/v1/keys", content=b"{nope").json()["error"]["code"] == "invalid_json"
    assert admin.get("/admin/v1/keys/key_nope").status_code == 404


def test_an_invalid_policy_is_refused_with_every_pointer(admin):
    bad = policy(per_call_usd="-1", caps=[{"window": "day"}])
    response = admin.post("/admin/v1/keys", json={"vendor": "stripe", "policy": bad, "upstream_secret": "x"})
    assert response.status_code == 400
    pointers = {e["pointer"] for e in response.json()["error"]["errors"]}
    assert pointers == {"/per_call_usd", "/caps/0"}
    checked = admin.post("/admin/v1/policies/validate", json=bad).json()
    assert checked["valid"] is False and {e["pointer"] for e in checked["errors"]} == pointers
    valid = admin.post("/admin/v1/policies/validate", json=policy(duplicates={"window_s": 60})).json()
    assert (valid["valid"], valid["errors"], valid["warnings"]) == (True, [], [])
    unguarded = admin.post("/admin/v1/policies/validate", json=policy()).json()  # money with no duplicate guard
    assert unguarded["valid"] and [w for w in unguarded["warnings"] if "no duplicates window" in w]
    assert valid["matches"]["GET /v1/charges/*"] == ["GET /v1/charges/{id}"]  # never /v1/charges/search


def test_an_expired_key_is_refused_like_a_revoked_one(proxy_url, make_key):
    key = make_key(policy(), expires_at="2020-01-01T00:00:00Z")
    client = stripe.StripeClient(key["key"], base_addresses={"api": f"{proxy_url}/stripe"}, max_network_retries=0)
    try:
        client.v1.charges.retrieve("ch_123")
    except stripe.AuthenticationError as error:
        assert error.error.code == "key_expired"
    else:
        raise AssertionError("an expired key was let through")


def test_audit_by_run_id(admin, proxy_url, make_key, run_id):
    key = make_key(policy())
    client = stripe.StripeClient(key["key"], base_addresses={"api": f"{proxy_url}/stripe"}, max_network_retries=0)
    client.v1.charges.create(params={"amount": 500, "currency": "usd", "source": "tok_visa"},
                             options={"headers": {"X-Agent-Run-Id": run_id}})
    rows = admin.get("/admin/v1/audit", params={"agent_run_id": run_id}).json()["data"]
    assert [(r["decision"], r["endpoint"], r["cost_usd"]) for r in rows] == [
        ("allowed", "POST /v1/charges", "5.000000")]


def test_openapi_document_describes_the_routes(proxy_url):
    document = httpx.get(f"{proxy_url}/admin/v1/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert {"/admin/v1/keys", "/admin/v1/keys/{key_id}", "/admin/v1/keys/{key_id}/revoke",
            "/admin/v1/policies/validate", "/admin/v1/audit"} <= set(document["paths"])


def test_health_endpoints(proxy_url):
    assert httpx.get(f"{proxy_url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{proxy_url}/readyz")
    body = ready.json()
    assert ready.status_code == 200 and (body["status"], body["migration"]) == ("ready", migrate.head_revision())
    assert body["prices"][0]["table"] == "fx_rates"  # how old each price table is


def test_every_admin_route_is_in_the_openapi_document():
    from proxy.admin.api import AdminAPI
    from proxy.admin.openapi import OPENAPI
    from vendors import registry

    api = AdminAPI(None, None, "t", registry.load())  # type: ignore[arg-type]
    served = {(r.path, m) for r in api.routes() for m in r.methods if m != "HEAD"}
    documented = {(path, method.upper()) for path, ops in OPENAPI["paths"].items() for method in ops}
    assert served - {("/admin/v1/openapi.json", "GET")} == documented


def test_prometheus_metrics(proxy_url, make_key, run_id):
    key = make_key(policy())
    client = stripe.StripeClient(key["key"], base_addresses={"api": f"{proxy_url}/stripe"}, max_network_retries=0)
    client.v1.charges.create(params={"amount": 250, "currency": "usd", "source": "tok_visa"},
                             options={"headers": {"X-Agent-Run-Id": run_id}})
    with pytest.raises(stripe.PermissionError):  # payouts are not allowed: the blocked counter below
        client.v1.payouts.create(params={"amount": 250, "currency": "usd"})
    text = httpx.get(f"{proxy_url}/metrics").text
    assert 'tollgate_requests_total{decision="allowed",endpoint="POST /v1/charges",reason="",vendor="stripe"}' in text
    assert ('tollgate_requests_total{decision="blocked",endpoint="",reason="endpoint_not_allowed",vendor="stripe"}'
            in text)
    assert "tollgate_spend_usd_total{vendor=\"stripe\"}" in text
    assert 'tollgate_db_pool_connections{pool="gate",state="max"} 10.0' in text
    assert "tollgate_open_reservations " in text and "tollgate_added_seconds_bucket" in text
