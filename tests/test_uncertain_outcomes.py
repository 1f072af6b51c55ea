"""A vendor 5xx on a call that moves money does not say whether the money moved (Stripe: "treat
the result of a 500 as indeterminate"). Tollgate keeps such a call's estimate counted against
every cap, as for a timeout, and `tollgate prices reconcile` later reads what Stripe's own
record (its events, by idempotency key and request id) says the call did: it settles the call at
what it moved, or at 0. Through stripe-python, against the Stripe emulator in an outage in which
some calls were carried out before the 500 and some were not."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import stripe

from emulators.stripe_api import Outage
from emulators.stripe_api import create_app as create_stripe_emulator
from proxy import bootstrap
from proxy.app import create_app
from tests.support.servers import serve_asgi
from tests.support.tollgate import ADMIN_TOKEN, MASTER_KEY, STRIPE_SECRET, audit_rows, policy, settings_for

CHARGE = {"amount": 2000, "currency": "usd", "source": "tok_visa"}  # $20.00
STRIPE_500 = {"type": "api_error", "message": "An unknown error occurred."}
WINDOW_OVER_S = 11 * 60  # past the time in which Stripe writes a call's events (vendors/stripe/outcomes.py)


@pytest.fixture()
def stripe_down(pg_url: str) -> Iterator[tuple[Any, str, dict[str, Any], str]]:
    """(emulator app, its URL, a key capped at $50 a day, Tollgate's URL)."""
    app = create_stripe_emulator(STRIPE_SECRET)
    with serve_asgi(app) as emulator_url:
        settings = settings_for(pg_url, {"stripe": emulator_url})
        with serve_asgi(create_app(bootstrap.runtime(settings)), lifespan="on") as proxy_url:
            key = httpx.post(f"{proxy_url}/admin/v1/keys", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, json={
                "vendor": "stripe", "upstream_secret": STRIPE_SECRET,
                "policy": policy(caps=[{"usd": "50.00", "window": "day"}])}).json()
            yield app, emulator_url, key, proxy_url


def client_for(key: dict[str, Any], proxy_url: str, retries: int = 0) -> stripe.StripeClient:
    return stripe.StripeClient(key["key"], base_addresses={"api": f"{proxy_url}/stripe"}, max_network_retries=retries)


def reconcile(pg_url: str, emulator_url: str, key: dict[str, Any], later_s: float = 0.0):
    """`tollgate prices reconcile` for the key's uncertain Stripe calls, as if run ``later_s`` from now."""
    import asyncio

    from proxy import db, outcomes
    from proxy.keycache import KeyCache
    from proxy.upstream import create_upstream

    runtime = bootstrap.runtime(settings_for(pg_url, {"stripe": emulator_url}))

    async def run():
        engine = db.create_engine(runtime.database_url, runtime.settings)
        upstream = create_upstream(runtime.settings)
        try:
            adapter = runtime.vendors.get("stripe")
            return await outcomes.resolve(engine, KeyCache(engine, runtime.box, 60), upstream, adapter, emulator_url,
                                          key_id=key["id"], clock=lambda: time.time() + later_s)
        finally:
            await upstream.aclose()
            await engine.dispose()

    return asyncio.run(run())


def spent(sql, key: dict[str, Any]) -> tuple[Decimal, Decimal]:
    row = sql.execute("SELECT spent_usd, reserved_usd FROM budget_counters WHERE key_id = %s AND bucket LIKE 'day:%%'",
                      (key["id"],)).fetchone()
    return row["spent_usd"], row["reserved_usd"]


def test_a_vendor_500_stays_counted_under_the_cap_until_stripe_says_what_happened(stripe_down, pg_url, sql, run_id):
    app, emulator_url, key, proxy_url = stripe_down
    client = client_for(key, proxy_url)
    app.state.outage = Outage(500, STRIPE_500, carried_out=[True, False])  # the first charge went through

    outcomes = []
    for _ in range(10):  # 10 x $20 under a $50 cap, Stripe answering 500 to each
        with pytest.raises(stripe.StripeError) as raised:
            client.v1.charges.create(params=CHARGE, options={"headers": {"X-Agent-Run-Id": run_id}})
        outcomes.append((raised.value.http_status, raised.value.error.code if raised.value.error else None))
    assert outcomes == [(500, None)] * 2 + [(403, "cap_exceeded")] * 8
    assert sum(r.method == "POST" for r in app.state.received) == 2  # $40 may have moved: nothing more left
    rows = audit_rows(sql, run_id)
    assert [(r["decision"], r["reason"], r["upstream_status"], r["cost_usd"], r["cost_source"]) for r in rows[:2]] == [
        ("error", "upstream_server_error", 500, Decimal("20.00"), "estimated")] * 2
    assert {(r["decision"], r["reason"]) for r in rows[2:]} == {("blocked", "cap_exceeded")}
    assert spent(sql, key) == (Decimal("40.00"), Decimal(0))
    admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}  # what operators read says what the caps count
    story = httpx.get(f"{proxy_url}/admin/v1/runs/{run_id}", headers=admin).json()
    assert [Decimal(c["caps"][0]["used"]) for c in story["calls"][:3]] == [20, 40, 40]
    daily = httpx.get(f"{proxy_url}/admin/v1/spend/daily", params={"days": 1}, headers=admin).json()["data"]
    assert Decimal(next(d["usd"] for d in daily if d["vendor"] == "stripe")) >= Decimal("40.00")

    app.state.outage = None  # Stripe is back; its events say what the two calls did
    report = reconcile(pg_url, emulator_url, key)
    assert (report.checked, report.repriced, report.waiting) == (2, 1, 1)  # one is known at once
    report = reconcile(pg_url, emulator_url, key, later_s=WINDOW_OVER_S)  # the other once its events would exist
    assert (report.checked, report.repriced, report.waiting) == (1, 1, 0)

    [charge] = app.state.store.newest_first("charge")
    rows = audit_rows(sql, run_id)
    assert [(r["cost_usd"], r["cost_source"], r["object_id"]) for r in rows[:2]] == [
        (Decimal("20.00"), "parsed", charge["id"]), (Decimal(0), "parsed", None)]
    assert all(r["cost_reconciled_at"] is not None and r["predicted_usd"] == Decimal("20.00") for r in rows[:2])
    assert spent(sql, key) == (Decimal("20.00"), Decimal(0))
    assert reconcile(pg_url, emulator_url, key, later_s=WINDOW_OVER_S).checked == 0  # settled once

    client.v1.charges.create(params=CHARGE, options={"headers": {"X-Agent-Run-Id": run_id}})  # $40 of $50
    with pytest.raises(stripe.PermissionError):
        client.v1.charges.create(params=CHARGE, options={"headers": {"X-Agent-Run-Id": run_id}})
    assert spent(sql, key) == (Decimal("40.00"), Decimal(0))


def test_the_sdk_retry_of_a_saved_500_is_a_replay_and_the_first_call_is_settled_by_its_request_id(
        stripe_down, pg_url, sql, run_id):
    app, emulator_url, key, proxy_url = stripe_down
    # stripe-python retries a 500 with the same Idempotency-Key; Stripe replays the 500 it saved.
    app.state.outage = Outage(500, STRIPE_500, carried_out=[True, True])
    with pytest.raises(stripe.APIError):
        client_for(key, proxy_url, retries=1).v1.charges.create(params=CHARGE,
                                                                options={"headers": {"X-Agent-Run-Id": run_id}})
    app.state.outage = None
    first, retry = audit_rows(sql, run_id)
    assert first["idempotency_key"] == retry["idempotency_key"]
    assert (retry["decision"], retry["reason"], retry["cost_usd"]) == ("allowed", "idempotent_replay", Decimal(0))
    assert reconcile(pg_url, emulator_url, key).repriced == 1
    assert sql.execute("SELECT cost_usd FROM audit_events WHERE id = %s", (first["id"],)).fetchone() == {
        "cost_usd": Decimal("20.00")}
    assert spent(sql, key) == (Decimal("20.00"), Decimal(0))


def test_a_500_the_sdk_retried_into_a_charge_is_released_the_charge_counted_once(stripe_down, pg_url, sql, run_id):
    app, emulator_url, key, proxy_url = stripe_down
    app.state.fail_next = (500, STRIPE_500)  # failed before Stripe began: nothing saved, the retry charges
    client_for(key, proxy_url, retries=1).v1.charges.create(params=CHARGE,
                                                            options={"headers": {"X-Agent-Run-Id": run_id}})
    first, retry = audit_rows(sql, run_id)
    assert (first["reason"], first["cost_usd"], retry["cost_usd"]) == ("upstream_server_error", Decimal("20.00"),
                                                                       Decimal("20.00"))
    assert spent(sql, key) == (Decimal("40.00"), Decimal(0))
    # The charge's events name the key both calls carried, and the retry's request id, not the first's.
    assert reconcile(pg_url, emulator_url, key).waiting == 1
    assert reconcile(pg_url, emulator_url, key, later_s=WINDOW_OVER_S).repriced == 1
    assert sql.execute("SELECT cost_usd FROM audit_events WHERE id = %s", (first["id"],)).fetchone() == {
        "cost_usd": Decimal(0)}
    assert spent(sql, key) == (Decimal("20.00"), Decimal(0))


def test_a_post_sent_without_an_idempotency_key_gets_one_so_stripe_can_name_it(stripe_down, sql, run_id):
    app, _, key, proxy_url = stripe_down
    answer = httpx.post(f"{proxy_url}/stripe/v1/charges", data={k: str(v) for k, v in CHARGE.items()},
                        headers={"authorization": f"Bearer {key['key']}", "x-agent-run-id": run_id})
    assert answer.status_code == 200
    [row] = audit_rows(sql, run_id)
    [received] = [r for r in app.state.received if r.method == "POST"]
    assert received.headers["idempotency-key"] == row["idempotency_key"] == f"tollgate-{row['request_id']}"
    [event] = app.state.store.newest_first("event")
    assert event["request"] == {"id": row["upstream_request_id"], "idempotency_key": row["idempotency_key"]}


def test_tollgate_prices_reconcile_settles_them(stripe_down, pg_url, sql, run_id):
    app, emulator_url, key, proxy_url = stripe_down
    app.state.outage = Outage(500, STRIPE_500, carried_out=[True])
    with pytest.raises(stripe.APIError):
        client_for(key, proxy_url).v1.charges.create(params=CHARGE, options={"headers": {"X-Agent-Run-Id": run_id}})
    app.state.outage = None
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}
    env.update(DATABASE_URL=pg_url, TOLLGATE_MASTER_KEY=MASTER_KEY, TOLLGATE_UPSTREAM_STRIPE=emulator_url)
    done = subprocess.run([sys.executable, "-m", "proxy", "prices", "reconcile", "--vendor", "stripe"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "settled from the vendor's record" in done.stdout, done.stdout
    [row] = audit_rows(sql, run_id)
    assert (row["cost_usd"], row["cost_source"]) == (Decimal("20.00"), "parsed") and row["cost_reconciled_at"]
