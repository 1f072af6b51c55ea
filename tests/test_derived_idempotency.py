"""Derived idempotency keys (policy ``"idempotency": {"derive": true}``, proxy/idempotency.py):
a run's retry loop that sends no Idempotency-Key (a hand-written HTTP client, resend-python)
makes one object at the vendor, which answers the copies from its cache; without a run id,
with the agent's own keys, or in another run, nothing is derived; and the duplicate guard
still refuses a derived copy inside its window rather than taking it for a replay."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
import resend
import stripe

from proxy.idempotency import PREFIX
from tests.support.runid import ResendRunClient
from tests.support.tollgate import RESEND_SECRET, audit_rows, policy

DERIVE = {"idempotency": {"derive": True}}


def stripe_post(proxy_url: str, key: str, path: str, form: dict[str, Any], run_id: str | None,
                idempotency_key: str | None = None) -> httpx.Response:
    """A POST as a hand-written client (an agent's HTTP tool) sends it: no key unless given."""
    headers = {"authorization": f"Bearer {key}"}
    if run_id is not None:
        headers["x-agent-run-id"] = run_id
    if idempotency_key is not None:
        headers["idempotency-key"] = idempotency_key
    return httpx.post(f"{proxy_url}/stripe{path}", data=form, headers=headers)


def charged(proxy_url: str, key: str, run_id: str | None) -> str:
    answer = stripe_post(proxy_url, key, "/v1/charges", {"amount": "5000", "currency": "usd", "source": "tok_visa"},
                         run_id)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["id"])


def refunds_at_vendor(stripe_emulator: Any, charge: str) -> list[dict[str, Any]]:
    return [r for r in stripe_emulator[1].state.store.newest_first("refund") if r["charge"] == charge]


def refund_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r["endpoint"] == "POST /v1/refunds"]


def test_a_runs_retry_loop_without_keys_makes_one_refund(proxy_url, make_key, sql, run_id, stripe_emulator):
    key = make_key(policy(**DERIVE))["key"]
    charge = charged(proxy_url, key, run_id)
    answers = [stripe_post(proxy_url, key, "/v1/refunds", {"charge": charge, "amount": "700"}, run_id)
               for _ in range(10)]

    assert [a.status_code for a in answers] == [200] * 10
    assert len({a.json()["id"] for a in answers}) == 1  # every copy answered with the first refund
    assert len(refunds_at_vendor(stripe_emulator, charge)) == 1
    rows = refund_rows(audit_rows(sql, run_id))
    assert [r["reason"] for r in rows] == [None] + ["idempotent_replay"] * 9
    assert len({r["idempotency_key"] for r in rows}) == 1 and rows[0]["idempotency_key"].startswith(PREFIX)
    assert all(r["request_summary"]["idempotency"] == "derived" for r in rows)
    assert sum(r["cost_usd"] for r in rows) == 7  # the replays cost nothing: one refund counted


def test_the_key_depends_on_the_run_and_the_call(proxy_url, make_key, sql, stripe_emulator):
    key = make_key(policy(**DERIVE))["key"]
    first_run, second_run = (f"run_{uuid.uuid4().hex}" for _ in range(2))
    charge = charged(proxy_url, key, first_run)
    for run in (first_run, second_run, first_run):
        stripe_post(proxy_url, key, "/v1/refunds", {"charge": charge, "amount": "100"}, run)
    stripe_post(proxy_url, key, "/v1/refunds", {"amount": "200", "charge": charge}, first_run)
    stripe_post(proxy_url, key, "/v1/refunds", {"charge": charge, "amount": "200"}, first_run)  # same, reordered

    assert sorted(r["amount"] for r in refunds_at_vendor(stripe_emulator, charge)) == [100, 100, 200]
    first, second = refund_rows(audit_rows(sql, first_run)), refund_rows(audit_rows(sql, second_run))
    assert first[0]["idempotency_key"] == first[1]["idempotency_key"] != second[0]["idempotency_key"]
    assert first[2]["idempotency_key"] == first[3]["idempotency_key"] != first[0]["idempotency_key"]


def test_nothing_is_derived_without_a_run_id_or_against_the_agents_own_key(proxy_url, make_key, sql, run_id,
                                                                           stripe_emulator):
    made = make_key(policy(**DERIVE))
    charge = charged(proxy_url, made["key"], run_id)
    for _ in range(2):  # no run: nothing says the two belong together
        stripe_post(proxy_url, made["key"], "/v1/refunds", {"charge": charge, "amount": "100"}, None)
    for attempt in ("a", "b"):  # meant twice: the agent's own keys say so
        stripe_post(proxy_url, made["key"], "/v1/refunds", {"charge": charge, "amount": "100"}, run_id,
                    idempotency_key=f"refund-{charge}-{attempt}")

    assert len(refunds_at_vendor(stripe_emulator, charge)) == 4
    unrun = sql.execute("SELECT idempotency_key, request_summary FROM audit_events WHERE key_id = %s "
                        "AND agent_run_id IS NULL AND endpoint = 'POST /v1/refunds'", (made["id"],)).fetchall()
    assert len(unrun) == 2 and not any(r["idempotency_key"].startswith(PREFIX) for r in unrun)
    own = refund_rows(audit_rows(sql, run_id))
    assert [r["idempotency_key"] for r in own] == [f"refund-{charge}-a", f"refund-{charge}-b"]
    assert not any((r["request_summary"] or {}).get("idempotency") for r in [*unrun, *own])


def test_stripe_python_sends_its_own_keys_so_nothing_is_derived(proxy_url, make_key, sql, run_id, stripe_emulator):
    """stripe-python 16 draws a key for every POST, whatever max_network_retries is."""
    key = make_key(policy(**DERIVE))["key"]
    client = stripe.StripeClient(key, base_addresses={"api": f"{proxy_url}/stripe"}, max_network_retries=0)
    charge = charged(proxy_url, key, run_id)
    for _ in range(2):
        client.v1.refunds.create(params={"charge": charge, "amount": 100}, options={"headers": {
            "X-Agent-Run-Id": run_id}})

    assert len(refunds_at_vendor(stripe_emulator, charge)) == 2
    assert not any(r["idempotency_key"].startswith(PREFIX) for r in refund_rows(audit_rows(sql, run_id)))


def test_the_duplicate_guard_refuses_a_derived_copy_within_its_window(proxy_url, make_key, sql, run_id,
                                                                      stripe_emulator):
    key = make_key(policy(**DERIVE, duplicates={"window_s": 60}))["key"]
    charge = charged(proxy_url, key, run_id)
    answers = [stripe_post(proxy_url, key, "/v1/refunds", {"charge": charge, "amount": "300"}, run_id)
               for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 403, 403]
    assert len(refunds_at_vendor(stripe_emulator, charge)) == 1
    assert [r["reason"] for r in refund_rows(audit_rows(sql, run_id))] == [None, "duplicate_call", "duplicate_call"]


@pytest.fixture()
def resend_key(proxy_url, make_key, run_id, monkeypatch) -> dict[str, Any]:
    document = {"vendor": "resend", "endpoints": {"allow": ["POST /emails"]}, "senders": ["receipts@acme.example"],
                "recipients": {"domains": ["acme.example"]}, **DERIVE}
    key = make_key(document, vendor="resend", secret=RESEND_SECRET)
    monkeypatch.setattr(resend, "api_key", key["key"])
    monkeypatch.setattr(resend, "api_url", f"{proxy_url}/resend")
    monkeypatch.setattr(resend, "default_http_client", ResendRunClient(run_id))  # the run id on every call
    return key


def test_a_resend_python_retry_loop_sends_one_email(resend_key, sql, run_id, resend_emulator):
    subject = f"Receipt {uuid.uuid4().hex}"
    sent = [resend.Emails.send({"from": "receipts@acme.example", "to": ["ana@acme.example"], "subject": subject,
                                "html": "<p>Thanks!</p>"}) for _ in range(5)]

    assert len({email["id"] for email in sent}) == 1
    assert len([e for e in resend_emulator[1].state.emails.values() if e["subject"] == subject]) == 1
    rows = audit_rows(sql, run_id)
    assert len({r["idempotency_key"] for r in rows}) == 1 and rows[0]["idempotency_key"].startswith(PREFIX)
    assert [r["request_summary"]["idempotency"] for r in rows] == ["derived"] * 5
