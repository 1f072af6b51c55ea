"""docs/sql-cookbook.md: every query in it runs against the real schema on a populated
database, and the auditor role can read the audit trail and nothing else."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest
import stripe

from tests.support.tollgate import ADMIN_TOKEN, STRIPE_SECRET, policy

COOKBOOK = Path(__file__).resolve().parent.parent / "docs" / "sql-cookbook.md"
QUERIES = dict(re.findall(r"```sql\n-- name: (\w+)\n(.*?)```", COOKBOOK.read_text(), re.S))


@pytest.fixture(scope="module")
def populated(proxy_url, stripe_emulator) -> str:
    """One run with an allowed charge, a refused one and a vendor error, then stopped by an operator
    (and its next call refused run_halted)."""
    key = httpx.post(f"{proxy_url}/admin/v1/keys", headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
                     json={"vendor": "stripe", "upstream_secret": STRIPE_SECRET,
                           "policy": policy(caps=[{"usd": "100", "window": "day"}])}).json()
    client = stripe.StripeClient(key["key"], base_addresses={"api": f"{proxy_url}/stripe"}, max_network_retries=0)
    run_id = f"cookbook-{uuid.uuid4().hex[:8]}"
    options = {"headers": {"X-Agent-Run-Id": run_id}}
    client.v1.charges.create(params={"amount": 2500, "currency": "usd", "source": "tok_visa"}, options=options)
    with pytest.raises(stripe.PermissionError):
        client.v1.payouts.create(params={"amount": 100, "currency": "usd"}, options=options)
    stripe_emulator[1].state.fail_next = (402, {"type": "card_error", "code": "card_declined", "message": "Declined."})
    with pytest.raises(stripe.CardError):
        client.v1.charges.create(params={"amount": 900, "currency": "usd", "source": "tok_visa"}, options=options)
    stopped = httpx.post(f"{proxy_url}/admin/v1/runs/{run_id}/stop", json={"reason": "cookbook"},
                         headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
    assert stopped.status_code == 200
    with pytest.raises(stripe.PermissionError):
        client.v1.charges.create(params={"amount": 100, "currency": "usd", "source": "tok_visa"}, options=options)
    return run_id


def run(sql: psycopg.Connection, name: str, run_id: str) -> list[dict]:
    query = QUERIES[name]
    if ":'run_id'" not in query:
        return sql.execute(query).fetchall()
    return sql.execute(query.replace(":'run_id'", "%(run_id)s"), {"run_id": run_id}).fetchall()


def test_the_cookbook_has_the_questions_people_ask():
    assert set(QUERIES) >= {"run_story", "key_day_against_caps", "blocked_by_reason", "expensive_runs",
                            "twilio_estimate_vs_price", "failed_at_vendor", "unsettled",
                            "unauthenticated_callers", "halted_runs"}


def test_every_query_runs(sql, populated):
    for name in QUERIES:
        run(sql, name, populated)  # raises on any error in the SQL


def test_the_answers_are_right(sql, populated):
    story = run(sql, "run_story", populated)
    assert [(r["endpoint"], r["decision"], r["upstream_status"]) for r in story] == [
        ("POST /v1/charges", "allowed", 200), ("POST /v1/payouts", "blocked", None),
        ("POST /v1/charges", "allowed", 402), ("POST /v1/charges", "blocked", None)]
    assert story[-1]["running_usd"] == 25
    blocked = {(r["reason"], r["vendor"]) for r in run(sql, "blocked_by_reason", populated)}
    assert ("endpoint_not_allowed", "stripe") in blocked
    failed = [r for r in run(sql, "failed_at_vendor", populated) if r["agent_run_id"] == populated]
    assert [(r["endpoint"], r["upstream_status"]) for r in failed] == [("POST /v1/charges", 402)]
    halted = {r["agent_run_id"]: r for r in run(sql, "halted_runs", populated)}
    assert (halted[populated]["condition"], halted[populated]["detail"]) == ("operator", "cookbook")
    assert (halted[populated]["refused_since"], halted[populated]["other_refusals"]) == (1, 1)
    runs = {r["agent_run_id"]: r for r in run(sql, "expensive_runs", populated)}
    key_days = run(sql, "key_day_against_caps", populated)
    assert any(r["daily_cap_usd"] == 100 and r["cost_usd"] == 25 and r["pct_of_cap"] == 25 for r in key_days)
    assert populated not in runs or runs[populated]["cost_usd"] == 25


def test_the_auditor_role_reads_the_trail_and_nothing_else(pg_url, populated):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS cookbook_alice")
        conn.execute("CREATE ROLE cookbook_alice LOGIN IN ROLE tollgate_auditor")
    auditor_url = re.sub(r"//postgres(:[^@]*)?@", "//cookbook_alice@", pg_url)
    try:
        with psycopg.connect(auditor_url, autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM audit_events").fetchone()[0] > 0
            for view in ("spend_by_run", "spend_by_key_day", "blocked_calls", "auth_refusals", "halted_runs"):
                conn.execute(f"SELECT * FROM {view} LIMIT 1")
            for table in ("vault_keys", "upstream_credentials", "policies", "budget_counters", "approvals",
                          "run_state"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(f"SELECT * FROM {table} LIMIT 1")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("DELETE FROM audit_events")
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("DROP ROLE cookbook_alice")
