"""The README's runaway-agent story, end to end: a support agent's retry loop of 50 identical
refunds under the shipped example policy (policy-schemas/examples/stripe-support-refunds.json,
unchanged), through stripe-python and the real proxy. One refund reaches the emulator, the
duplicate guard refuses the next five, the fifth refusal halts the run (``stop.max_refusals``),
every later call is refused ``run_halted``, the webhook receiver gets the ``run_halted`` alert,
and the README's SQL explains it. If this test changes, the README's story changes with it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import stripe
from psycopg.rows import dict_row

from proxy.alerts import render
from tests.support.webhooks import receiver, until
from tests.test_duplicate_calls import refunds_forwarded

EXAMPLE = Path(__file__).resolve().parents[1] / "policy-schemas" / "examples" / "stripe-support-refunds.json"


def _code(call: Any) -> str:
    try:
        call()
    except stripe.StripeError as exc:
        return exc.error.code if exc.error else "?"
    return "ok"


def test_a_refund_loop_is_stopped_alerted_and_explained(proxy_url, make_key, admin, pg_url, run_id, stripe_emulator):
    policy = json.loads(EXAMPLE.read_text())
    key = make_key(policy)
    agent = stripe.StripeClient(key["key"], base_addresses={"api": f"{proxy_url}/stripe"}, max_network_retries=0)
    in_run = {"headers": {"X-Agent-Run-Id": run_id}}
    with receiver() as (url, got):
        subscription = admin.post("/admin/v1/alerts/subscriptions", json={"url": url, "events": ["run_halted"]})
        assert subscription.status_code == 201, subscription.text
        try:
            customer = agent.v1.customers.create(params={"email": "ada@example.com", "source": "tok_visa"},
                                                 options=in_run)
            charge = agent.v1.charges.create(params={"amount": 2000, "currency": "usd", "customer": customer.id},
                                             options=in_run)
            loop = [_code(lambda: agent.v1.refunds.create(params={"charge": charge.id, "amount": 1500},
                                                          options=in_run)) for _ in range(50)]
            halts = until(lambda: [d.event for d in got.accepted() if d.event["data"]["agent_run_id"] == run_id],
                          "the run_halted alert")
        finally:
            admin.delete(f"/admin/v1/alerts/subscriptions/{subscription.json()['id']}")

    assert loop == ["ok"] + ["duplicate_call"] * 5 + ["run_halted"] * 44
    assert refunds_forwarded(stripe_emulator[1], charge.id) == 1  # the vendor saw one refund
    [alert] = halts
    assert (alert["type"], alert["data"]["condition"], alert["data"]["key_id"]) == (
        "run_halted", "max_refusals", key["id"])
    assert render.sentence("run_halted", alert["data"]) == (  # what a Slack subscriber reads
        f":octagonal_sign: Run {run_id} was halted: max_refusals (5 refusals within 300 s); every key refuses it "
        f"until `tollgate runs resume {run_id}`.")
    with psycopg.connect(pg_url, row_factory=dict_row) as sql:
        [halted] = sql.execute("SELECT condition, detail, key_id FROM halted_runs WHERE agent_run_id = %s",
                               [run_id]).fetchall()
        by_reason = sql.execute(
            "SELECT decision, reason, count(*) AS calls FROM audit_events WHERE agent_run_id = %s "
            "GROUP BY decision, reason ORDER BY calls DESC", [run_id]).fetchall()
    assert halted == {"condition": "max_refusals", "detail": "5 refusals within 300 s", "key_id": key["id"]}
    assert {(r["decision"], r["reason"], r["calls"]) for r in by_reason} == {
        ("blocked", "run_halted", 44), ("blocked", "duplicate_call", 5), ("allowed", None, 3)}
    assert admin.post(f"/admin/v1/runs/{run_id}/resume").status_code == 200  # a human looked: go on
