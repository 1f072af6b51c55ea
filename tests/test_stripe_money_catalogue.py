"""Guarantee 8 over the whole catalogue: every money-moving operation stripe-python 16 can send
(/v1 forms, /v2 JSON, on whichever host the SDK sends it to), called through the SDK with an amount
over the per-call limit or with none Tollgate can learn, is refused before it reaches Stripe (the
emulator sees at most the GET that tried to price it).

The operations come from vendors/stripe/operations.json, itself held to stripe-python's service
modules by tests/test_stripe_catalogue.py, so a money operation a new SDK adds is covered here
as soon as it is classified."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import stripe

from tests.support import stripe_money
from tests.support.tollgate import audit_rows
from vendors.stripe import catalogue

OPERATIONS = [op for op in json.loads(catalogue.CATALOGUE.read_text())["operations"]
              if op["kind"] in catalogue.PRICED_KINDS]  # /v1 forms, /v2 JSON, on every host they are sent to


def _pattern(op: dict[str, Any]) -> str:
    prefix = "" if op["host"] == "api" else f"/{op['host']}"  # policies name another host by its route
    return f"{op['method']} {prefix}{re.sub(r'{[^}]+}', '*', op['path'])}"


def _nested(name: str, value: Any) -> dict[str, Any]:
    """``amount[monetary][value]`` = v as the nested params the SDK encodes."""
    parts = name.replace("]", "").split("[")
    out: dict[str, Any] = {parts[-1]: value}
    for part in reversed(parts[:-1]):
        out = {part: out}
    return out


def _merge(into: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    for key, value in more.items():
        into[key] = _merge(into.get(key, {}), value) if isinstance(value, dict) else value
    return into


def _call(op: dict[str, Any], with_amount: bool) -> tuple[str, dict[str, Any]]:
    path = re.sub(r"{[^}]+}", "xx_Tollgate0000000001", op["path"])
    money = op.get("money") or {}
    params: dict[str, Any] = {}
    if money.get("moves_when"):
        params[money["moves_when"]["param"]] = money["moves_when"]["equals"]
    if with_amount and money.get("amount"):
        # 6,000.00 USD: digits in a /v1 form, a JSON integer in a /v2 body (stripe.v2.Amount's value: int)
        _merge(params, _nested(money["amount"], 600000 if op["path"].startswith("/v2/") else "600000"))
        _merge(params, _nested(money.get("currency", "currency"), "usd"))
    return path, params


@pytest.fixture()
def client(proxy_url, make_key):
    policy = {"vendor": "stripe", "per_call_usd": "50.00",
              "endpoints": {"allow": sorted({_pattern(op) for op in OPERATIONS})}}
    key = make_key(policy)
    return stripe.StripeClient(key["key"], max_network_retries=0, base_addresses={
        "api": f"{proxy_url}/stripe", "meter_events": f"{proxy_url}/stripe/meter_events"})


def test_every_money_operation_is_covered() -> None:
    assert len(OPERATIONS) >= 75
    assert {"POST /v1/refunds", "POST /v1/invoices/*/pay", "POST /v1/transfers/*/reversals", "POST /v1/credit_notes",
            "POST /v1/payment_intents/*/confirm", "POST /v1/charges/*/capture", "POST /v1/payouts",
            "POST /v2/money_management/outbound_payments", "POST /v2/money_management/payout_intents/*/confirm",
            "POST /meter_events/v2/billing/meter_event_stream"} <= {_pattern(op) for op in OPERATIONS}


@pytest.mark.parametrize("with_amount", [True, False], ids=["over the limit", "no amount"])
def test_no_money_operation_moves_unpriced(client, sql, run_id, stripe_emulator, stripe_hosts, with_amount) -> None:
    received = stripe_emulator[1].state.received
    elsewhere = [app.state.received for _, app in stripe_hosts.values()]
    elsewhere_before = [len(r) for r in elsewhere]
    outcomes = {}
    for op in OPERATIONS:
        if with_amount and not (op.get("money") or {}).get("amount"):
            continue
        path, params = _call(op, with_amount)
        before = len(received)
        with pytest.raises(stripe.PermissionError) as refused:
            client.raw_request(op["method"].lower(), path, **params, stripe_version=None, base=op["host"],
                               headers={"X-Agent-Run-Id": run_id})
        outcomes[_pattern(op)] = refused.value.error.code if refused.value.error else None
        assert all(r.method == "GET" for r in received[before:]), op  # at most the read that tried to price it
    assert [len(r) for r in elsewhere] == elsewhere_before  # the other hosts: nothing at all
    expected = "per_call_limit" if with_amount else "cost_unknown"
    assert {p: code for p, code in outcomes.items() if code != expected} == {}
    rows = audit_rows(sql, run_id)
    assert len(rows) == len(outcomes) and {r["decision"] for r in rows} == {"blocked"}
    assert all(r["endpoint"] and "xx_" not in r["endpoint"] for r in rows)  # named by template, never by id


# Under the limit: every money operation, called through the SDK's own service method with what a
# caller would send (tests/support/stripe_money.py), is forwarded and priced. One that names its
# amount or acts on an object Tollgate reads first is predicted before it leaves; one that can be
# priced only after the fact is let through by naming it in priced_after, and then costs what
# Stripe's answer says moved (or, where the answer says nothing, is recorded as not known: 'none').

def _priced(op: dict[str, Any]) -> str:
    money = op.get("money") or {}
    return "request" if money.get("amount") else "lookup" if money.get("lookup") else "after"


MONEY_PATTERNS = sorted({_pattern(op) for op in OPERATIONS})
AFTER_ONLY = sorted({_pattern(op) for op in OPERATIONS if _priced(op) == "after"})
# What the objects a call acts on are made with (tests/support/stripe_money.py's Setup).
SETUP_PATTERNS = ["POST /v1/customers", "POST /v1/quotes", "POST /v1/terminal/readers",
                  "POST /v1/test_helpers/test_clocks", "POST /v1/treasury/financial_accounts",
                  "POST /v2/money_management/financial_addresses"]


@pytest.fixture()
def setup(proxy_url, make_key) -> stripe_money.Setup:
    key = make_key({"vendor": "stripe", "endpoints": {"allow": MONEY_PATTERNS + SETUP_PATTERNS,
                                                      "priced_after": MONEY_PATTERNS}})
    return stripe_money.Setup(stripe.StripeClient(key["key"], max_network_retries=0, base_addresses={
        "api": f"{proxy_url}/stripe", "meter_events": f"{proxy_url}/stripe/meter_events"}))


def test_every_money_operation_has_a_call() -> None:
    assert sorted(stripe_money.CALLS) == sorted(f"{op['method']} {catalogue.prefix_of(op['host'])}{op['path']}"
                                                for op in OPERATIONS)


@pytest.mark.parametrize("op", OPERATIONS, ids=_pattern)
def test_a_money_operation_under_the_limit_is_forwarded_and_priced(op, setup, proxy_url, make_key, sql,
                                                                   run_id) -> None:
    key = make_key({"vendor": "stripe", "per_call_usd": "50.00",
                    "endpoints": {"allow": MONEY_PATTERNS, "priced_after": AFTER_ONLY}})
    client = stripe.StripeClient(key["key"], max_network_retries=0, base_addresses={
        "api": f"{proxy_url}/stripe", "meter_events": f"{proxy_url}/stripe/meter_events"})
    args, params = stripe_money.CALLS[f"{op['method']} {catalogue.prefix_of(op['host'])}{op['path']}"](setup)
    send = stripe_money.service_method(client, op["method"], op["path"], op["host"])
    send(*args, params=params, options={"headers": {"X-Agent-Run-Id": run_id}})
    [row] = audit_rows(sql, run_id)
    assert (row["decision"], row["reason"], row["upstream_status"]) == ("allowed", None, 200)
    told = (op.get("money") or {}).get("response")
    if _priced(op) != "after":  # predicted before it left, and priced from the answer or at the prediction
        assert row["predicted_usd"] > 0 and row["cost_usd"] > 0, row
        assert row["cost_source"] == ("parsed" if told else "estimated") and row["currency"] == "usd"
    elif told:  # let through by priced_after: Stripe's answer says what moved
        assert (row["cost_source"], row["currency"]) == ("parsed", "usd") and row["cost_usd"] > 0, row
    else:  # ... or says nothing: recorded as not known, never as a price
        assert (row["cost_source"], row["cost_usd"]) == ("none", 0), row
