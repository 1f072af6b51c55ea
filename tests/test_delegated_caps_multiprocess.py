"""Guarantee 3 with delegated keys: a parent and two children race for the parent's cap through
two ``tollgate serve`` processes sharing one Postgres. Every child call is counted against the
parent's counter in the same locked decision (migrations/sql/v0021.py), so the parent's cap
holds to the cent, a child's own cap holds too, and the (owner, bucket) lock order leaves
Postgres no deadlock to break."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import time
import uuid
from decimal import Decimal

import httpx
import psycopg

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


def _bare_key(sql, key_id: str, parent: str | None = None) -> None:
    """A key row and its policy, as bare rows: all the gate reads."""
    sql.execute("INSERT INTO policies (id, vendor, current_version) VALUES (%s, 'stripe', 1)", [key_id])
    sql.execute("INSERT INTO upstream_credentials (id, vendor, secret_ciphertext) VALUES (%s, 'stripe', '')", [key_id])
    sql.execute("INSERT INTO vault_keys (id, vendor, secret_hash, credential_id, policy_id, parent_key_id, depth) "
                "VALUES (%s, 'stripe', '', %s, %s, %s, %s)", [key_id, key_id, key_id, parent, 1 if parent else 0])


def _item(key_id: str, owners: tuple[str, ...] = ()) -> dict:
    caps = [{"window": "day", "usd": "1000"}] + [{"window": "day", "usd": "1000", "owner": o} for o in owners]
    return {"key_id": key_id, "policy_id": key_id, "policy_version": 1, "caps": caps, "predicted": "1", "ttl": 60,
            "mode": "enforce", "approval": None,
            "row": {"request_id": uuid.uuid4().hex, "key_id": key_id, "vendor": "stripe", "method": "POST",
                    "path": "/v1/charges", "decision": "allowed"}}


def test_a_delegated_batch_takes_its_locks_in_one_order_so_it_cannot_deadlock(pg_url, sql):
    """Batch 1 holds a child (A, whose parent P sorts last) and another key B; a second transaction
    holds B and then wants P, a legal (key, bucket) order. Key after key, batch 1 would hold P while
    waiting for B: a deadlock Postgres breaks by failing one. Locked up front in (owner, bucket) order,
    batch 1 waits for B before it touches P, and both commit."""
    tag = uuid.uuid4().hex[:8]
    a, b, p = f"key_a{tag}", f"key_b{tag}", f"key_z{tag}"
    for key_id, parent in ((p, None), (a, p), (b, None)):
        _bare_key(sql, key_id, parent)
    gate = "SELECT decision FROM tollgate_gate_batch(%s::jsonb)"
    deadlocks = "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
    before = sql.execute(deadlocks).fetchone()["deadlocks"]
    with psycopg.connect(pg_url) as second, psycopg.connect(pg_url, autocommit=True) as first:
        assert second.execute(gate, [json.dumps([_item(b)])]).fetchone()[0] == "allowed"  # holds B's counter
        pid = first.info.backend_pid
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            batch = pool.submit(lambda: first.execute(gate, [json.dumps([_item(a, (p,)), _item(b)])]).fetchall())
            while not sql.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s AND wait_event_type = 'Lock'",
                                  [pid]).fetchall():
                assert not batch.done(), batch.result()
                time.sleep(0.01)  # until batch 1 waits for B
            assert second.execute(gate, [json.dumps([_item(p)])]).fetchone()[0] == "allowed"  # takes P
            second.commit()
            assert [r[0] for r in batch.result(timeout=30)] == ["allowed", "allowed"]
    assert sql.execute(deadlocks).fetchone()["deadlocks"] == before
    spent = {r["key_id"]: r["reserved_usd"] for r in sql.execute(
        "SELECT key_id, reserved_usd FROM budget_counters WHERE key_id = ANY (%s)", ([a, b, p],))}
    assert spent == {a: 1, b: 2, p: 2}  # P: its own call and its child's


def test_a_small_settle_batch_with_a_delegated_call_locks_in_the_same_order(pg_url, sql):
    """The same race for tollgate_settle_batch's one-by-one path (up to six items): settled item
    after item, A's settle would hold P while waiting for B."""
    tag = uuid.uuid4().hex[:8]
    a, b, p = f"key_a{tag}", f"key_b{tag}", f"key_z{tag}"
    for key_id, parent in ((p, None), (a, p), (b, None)):
        _bare_key(sql, key_id, parent)
    gate = "SELECT audit_id FROM tollgate_gate_batch(%s::jsonb)"
    made_a, made_b = (r["audit_id"] for r in sql.execute(gate, [json.dumps([_item(a, (p,)), _item(b)])]))
    settle = [{"audit_id": made_a, "key_id": a, "cost": "1", "patch": {"cost_source": "parsed"}, "delegated": True},
              {"audit_id": made_b, "key_id": b, "cost": "1", "patch": {"cost_source": "parsed"}, "delegated": False}]
    with psycopg.connect(pg_url) as second, psycopg.connect(pg_url, autocommit=True) as first:
        second.execute(gate, [json.dumps([_item(b)])])  # holds B's counter
        pid = first.info.backend_pid
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            settled = pool.submit(lambda: first.execute("SELECT tollgate_settle_batch(%s::jsonb)",
                                                        [json.dumps(settle)]).fetchone())
            while not sql.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s AND wait_event_type = 'Lock'",
                                  [pid]).fetchall():
                assert not settled.done(), settled.result()
                time.sleep(0.01)  # until the settle waits for B
            second.execute(gate, [json.dumps([_item(p)])])  # takes P
            second.commit()
            assert settled.result(timeout=30) == (2,)
    spent = {r["key_id"]: (r["spent_usd"], r["reserved_usd"]) for r in sql.execute(
        "SELECT key_id, spent_usd, reserved_usd FROM budget_counters WHERE key_id = ANY (%s)", ([a, b, p],))}
    assert spent == {a: (1, 0), b: (1, 1), p: (1, 1)}  # each second gate's reservation still open


def test_a_delegated_reservation_whose_process_died_is_charged_to_every_owner(sql):
    """tollgate_reconcile closes an expired reservation on the counters it was made against: the
    child's and its parent's, as the gate reserved them (reservations.owners)."""
    tag = uuid.uuid4().hex[:8]
    child, parent = f"key_c{tag}", f"key_p{tag}"
    _bare_key(sql, parent)
    _bare_key(sql, child, parent)
    [made] = sql.execute("SELECT audit_id FROM tollgate_gate_batch(%s::jsonb)",
                         [json.dumps([{**_item(child, (parent,)), "ttl": 0}])]).fetchall()
    owners = sql.execute("SELECT owners FROM reservations WHERE audit_id = %s", [made["audit_id"]]).fetchone()
    assert sorted(owners["owners"]) == sorted([child, parent])
    sql.execute("SELECT tollgate_reconcile(100000)")
    counters = {r["key_id"]: (r["spent_usd"], r["reserved_usd"]) for r in sql.execute(
        "SELECT key_id, spent_usd, reserved_usd FROM budget_counters WHERE key_id = ANY (%s)", ([child, parent],))}
    assert counters == {child: (1, 0), parent: (1, 0)}
