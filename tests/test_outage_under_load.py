"""Guarantee 1 under sustained load: Postgres is stopped while eight clients keep charging
through a real ``tollgate serve``, then started again. Every failure is a Stripe-shaped 503,
the vendor receives nothing while the database is down, the same process recovers on its
own, and afterwards the counters equal the audit rows and every forwarded call has one."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from decimal import Decimal

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from emulators.stripe_api import create_app as create_stripe_emulator
from tests.support.processes import proxy_env, tollgate_serve
from tests.support.servers import serve_asgi
from tests.support.tollgate import ADMIN_TOKEN, STRIPE_SECRET, policy

CLIENTS = 8
UP_S, DOWN_S, AFTER_S = 2.0, 3.0, 2.0
IN_FLIGHT_GRACE_S = 1.0  # calls admitted just before the stop may still be on their way to the vendor


@dataclass
class Outcome:
    started: float
    ended: float
    status: int
    code: str | None
    should_retry: str | None


@dataclass
class Timeline:
    stopped: float = float("inf")  # when the stop finished
    restarting: float = float("inf")  # when the start began
    recovered: float = float("inf")  # the first success after the restart
    received_at_stop: int = 0
    received_at_restart: int = 0


async def client_loop(http: httpx.AsyncClient, base: str, key: str, worker: int, done: asyncio.Event,
                      outcomes: list[Outcome]) -> None:
    i = 0
    while not done.is_set():
        i += 1
        started = time.monotonic()
        response = await http.post(f"{base}/stripe/v1/charges", content=b"amount=100&currency=usd&source=tok_visa",
                                   headers={"authorization": f"Bearer {key}", "x-agent-run-id": f"outage-{worker}",
                                            "idempotency-key": f"outage-{worker}-{i}",
                                            "content-type": "application/x-www-form-urlencoded"})
        error = response.json().get("error") if response.status_code != 200 else None
        outcomes.append(Outcome(started, time.monotonic(), response.status_code, error and error.get("code"),
                                response.headers.get("stripe-should-retry")))
        if response.status_code != 200:
            await asyncio.sleep(0.05)  # an agent backs off a little on a 503


async def outage(stop, start, received, outcomes: list[Outcome], done: asyncio.Event) -> Timeline:
    line = Timeline()
    await asyncio.sleep(UP_S)
    await asyncio.to_thread(stop)
    line.stopped = time.monotonic()
    await asyncio.sleep(IN_FLIGHT_GRACE_S)
    line.received_at_stop = received()
    await asyncio.sleep(DOWN_S)
    line.received_at_restart = received()
    line.restarting = time.monotonic()
    await asyncio.to_thread(start)
    deadline = time.monotonic() + 30
    while not any(o.status == 200 and o.started > line.restarting for o in outcomes):
        assert time.monotonic() < deadline, "the proxy did not recover within 30 s of Postgres coming back"
        await asyncio.sleep(0.1)
    line.recovered = time.monotonic()
    await asyncio.sleep(AFTER_S)
    done.set()
    return line


async def drive(base: str, key: str, stop, start, received) -> tuple[list[Outcome], Timeline]:
    outcomes: list[Outcome] = []
    done = asyncio.Event()
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=CLIENTS)) as http:
        clients = [asyncio.create_task(client_loop(http, base, key, w, done, outcomes)) for w in range(CLIENTS)]
        line = await outage(stop, start, received, outcomes, done)
        await asyncio.gather(*clients)
    return outcomes, line


@pytest.fixture()
def vendor():
    app = create_stripe_emulator(STRIPE_SECRET)
    with serve_asgi(app) as url:
        yield url, app


def test_postgres_stopped_under_load_fails_closed_and_recovers_consistently(own_postgres, vendor):
    url, stop, start = own_postgres
    upstream, app = vendor
    env = proxy_env(url, {"stripe": upstream}, db_timeout_s=2, reservation_ttl_s=3, reconcile_interval_s=0.5)
    with tollgate_serve(env) as (base, process):
        key = httpx.post(f"{base}/admin/v1/keys", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, json={
            "vendor": "stripe", "upstream_secret": STRIPE_SECRET,
            "policy": policy(caps=[{"usd": "100000.00", "window": "day"}])}).json()
        received = lambda: sum(r.method == "POST" for r in app.state.received)  # noqa: E731
        outcomes, line = asyncio.run(drive(base, key["key"], stop, start, received))
        assert process.poll() is None  # recovered by itself: the same process throughout

        db = psycopg.connect(url, autocommit=True, row_factory=dict_row)
        open_reservations = "SELECT count(*) AS n FROM reservations WHERE reconciled_at IS NULL"
        deadline = time.monotonic() + 20  # calls whose settle met the outage are reconciled
        while db.execute(open_reservations).fetchone()["n"]:
            assert time.monotonic() < deadline, "reservations left open after the outage"
            time.sleep(0.2)

    failures = [o for o in outcomes if o.status != 200]
    assert failures and all((o.status, o.code, o.should_retry) == (503, "database_unavailable", "true")
                            for o in failures), {(o.status, o.code) for o in failures}
    assert not [o for o in outcomes if line.stopped < o.started and o.ended < line.restarting and o.status == 200]
    assert line.received_at_restart == line.received_at_stop  # nothing reached the vendor while Postgres was down
    assert any(o.status == 200 and o.started > line.recovered for o in outcomes)

    rows = db.execute("SELECT decision, state, cost_usd, idempotency_key FROM audit_events WHERE key_id = %s",
                      (key["id"],)).fetchall()
    allowed = [r for r in rows if r["decision"] == "allowed"]
    forwarded = {r.headers["idempotency-key"] for r in app.state.received if r.method == "POST"}
    assert forwarded <= {r["idempotency_key"] for r in allowed}  # no forward without its row
    assert len(allowed) >= sum(o.status == 200 for o in outcomes) == len(forwarded)
    assert not [r for r in rows if r["state"] == "pending"]
    counter = db.execute("SELECT spent_usd, reserved_usd, requests FROM budget_counters WHERE key_id = %s",
                         (key["id"],)).fetchone()
    assert counter == {"spent_usd": sum(r["cost_usd"] for r in allowed), "reserved_usd": Decimal(0),
                       "requests": len(allowed)}
    db.close()
