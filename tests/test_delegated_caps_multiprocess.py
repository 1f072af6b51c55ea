"""Guarantee 3 with delegated keys: a parent and two children race for the parent's cap through
two ``tollgate serve`` processes sharing one Postgres. Every child call is counted against the
parent's counter in the same locked decision (migrations/sql/v0021.py), so the parent's cap
holds to the cent, a child's own cap holds too, and the (owner, bucket) lock order leaves
Postgres no deadlock to break."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx

from tests.support.processes import tollgate_serve
from tests.support.tollgate import ADMIN_TOKEN, STRIPE_SECRET, policy
from tests.test_caps_multiprocess import PRICE_MINOR, proxy_env

CALLS = 300
CONCURRENCY = 60
PRICE = Decimal(PRICE_MINOR) / 100  # $1.37: the parent's $50.00 fits 36, child A's own $30.00 fits 21


async def race(bases: list[str], tokens: list[str]) -> list[httpx.Response]:
    gate = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=CONCURRENCY)) as client:
        async def one(i: int) -> httpx.Response:
            async with gate:
                return await client.post(
                    f"{bases[i % len(bases)]}/stripe/v1/charges",
                    content=f"amount={PRICE_MINOR}&currency=usd&source=tok_visa".encode(),
                    headers={"authorization": f"Bearer {tokens[i % len(tokens)]}", "idempotency-key": f"d-{i}",
                             "content-type": "application/x-www-form-urlencoded"})
        return await asyncio.gather(*(one(i) for i in range(CALLS)))


def test_a_parent_and_two_children_across_two_processes_never_pass_the_parents_cap(pg_url, stripe_emulator, sql):
    deadlocks = "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
    before = sql.execute(deadlocks).fetchone()["deadlocks"]
    env = proxy_env(pg_url, stripe_emulator[0])
    admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    with tollgate_serve(env) as (first, _), tollgate_serve(env) as (second, _):
        parent = httpx.post(f"{first}/admin/v1/keys", headers=admin, json={
            "vendor": "stripe", "upstream_secret": STRIPE_SECRET,
            "policy": policy(caps=[{"usd": "50.00", "window": "day"}])}).json()
        children = [httpx.post(f"{second}/admin/v1/keys/{parent['id']}/children", headers=admin, json=body).json()
                    for body in ({"agent_run_id": "child-a", "policy": {"caps": [{"usd": "30.00", "window": "day"}]}},
                                 {"agent_run_id": "child-b"})]
        # The children's calls interleave with the parent's in both processes (i % 3 picks the key, i % 2 the process).
        responses = asyncio.run(race([first, second], [parent["key"], *(c["key"] for c in children)]))

    unexpected = [(r.status_code, r.text[:200]) for r in responses if r.status_code not in (200, 403)]
    assert not unexpected, unexpected[:5]
    assert sum(r.status_code == 200 for r in responses) == 36
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 403} == {"cap_exceeded"}
    ids = [parent["id"], *(c["id"] for c in children)]
    allowed = {row["key_id"]: row for row in sql.execute(
        """SELECT key_id, count(*) AS calls, sum(cost_usd) AS spent, count(*) FILTER (WHERE state = 'pending') AS open
             FROM audit_events WHERE key_id = ANY (%s) AND decision = 'allowed' GROUP BY key_id""", (ids,))}
    counters = {row["key_id"]: row for row in sql.execute(
        "SELECT key_id, spent_usd, reserved_usd FROM budget_counters WHERE key_id = ANY (%s) AND bucket LIKE 'day:%%'",
        (ids,))}
    assert sum(a["calls"] for a in allowed.values()) == 36 and all(a["open"] == 0 for a in allowed.values())
    assert counters[parent["id"]] == {"key_id": parent["id"], "spent_usd": PRICE * 36, "reserved_usd": 0}
    child_a = children[0]["id"]
    assert allowed[child_a]["calls"] <= 21  # its own cap, inside the parent's
    assert counters[child_a]["spent_usd"] == allowed[child_a]["spent"] == PRICE * allowed[child_a]["calls"]
    assert {r["agent_run_id"] for r in sql.execute(
        "SELECT DISTINCT agent_run_id FROM audit_events WHERE key_id = %s", (child_a,))} == {"child-a"}
    assert sql.execute(deadlocks).fetchone()["deadlocks"] == before
