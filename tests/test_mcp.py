"""Tollgate's /mcp endpoint driven by the official MCP Python client: the tools a policy offers,
calls through the same pipeline as the vendor routes (scope, limits, approvals, revocation, the
audit row), refusals an LLM can read, and the run id on every row of a session."""

from __future__ import annotations

import uuid
from decimal import Decimal

import httpx
import pytest
import stripe
from mcp.shared.exceptions import MCPError

from tests.support.mcpclient import all_tools, connect
from tests.support.tollgate import RESEND_SECRET, STRIPE_SECRET, TWILIO_ACCOUNT, TWILIO_TOKEN, audit_rows, policy
from vendors.resend import ResendAdapter
from vendors.stripe import StripeAdapter
from vendors.twilio import TwilioAdapter

CHARGE = {"amount": 2000, "currency": "usd", "source": "tok_visa"}
MESSAGES = "/2010-04-01/Accounts/{AccountSid}/Messages.json"


def tool(adapter, method: str, path: str) -> str:
    """A tool's name, from the catalogue: the tests do not spell the vendors' naming."""
    [name] = [t.name for t in adapter.tools() if (t.method, t.path) == (method, path)]
    return name


CHARGES, REFUNDS = tool(StripeAdapter(), "POST", "/v1/charges"), tool(StripeAdapter(), "POST", "/v1/refunds")
PAYOUTS = tool(StripeAdapter(), "POST", "/v1/payouts")
SMS = tool(TwilioAdapter(), "POST", MESSAGES)
EMAIL = tool(ResendAdapter(), "POST", "/emails")


def text_of(result) -> str:
    return " ".join(block.text for block in result.content)


async def test_a_restrictive_policy_offers_only_what_it_allows(proxy_url, make_key):
    key = make_key({"vendor": "stripe", "endpoints": {"allow": ["POST /v1/charges", "POST /v1/refunds"]}})
    async with connect(proxy_url, key["key"]) as client:
        tools = await all_tools(client)
    assert sorted(t.name for t in tools) == sorted([CHARGES, REFUNDS])
    charges = next(t for t in tools if t.name == CHARGES)
    assert {"amount", "currency"} <= set(charges.input_schema["properties"])
    assert "per-call limit" in charges.description and charges.annotations.destructive_hint


async def test_a_permissive_policy_offers_pages_of_tools_but_never_a_credential(proxy_url, make_key):
    everything = [f"{op.method} {op.path}" for op in StripeAdapter().operations()]  # credentials too
    key = make_key({"vendor": "stripe", "endpoints": {"allow": everything}})
    async with connect(proxy_url, key["key"]) as client:
        tools = await all_tools(client)
    by_path = {(t.method, t.path): t for t in StripeAdapter().tools()}
    offered = {t.name for t in tools}
    assert len(offered) == len(tools) > 100  # more than one page (offer.PAGE)
    unpriced = {t.name for t in by_path.values() if t.priced == "after"}
    assert not unpriced & offered  # refused cost_unknown whatever the arguments: not worth offering
    issuing = {t.name for t in by_path.values() if t.kind == "issues_credentials"}
    assert issuing and not issuing & offered  # ephemeral keys, account links, login links...
    assert tool(StripeAdapter(), "POST", "/v1/ephemeral_keys") not in offered
    assert {CHARGES, REFUNDS, PAYOUTS} <= offered


async def test_a_charge_and_an_over_limit_refund_as_tools(proxy_url, make_key, sql, run_id):
    key = make_key(policy(per_call_usd="50.00"))
    async with connect(proxy_url, key["key"], run_id) as client:
        charged = await client.call_tool(CHARGES, CHARGE)
        refund = await client.call_tool(REFUNDS, {"charge": charged.structured_content["id"], "amount": 9000})
    assert not charged.is_error and charged.structured_content["status"] == "succeeded"
    assert refund.is_error
    rows = audit_rows(sql, run_id)
    assert [(r["decision"], r["reason"], r["cost_usd"]) for r in rows] == [
        ("allowed", None, Decimal("20")), ("blocked", "per_call_limit", Decimal("0"))]
    assert rows[1]["message"] in text_of(refund) and "per_call_limit" in text_of(refund)
    assert "over the per-call limit of 50.00 USD" in text_of(refund)
    assert refund.structured_content["reason"] == "per_call_limit"
    assert [(r["request_summary"]["via"], r["request_summary"]["tool"]) for r in rows] == [
        ("mcp", CHARGES), ("mcp", REFUNDS)]


async def test_mcp_and_http_calls_get_the_same_decisions_and_costs(proxy_url, make_key, sql):
    over_mcp, over_http = f"run_{uuid.uuid4().hex}", f"run_{uuid.uuid4().hex}"
    key = make_key(policy(per_call_usd="50.00"))
    async with connect(proxy_url, key["key"], over_mcp) as client:
        await client.call_tool(CHARGES, CHARGE)
        await client.call_tool(CHARGES, {**CHARGE, "amount": 9000})
        await client.call_tool(PAYOUTS, {"amount": 500, "currency": "usd"})
    sdk = stripe.StripeClient(key["key"], base_addresses={"api": f"{proxy_url}/stripe"}, max_network_retries=0)
    options = {"headers": {"X-Agent-Run-Id": over_http}}
    sdk.v1.charges.create(params=CHARGE, options=options)
    for params, call in (({**CHARGE, "amount": 9000}, sdk.v1.charges.create),
                         ({"amount": 500, "currency": "usd"}, sdk.v1.payouts.create)):
        with pytest.raises(stripe.StripeError):
            call(params=params, options=options)

    def decisions(run: str) -> list[tuple]:
        return [(r["endpoint"], r["decision"], r["reason"], r["predicted_usd"], r["cost_usd"], r["message"])
                for r in audit_rows(sql, run)]
    assert decisions(over_mcp) == decisions(over_http)
    assert [d[2] for d in decisions(over_mcp)] == [None, "per_call_limit", "endpoint_not_allowed"]
    assert all("via" not in (r["request_summary"] or {}) for r in audit_rows(sql, over_http))


async def test_an_sms_is_priced_and_an_email_to_a_forbidden_domain_refused(proxy_url, make_key, sql, run_id):
    twilio = make_key({"vendor": "twilio", "endpoints": {"allow": ["POST /2010-04-01/Accounts/*/Messages.json"]},
                       "recipients": {"countries": ["US"]}, "senders": ["+15005550006"]},
                      vendor="twilio", secret=TWILIO_TOKEN, upstream_account=TWILIO_ACCOUNT)
    resend = make_key({"vendor": "resend", "endpoints": {"allow": ["POST /emails"]},
                       "recipients": {"domains": ["acme.example"]}}, vendor="resend", secret=RESEND_SECRET)
    async with connect(proxy_url, twilio["key"], run_id) as client:
        sent = await client.call_tool(SMS, {"To": "+14155550100", "From": "+15005550006", "Body": "Your code is 1234"})
    async with connect(proxy_url, resend["key"], run_id) as client:
        mailed = await client.call_tool(EMAIL, {"from": "receipts@acme.example", "to": ["someone@gmail.example"],
                                                "subject": "Receipt", "html": "<p>Thanks</p>"})
    assert not sent.is_error and sent.structured_content["sid"].startswith("SM")
    assert mailed.is_error and "recipient_not_allowed" in text_of(mailed)
    sms, email = audit_rows(sql, run_id)
    assert (sms["vendor"], sms["decision"], sms["vendor_account"]) == ("twilio", "allowed", TWILIO_ACCOUNT)
    assert sms["cost_usd"] > 0 and sms["predicted_usd"] > 0
    assert (email["vendor"], email["decision"], email["reason"]) == ("resend", "blocked", "recipient_not_allowed")
    assert email["message"] in text_of(mailed)


async def test_a_revoked_key_is_refused_on_the_next_call(proxy_url, make_key, admin, sql, run_id):
    key = make_key(policy())
    async with connect(proxy_url, key["key"], run_id) as client:
        assert not (await client.call_tool(CHARGES, CHARGE)).is_error
        assert admin.post(f"/admin/v1/keys/{key['id']}/revoke").status_code == 200
        refused = await client.call_tool(CHARGES, CHARGE)
        with pytest.raises(MCPError, match="key_revoked: This vault key has been revoked"):
            await all_tools(client)  # and it is offered nothing more
    assert refused.is_error and "key_revoked" in text_of(refused)
    assert [(r["decision"], r["reason"]) for r in audit_rows(sql, run_id)] == [
        ("allowed", None), ("blocked", "key_revoked")]


async def test_a_held_call_says_how_to_ask_again(proxy_url, make_key, admin, sql, run_id):
    document = policy()
    document["endpoints"]["require_approval"] = ["POST /v1/payouts"]
    key = make_key(document)
    payout = {"amount": 25000, "currency": "usd", "description": "quarterly"}
    async with connect(proxy_url, key["key"], run_id) as client:
        held = await client.call_tool(PAYOUTS, payout)
        approval_id = held.structured_content["approval_id"]
        assert held.is_error and f"call {PAYOUTS} again with exactly these arguments" in text_of(held)
        assert admin.post(f"/admin/v1/approvals/{approval_id}/approve").status_code == 200
        paid = await client.call_tool(PAYOUTS, payout)
    assert not paid.is_error and paid.structured_content["id"].startswith("po_")
    assert [(r["decision"], r["reason"]) for r in audit_rows(sql, run_id)] == [
        ("approval_required", "endpoint_requires_approval"), ("allowed", None)]


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_every_row_of_a_session_carries_its_run_id(proxy_url, make_key, sql, run_id, mode):
    key = make_key(policy())
    async with connect(proxy_url, key["key"], run_id, mode=mode) as client:
        for _ in range(3):
            await client.call_tool(CHARGES, {**CHARGE, "amount": 100})
    rows = sql.execute("SELECT agent_run_id FROM audit_events WHERE key_id = %s", (key["id"],)).fetchall()
    assert [r["agent_run_id"] for r in rows] == [run_id] * 3


async def test_a_policy_change_shows_in_the_next_list_and_is_announced(proxy_url, make_key, admin):
    key = make_key({"vendor": "stripe", "endpoints": {"allow": ["POST /v1/charges", "POST /v1/refunds"]}})
    told: list[str] = []

    async def heard(message) -> None:
        told.append(getattr(getattr(message, "root", message), "method", type(message).__name__))
    async with connect(proxy_url, key["key"], message_handler=heard) as client:
        assert len(await all_tools(client)) == 2
        narrower = {"vendor": "stripe", "endpoints": {"allow": ["POST /v1/charges"]}}
        assert admin.post(f"/admin/v1/policies/{key['policy_id']}/versions",
                          json={"document": narrower}).status_code == 201
        refused = await client.call_tool(REFUNDS, {"charge": "ch_x", "amount": 100})
        assert refused.is_error and "endpoint_not_allowed" in text_of(refused)
        assert [t.name for t in await all_tools(client)] == [CHARGES]
    assert "notifications/tools/list_changed" in told


def test_no_key_no_mcp(proxy_url):
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    accept = {"accept": "application/json, text/event-stream"}
    bare = httpx.post(f"{proxy_url}/mcp", json=body, headers=accept)
    forged = httpx.post(f"{proxy_url}/mcp", json=body, headers={**accept, "authorization": "Bearer tg_nope"})
    assert bare.status_code == forged.status_code == 401
    assert bare.headers["www-authenticate"].startswith("Bearer ") and bare.json()["error"] == "missing_key"
    assert forged.json()["error"] == "malformed_key"
    assert STRIPE_SECRET not in bare.text + forged.text


async def test_the_console_and_the_cookbook_show_mcp_calls_beside_http_ones(proxy_url, make_key, sql, run_id):
    from tests.test_console import sign_in
    from tests.test_sql_cookbook import run

    key = make_key(policy())
    async with connect(proxy_url, key["key"], run_id) as client:
        await client.call_tool(CHARGES, CHARGE)
    sdk = stripe.StripeClient(key["key"], base_addresses={"api": f"{proxy_url}/stripe"}, max_network_retries=0)
    sdk.v1.charges.create(params=CHARGE, options={"headers": {"X-Agent-Run-Id": run_id}})
    with httpx.Client(base_url=proxy_url, timeout=10) as browser:
        assert sign_in(browser).status_code == 303
        live = browser.get("/console/calls", params={"key_id": key["id"]}).text
        story = browser.get(f"/console/runs/{run_id}").text
    for page in (live, story):
        assert page.count("POST /v1/charges") >= 2  # both calls, one of them marked as a tool call
        assert page.count(f"MCP · {CHARGES}") == 1
    assert [(r["called_as"], r["calls"]) for r in run(sql, "mcp_tools", run_id)] == [
        (CHARGES, 1), ("(HTTP) POST /v1/charges", 1)]


async def test_arguments_that_are_no_request_are_refused_on_a_row(proxy_url, make_key, sql, run_id):
    key = make_key(policy())
    async with connect(proxy_url, key["key"], run_id) as client:
        refused = await client.call_tool(CHARGES, {"amount": "a lot", "currency": "usd"})
        unknown = await client.call_tool("no_such_tool", {})
    assert refused.is_error and "invalid_tool_arguments" in text_of(refused) and "amount" in text_of(refused)
    assert unknown.is_error and "tools/list" in text_of(unknown)
    [row] = audit_rows(sql, run_id)
    assert (row["decision"], row["reason"], row["endpoint"]) == (
        "blocked", "invalid_tool_arguments", "POST /v1/charges")
    assert row["request_summary"] == {"via": "mcp", "tool": CHARGES}


def test_a_plugin_without_tools_offers_none():
    from proxy.mcp import offer
    from tests.plugins.acme import AcmeAdapter

    assert offer.catalogue(AcmeAdapter()) == () and offer.named(AcmeAdapter(), CHARGES) is None
    assert offer.catalogue(StripeAdapter()) and offer.named(StripeAdapter(), CHARGES).path == "/v1/charges"
