"""Delegated keys through the real proxy, with the vendors' own SDKs against the emulators
(issue 18, item 1): a child key's rows carry its run whatever the SDK sends, it counts against
its parent's caps, dies with its parent, expires, and cannot be minted deeper than allowed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from decimal import Decimal
from typing import Any

import httpx
import pytest
import resend
import stripe
from resend.http_client_requests import RequestsClient
from twilio.rest import Client

from tests.support.tollgate import MASTER_KEY, RESEND_SECRET, TWILIO_ACCOUNT, TWILIO_TOKEN, policy
from tests.test_sql_cookbook import QUERIES

SENDER = "+15005550006"


def mint(admin: httpx.Client, parent_id: str, **body: Any) -> dict[str, Any]:
    response = admin.post(f"/admin/v1/keys/{parent_id}/children", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def stripe_client(proxy_url: str, key: str) -> stripe.StripeClient:
    return stripe.StripeClient(key, base_addresses={"api": f"{proxy_url}/stripe"}, max_network_retries=0)


def charge(client: stripe.StripeClient, amount: int = 100, **options: Any) -> Any:
    return client.v1.charges.create(params={"amount": amount, "currency": "usd", "source": "tok_visa"},
                                    options=options or None)  # type: ignore[arg-type]


def rows_of(sql, key_id: str) -> list[dict[str, Any]]:
    return sql.execute("SELECT * FROM audit_events WHERE key_id = %s ORDER BY id", (key_id,)).fetchall()


def test_page_two_of_an_auto_paged_list_is_tagged_with_the_childs_run(proxy_url, admin, make_key, sql, run_id):
    """stripe-python sends per-call headers on page 1 only: the parent's page 2 is untagged, the child's is not."""
    parent = make_key(policy(endpoints={"allow": ["POST /v1/charges", "GET /v1/charges"]}))
    for _ in range(3):
        charge(stripe_client(proxy_url, parent["key"]))
    child = mint(admin, parent["id"], agent_run_id=run_id)
    assert (child["parent_key_id"], child["depth"], child["agent_run_id"]) == (parent["id"], 1, run_id)
    tagged = {"headers": {"X-Agent-Run-Id": run_id}}
    for key in (parent, child):
        pages = stripe_client(proxy_url, key["key"]).v1.charges.list(params={"limit": 2}, options=tagged)
        assert len(list(pages.auto_paging_iter())) >= 3
    parent_lists = [r for r in rows_of(sql, parent["id"]) if r["endpoint"] == "GET /v1/charges"]
    child_lists = [r for r in rows_of(sql, child["id"]) if r["endpoint"] == "GET /v1/charges"]
    assert len(parent_lists) >= 2 and len(child_lists) >= 2  # page 2 (and on) was fetched
    assert parent_lists[0]["agent_run_id"] == run_id and parent_lists[1]["agent_run_id"] is None  # the SDK's gap
    assert {r["agent_run_id"] for r in child_lists} == {run_id}
    assert {r["decision"] for r in child_lists} == {"allowed"}


def test_twilio_and_resend_children_are_tagged_though_their_sdks_send_no_run_header(
        proxy_url, admin, make_key, sql, run_id, monkeypatch):
    texting = make_key({"vendor": "twilio", "endpoints": {"allow": ["POST /2010-04-01/Accounts/*/Messages.json"]},
                        "recipients": {"countries": ["US"]}, "senders": [SENDER]},
                       vendor="twilio", secret=TWILIO_TOKEN, upstream_account=TWILIO_ACCOUNT)
    mailing = make_key({"vendor": "resend", "endpoints": {"allow": ["POST /emails"]},
                        "recipients": {"domains": ["acme.example"]}}, vendor="resend", secret=RESEND_SECRET)
    twilio_child, resend_child = mint(admin, texting["id"], agent_run_id=run_id), mint(admin, mailing["id"],
                                                                                          agent_run_id=run_id)
    sms = Client(TWILIO_ACCOUNT, twilio_child["key"])  # twilio-python's own HTTP client: no per-call headers
    sms.api.base_url = f"{proxy_url}/twilio"
    sms.messages.create(to="+14155550100", from_=SENDER, body="Your order has shipped.")
    monkeypatch.setattr(resend, "api_key", resend_child["key"])
    monkeypatch.setattr(resend, "api_url", f"{proxy_url}/resend")
    monkeypatch.setattr(resend, "default_http_client", RequestsClient())
    resend.Emails.send({"from": "shop@acme.example", "to": ["ana@acme.example"], "subject": "Shipped",
                        "html": "<p>On its way.</p>"})
    for key in (twilio_child, resend_child):
        [row] = rows_of(sql, key["id"])
        assert (row["decision"], row["agent_run_id"]) == ("allowed", run_id), row


def test_a_child_sending_another_run_id_is_refused_on_its_own_run(proxy_url, admin, make_key, sql, run_id):
    child = mint(admin, make_key(policy())["id"], agent_run_id=run_id)
    with pytest.raises(stripe.PermissionError) as refused:
        charge(stripe_client(proxy_url, child["key"]), headers={"X-Agent-Run-Id": "someone-elses-run"})
    assert refused.value.error.code == "run_id_mismatch" and run_id in str(refused.value)
    [row] = rows_of(sql, child["id"])
    assert (row["decision"], row["reason"], row["agent_run_id"]) == ("blocked", "run_id_mismatch", run_id)


def test_a_childs_calls_count_against_its_parents_caps(proxy_url, admin, make_key, sql, run_id):
    parent = make_key(policy(caps=[{"usd": "5.00", "window": "day"}]))
    child = mint(admin, parent["id"], agent_run_id=run_id, policy={"caps": [{"usd": "4.00", "window": "run"}]})
    kid = stripe_client(proxy_url, child["key"])
    charge(kid, 300)
    with pytest.raises(stripe.PermissionError) as own_cap:
        charge(kid, 150)  # $4.50 of the child's $4.00 per run
    assert own_cap.value.error.code == "cap_exceeded" and "per run reached:" in str(own_cap.value)
    charge(stripe_client(proxy_url, parent["key"]), 150)  # the parent: $4.50 of its $5.00
    with pytest.raises(stripe.PermissionError) as parents_cap:
        charge(kid, 100)  # fits the child's own cap, not the parent's
    assert f"per day reached on {parent['id']}, which delegated this key" in str(parents_cap.value)
    counters = {(r["key_id"], r["bucket"].partition(":")[0]): r for r in sql.execute(
        "SELECT * FROM budget_counters WHERE key_id = ANY (%s)", ([parent["id"], child["id"]],)).fetchall()}
    assert counters[(parent["id"], "day")]["spent_usd"] == Decimal("4.50")
    assert counters[(child["id"], "run")]["spent_usd"] == Decimal("3.00")
    assert not sql.execute("SELECT 1 FROM reservations WHERE key_id = %s", (child["id"],)).fetchall()


def test_revoking_a_parent_refuses_its_whole_subtree_on_the_next_request(proxy_url, admin, make_key, run_id):
    parent = make_key(policy())
    child = mint(admin, parent["id"], agent_run_id=run_id)
    grandchild = mint(admin, child["id"])  # a run-bound parent's child shares its run
    assert (grandchild["depth"], grandchild["agent_run_id"]) == (2, run_id)
    charge(stripe_client(proxy_url, grandchild["key"]))  # warm: the key is in the process's cache
    assert admin.post(f"/admin/v1/keys/{parent['id']}/revoke").status_code == 200
    for key in (child, grandchild):
        with pytest.raises(stripe.AuthenticationError) as refused:
            charge(stripe_client(proxy_url, key["key"]))
        assert refused.value.error.code == "key_revoked"
    assert [c["status"] for c in admin.get(f"/admin/v1/keys/{child['id']}").json()["children"]] == ["revoked"]


def test_an_expired_child_is_refused(proxy_url, admin, make_key, run_id):
    child = mint(admin, make_key(policy())["id"], agent_run_id=run_id, ttl_s=1)
    time.sleep(1.2)  # waits out the TTL; nothing is timed
    with pytest.raises(stripe.AuthenticationError) as refused:
        charge(stripe_client(proxy_url, child["key"]))
    assert refused.value.error.code == "key_expired"


def test_the_agent_mints_a_child_only_where_its_policy_allows_and_no_deeper(proxy_url, admin, make_key, run_id):
    def delegate(key: str, **body: Any) -> httpx.Response:
        return httpx.post(f"{proxy_url}/tollgate/v1/delegate", headers={"authorization": f"Bearer {key}"},
                          json={"agent_run_id": run_id, **body})

    closed = make_key(policy())
    refused = delegate(closed["key"])
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "delegation_not_allowed")
    opened = make_key(policy(delegation={"allowed": True, "max_depth": 1, "max_ttl_s": 600}))
    assert delegate(opened["key"], ttl_s=601).json()["error"]["code"] == "invalid_ttl"
    child = delegate(opened["key"], policy={"endpoints": {"allow": ["POST /v1/refunds", "POST /v1/payouts"]}})
    assert child.status_code == 201, child.text
    assert child.json()["policy"]["endpoints"] == {"allow": ["POST /v1/refunds"]}  # only narrows
    too_deep = delegate(child.json()["key"])
    assert (too_deep.status_code, too_deep.json()["error"]["code"]) == (403, "delegation_too_deep")
    by_operator = admin.post(f"/admin/v1/keys/{child.json()['id']}/children", json={})
    assert by_operator.json()["error"]["code"] == "delegation_too_deep"


def test_runs_show_and_the_cookbook_say_who_delegated_the_spend_to_whom(proxy_url, admin, make_key, sql, run_id,
                                                                         pg_url):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}
    env.update(DATABASE_URL=pg_url, TOLLGATE_MASTER_KEY=MASTER_KEY)

    def tollgate(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "proxy", *args], env=env, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    parent = make_key(policy(), label="orchestrator")
    child = mint(admin, parent["id"], agent_run_id=run_id, label="refund-worker")
    grandchild = json.loads(tollgate("keys", "delegate", child["id"], "--ttl", "15m", "--label", "sub-worker",
                                     "--json"))
    assert (grandchild["depth"], grandchild["agent_run_id"], grandchild["parent_key_id"]) == (2, run_id, child["id"])
    charge(stripe_client(proxy_url, child["key"]), 250)
    charge(stripe_client(proxy_url, grandchild["key"]), 125)
    story = admin.get(f"/admin/v1/runs/{run_id}").json()
    assert [k["id"] for k in story["delegation"][grandchild["id"]]] == [grandchild["id"], child["id"], parent["id"]]
    answer = sql.execute(QUERIES["delegated_spend"].replace(":'run_id'", "%(run_id)s"), {"run_id": run_id}).fetchall()
    assert [(r["key_id"], r["depth"], r["cost_usd"], r["delegation_chain"]) for r in answer] == [
        (child["id"], 1, Decimal("2.50"), f"{parent['id']} -> {child['id']}"),
        (grandchild["id"], 2, Decimal("1.25"), f"{parent['id']} -> {child['id']} -> {grandchild['id']}")]
    assert (f"{parent['id']} (orchestrator) -> {child['id']} (refund-worker) -> {grandchild['id']} (sub-worker): "
            "1.25 USD") in tollgate("runs", "show", run_id)


def test_a_tree_shares_its_records_so_created_through_key_spans_the_delegation(proxy_url, admin, make_key, sql,
                                                                              run_id):
    """What a child creates is created through its parent too (migrations/sql/v0021.py), and a child
    judges "created through this key" by its tree's records: neither key can act on a customer made
    outside the tree, each can act on one the other made."""
    parent = make_key(policy(customers={"created_through_key": True}))
    child = mint(admin, parent["id"], agent_run_id=run_id)
    by_child = stripe_client(proxy_url, child["key"]).v1.customers.create(params={"email": "kid@example.com",
                                                                                                "source": "tok_visa"})
    by_parent = stripe_client(proxy_url, parent["key"]).v1.customers.create(params={"email": "mom@example.com",
                                                                                                  "source": "tok_visa"})
    for key, customer in ((parent, by_child.id), (child, by_parent.id)):
        made = stripe_client(proxy_url, key["key"]).v1.charges.create(
            params={"amount": 500, "currency": "usd", "customer": customer})
        assert made.customer == customer
    recorded = sql.execute("SELECT key_id FROM key_objects WHERE object_id = %s ORDER BY key_id",
                           (by_child.id,)).fetchall()
    assert sorted(r["key_id"] for r in recorded) == sorted([parent["id"], child["id"]])
    with pytest.raises(stripe.PermissionError) as refused:
        stripe_client(proxy_url, child["key"]).v1.charges.create(
            params={"amount": 500, "currency": "usd", "customer": "cus_NotOurs1"})
    assert refused.value.error.code == "customer_not_allowed"


def test_a_childs_later_price_moves_its_parents_counters_too(proxy_url, admin, make_key, sql, run_id,
                                                             twilio_emulator, pg_url):
    """Twilio prices a message after the call (tollgate_reprice): the difference reaches every
    counter the call was counted in, the parent's as well as the child's."""
    from tests.test_e2e_twilio import US_SEGMENT, reprice

    parent = make_key({"vendor": "twilio", "endpoints": {"allow": ["POST /2010-04-01/Accounts/*/Messages.json"]},
                       "caps": [{"usd": "1.00", "window": "day"}]},
                      vendor="twilio", secret=TWILIO_TOKEN, upstream_account=TWILIO_ACCOUNT)
    child = mint(admin, parent["id"], agent_run_id=run_id, policy={"caps": [{"usd": "0.50", "window": "day"}]})
    sms = Client(TWILIO_ACCOUNT, child["key"])
    sms.api.base_url = f"{proxy_url}/twilio"
    message = sms.messages.create(to="+14155550100", from_=SENDER, body="Reminder: 10:00 tomorrow.")

    def day_spend() -> dict[str, Decimal]:
        return {r["key_id"]: r["spent_usd"] for r in sql.execute(
            "SELECT key_id, spent_usd FROM budget_counters WHERE key_id = ANY (%s) AND bucket LIKE 'day:%%'",
            ([parent["id"], child["id"]],))}

    assert day_spend() == {parent["id"]: US_SEGMENT, child["id"]: US_SEGMENT}
    twilio_emulator[1].state.store.set_price(message.sid, "-0.00790")
    assert reprice(pg_url, twilio_emulator[0]).repriced >= 1
    assert day_spend() == {parent["id"]: Decimal("0.0079"), child["id"]: Decimal("0.0079")}
