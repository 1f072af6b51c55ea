"""Admin API reads the console needs (and scripts may use): audit rows filtered by vendor and
decision, newest first; each key's latest call; spend per vendor per UTC day."""

from __future__ import annotations

from decimal import Decimal

import pytest
import stripe

from tests.support.tollgate import policy


def charge(proxy_url: str, key: str, run_id: str, amount: int = 1200) -> None:
    client = stripe.StripeClient(key, base_addresses={"api": f"{proxy_url}/stripe"}, max_network_retries=0)
    client.v1.charges.create(params={"amount": amount, "currency": "usd", "source": "tok_visa"},
                             options={"headers": {"X-Agent-Run-Id": run_id}})


def test_audit_filters_and_newest_first(admin, proxy_url, make_key, run_id):
    key = make_key(policy(per_call_usd="20.00"))
    charge(proxy_url, key["key"], run_id, 500)
    with pytest.raises(stripe.PermissionError):
        charge(proxy_url, key["key"], run_id, 9900)
    charge(proxy_url, key["key"], run_id, 700)

    newest = admin.get("/admin/v1/audit", params={"key_id": key["id"], "order": "desc"}).json()["data"]
    assert [r["amount_minor"] for r in newest] == [700, 9900, 500]
    blocked = admin.get("/admin/v1/audit", params={"key_id": key["id"], "decision": "blocked"}).json()["data"]
    assert [(r["amount_minor"], r["reason"]) for r in blocked] == [(9900, "per_call_limit")]
    assert admin.get("/admin/v1/audit", params={"key_id": key["id"], "vendor": "twilio"}).json()["data"] == []
    after = admin.get("/admin/v1/audit", params={"key_id": key["id"], "after_id": newest[1]["id"]}).json()["data"]
    assert [r["amount_minor"] for r in after] == [700]
    # checked against the OpenAPI enum
    assert admin.get("/admin/v1/audit", params={"order": "sideways"}).json()["error"]["code"] == "invalid_parameter"
    assert admin.get("/admin/v1/audit", params={"after_id": "x"}).status_code == 400


def test_keys_list_their_latest_call(admin, proxy_url, make_key, run_id):
    quiet = make_key(policy())
    busy = make_key(policy())
    charge(proxy_url, busy["key"], run_id)
    listed = {k["id"]: k for k in admin.get("/admin/v1/keys").json()["data"]}
    assert listed[quiet["id"]]["last_call_at"] is None and listed[quiet["id"]]["last_run_id"] is None
    assert listed[busy["id"]]["last_call_at"] and listed[busy["id"]]["last_run_id"] == run_id


def test_daily_spend_per_vendor(admin, proxy_url, make_key, run_id, sql):
    before = admin.get("/admin/v1/spend/daily").json()
    key = make_key(policy())
    charge(proxy_url, key["key"], run_id, 1250)
    after = admin.get("/admin/v1/spend/daily", params={"days": 7}).json()
    assert after["days"] == 7 and before["days"] == 30
    today = sql.execute("SELECT (now() AT TIME ZONE 'UTC')::date AS d").fetchone()["d"].isoformat()

    def stripe_today(body):
        return next((r for r in body["data"] if r["day"] == today and r["vendor"] == "stripe"),
                    {"usd": "0", "calls": 0})

    assert Decimal(stripe_today(after)["usd"]) - Decimal(stripe_today(before)["usd"]) >= Decimal("12.50")
    assert stripe_today(after)["calls"] >= 1
    assert all(r["day"] <= today for r in after["data"])
    for bad in ("0", "400", "x"):
        response = admin.get("/admin/v1/spend/daily", params={"days": bad})
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_parameter"
