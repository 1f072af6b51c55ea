"""Guarantee 3: caps hold under concurrency across proxy processes. Two ``tollgate serve``
processes share one Postgres; a few hundred concurrent charges race for a tight cap."""

from __future__ import annotations

import asyncio
import os
from decimal import Decimal

import httpx

from tests.support.processes import tollgate_serve
from tests.support.tollgate import ADMIN_TOKEN, MASTER_KEY, STRIPE_SECRET, policy

CALLS = 300
CONCURRENCY = 60
PRICE_MINOR = 137  # $1.37: the $50.00 cap fits 36 of them ($49.32) and not a 37th


def proxy_env(pg_url: str, upstream: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}
    env.update(DATABASE_URL=pg_url, TOLLGATE_MASTER_KEY=MASTER_KEY, TOLLGATE_ADMIN_TOKEN=ADMIN_TOKEN,
               TOLLGATE_UPSTREAM_STRIPE=upstream, TOLLGATE_LOG_FORMAT="json", TOLLGATE_DB_POOL_SIZE="10")
    return env


async def fire(bases: list[str], token: str) -> list[httpx.Response]:
    gate = asyncio.Semaphore(CONCURRENCY)
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        async def one(i: int) -> httpx.Response:
            async with gate:
                return await client.post(
                    f"{bases[i % len(bases)]}/stripe/v1/charges",
                    content=f"amount={PRICE_MINOR}&currency=usd&source=tok_visa".encode(),
                    headers={"authorization": f"Bearer {token}", "x-agent-run-id": f"race-{i % 7}",
                             "content-type": "application/x-www-form-urlencoded", "idempotency-key": f"race-{i}"},
                )
        return await asyncio.gather(*(one(i) for i in range(CALLS)))


def test_two_processes_never_exceed_a_cap_by_a_cent(pg_url, stripe_emulator, sql):
    env = proxy_env(pg_url, stripe_emulator[0])
    with tollgate_serve(env) as (first, _), tollgate_serve(env) as (second, _):
        created = httpx.post(f"{first}/admin/v1/keys", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, json={
            "vendor": "stripe", "upstream_secret": STRIPE_SECRET,
            "policy": policy(caps=[{"usd": "50.00", "window": "day"}, {"requests": 10000, "window": "minute"}]),
        }).json()
        responses = asyncio.run(fire([first, second], created["key"]))

    allowed = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code != 200]
    unexpected = [(r.status_code, r.text[:200]) for r in refused if r.status_code != 403]
    assert not unexpected, unexpected[:5]
    assert len(allowed) == 36
    for response in refused:
        error = response.json()["error"]
        assert error["code"] == "cap_exceeded" and error["message"].startswith("Cap of 50.00 USD per day reached")

    totals = sql.execute(
        """SELECT count(*) FILTER (WHERE decision = 'allowed') AS allowed,
                  coalesce(sum(cost_usd) FILTER (WHERE decision = 'allowed'), 0) AS spent,
                  count(*) FILTER (WHERE state = 'pending') AS pending
             FROM audit_events WHERE key_id = %s""", (created["id"],)).fetchone()
    counter = sql.execute("SELECT spent_usd, reserved_usd FROM budget_counters "
                          "WHERE key_id = %s AND bucket LIKE 'day:%%'", (created["id"],)).fetchone()
    assert totals == {"allowed": 36, "spent": Decimal("49.32"), "pending": 0}
    assert counter == {"spent_usd": Decimal("49.32"), "reserved_usd": Decimal("0")}


def test_revoking_through_one_process_blocks_the_next_call_on_the_other(pg_url, stripe_emulator):
    env = proxy_env(pg_url, stripe_emulator[0])
    env["TOLLGATE_KEY_CACHE_TTL_S"] = "3600"  # even with a cached key: the gate reads revocation itself
    with tollgate_serve(env) as (first, _), tollgate_serve(env) as (second, _):
        admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        key = httpx.post(f"{first}/admin/v1/keys", headers=admin, json={
            "vendor": "stripe", "upstream_secret": STRIPE_SECRET, "policy": policy()}).json()
        charge = {"content": b"amount=100&currency=usd&source=tok_visa",
                  "headers": {"authorization": f"Bearer {key['key']}",
                              "content-type": "application/x-www-form-urlencoded"}}
        assert httpx.post(f"{second}/stripe/v1/charges", **charge).status_code == 200  # cached in the second
        assert httpx.post(f"{first}/admin/v1/keys/{key['id']}/revoke", headers=admin).status_code == 200
        refused = httpx.post(f"{second}/stripe/v1/charges", **charge)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "key_revoked"
