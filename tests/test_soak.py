"""Load: sustained concurrent traffic through two ``tollgate serve`` processes sharing one
Postgres. Zero errors that are not policy decisions, every call the vendor received has
exactly one allowed audit row (and every allowed row a call), caps exact to the cent and
to the request, counters equal to the rows.

``TOLLGATE_SOAK_SECONDS`` sets the duration (default 20 s; docs/guarantees.md records a
180 s run). Prints one summary line (see it with ``pytest -s``)."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from decimal import Decimal

import httpx
import pytest

from emulators.stripe_api import create_app as create_stripe_emulator
from tests.support.processes import proxy_env, tollgate_serve
from tests.support.servers import serve_asgi
from tests.support.tollgate import ADMIN_TOKEN, STRIPE_SECRET, policy

SECONDS = float(os.environ.get("TOLLGATE_SOAK_SECONDS", "20"))
CLIENTS = 16
PRICE_MINOR = 137  # $1.37
USD_CAP, USD_CAP_FITS = "150.00", 109  # 109 x $1.37 = $149.33; a 110th would make $150.70
REQUEST_CAP = 250
# Traffic per key: (share of the calls, caps). The capped keys run dry early and are then refused.
KEYS = {
    "usd_capped": (1, [{"usd": USD_CAP, "window": "total"}]),
    "request_capped": (1, [{"requests": REQUEST_CAP, "window": "total"}]),
    "open": (2, [{"usd": "1000000.00", "window": "day"}, {"usd": "1000000.00", "window": "run"}]),
}
POLICY_CODES = {"cap_exceeded"}


@pytest.fixture()
def vendor():
    app = create_stripe_emulator(STRIPE_SECRET)
    with serve_asgi(app) as url:
        yield url, app


async def soak(bases: list[str], keys: dict[str, str]) -> Counter:
    """Run CLIENTS loops for SECONDS; count answers by (key name, status, error code)."""
    schedule = [name for name, (share, _) in KEYS.items() for _ in range(share)]
    answers: Counter = Counter()
    deadline = time.monotonic() + SECONDS

    async def client(http: httpx.AsyncClient, worker: int) -> None:
        i = 0
        while time.monotonic() < deadline:
            i += 1
            name = schedule[(worker + i) % len(schedule)]
            response = await http.post(
                f"{bases[i % len(bases)]}/stripe/v1/charges",
                content=f"amount={PRICE_MINOR}&currency=usd&source=tok_visa".encode(),
                headers={"authorization": f"Bearer {keys[name]}", "x-agent-run-id": f"soak-{worker % 4}",
                         "idempotency-key": f"soak-{worker}-{i}", "content-type": "application/x-www-form-urlencoded"})
            code = response.json()["error"].get("code") if response.status_code != 200 else None
            answers[(name, response.status_code, code)] += 1

    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=CLIENTS)) as http:
        await asyncio.gather(*(client(http, w) for w in range(CLIENTS)))
    return answers


def test_two_processes_under_sustained_load_lose_nothing_and_hold_caps(pg_url, vendor, sql):
    upstream, app = vendor
    env = proxy_env(pg_url, {"stripe": upstream}, db_pool_size=10)
    with tollgate_serve(env) as (first, _), tollgate_serve(env) as (second, _):
        admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        created = {name: httpx.post(f"{first}/admin/v1/keys", headers=admin, json={
            "vendor": "stripe", "upstream_secret": STRIPE_SECRET, "label": f"soak-{name}",
            "policy": policy(caps=caps)}).json() for name, (_, caps) in KEYS.items()}
        started = time.monotonic()
        answers = asyncio.run(soak([first, second], {name: c["key"] for name, c in created.items()}))
        elapsed = time.monotonic() - started

    unexpected = {k: n for k, n in answers.items() if k[1] != 200 and not (k[1] == 403 and k[2] in POLICY_CODES)}
    assert not unexpected, unexpected
    ids = [c["id"] for c in created.values()]
    rows = sql.execute("SELECT key_id, count(*) FILTER (WHERE decision = 'allowed') AS allowed, "
                       "coalesce(sum(cost_usd) FILTER (WHERE decision = 'allowed'), 0) AS spent, "
                       "count(*) FILTER (WHERE state <> 'final') AS unfinished, count(*) AS total "
                       "FROM audit_events WHERE key_id = ANY(%s) GROUP BY key_id", (ids,)).fetchall()
    by_key = {r["key_id"]: r for r in rows}
    forwarded = [r for r in app.state.received if r.method == "POST"]
    assert len(forwarded) == sum(r["allowed"] for r in rows) == sum(n for k, n in answers.items() if k[1] == 200)
    assert sum(r["total"] for r in rows) == sum(answers.values())  # every answer has its row
    assert all(r["unfinished"] == 0 for r in rows)

    usd, count = by_key[created["usd_capped"]["id"]], by_key[created["request_capped"]["id"]]
    assert (usd["allowed"], usd["spent"]) == (USD_CAP_FITS, USD_CAP_FITS * Decimal("1.37"))
    assert count["allowed"] == REQUEST_CAP
    for c in created.values():  # summed over buckets: a soak may cross midnight (UTC)
        buckets = sql.execute("SELECT bucket, spent_usd, reserved_usd, requests FROM budget_counters "
                              "WHERE key_id = %s", (c["id"],)).fetchall()
        for per_run in {b["bucket"].startswith("run:") for b in buckets}:  # each window sums to the rows
            window = [b for b in buckets if b["bucket"].startswith("run:") == per_run]
            assert (sum(b["spent_usd"] for b in window), sum(b["reserved_usd"] for b in window),
                    sum(b["requests"] for b in window)) == (by_key[c["id"]]["spent"], 0, by_key[c["id"]]["allowed"])
    total = sum(answers.values())
    print(f"\nsoak: {elapsed:.0f} s, {total} calls ({total / elapsed:.0f}/s) through 2 processes, "
          f"{len(forwarded)} forwarded = {len(forwarded)} allowed rows, answers {dict(answers)}")
