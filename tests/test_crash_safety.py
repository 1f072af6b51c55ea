"""Guarantee 7 with a real crash: a ``tollgate serve`` process is SIGKILLed while its calls
are at the vendor. Another process reconciles what it left behind: no reservation stays
open, every call the vendor saw has its audit row (marked ``reconciled``, not deleted),
and the counters equal the sum of the audit rows, so the cap still holds afterwards."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import httpx
import pytest

from emulators.stripe_api import create_app as create_stripe_emulator
from tests.support.processes import proxy_env, tollgate_serve
from tests.support.servers import serve_asgi
from tests.support.tollgate import ADMIN_TOKEN, STRIPE_SECRET, policy

CALLS = 20
PRICE_MINOR = 200  # $2.00: the $30.00 cap admits 15 of the 20
ADMITTED = 15


@pytest.fixture()
def hanging_vendor():
    """A Stripe emulator of this test's own whose answers take a minute: calls stay in flight."""
    app = create_stripe_emulator(STRIPE_SECRET)
    app.state.delay_s = 60
    with serve_asgi(app) as url:
        yield url, app


def charge(base: str, key: str, i: int) -> int | str:
    try:
        return httpx.post(f"{base}/stripe/v1/charges", timeout=90,
                          content=f"amount={PRICE_MINOR}&currency=usd&source=tok_visa".encode(),
                          headers={"authorization": f"Bearer {key}", "idempotency-key": f"crash-{i}",
                                   "x-agent-run-id": "crash-run", "content-type": "application/x-www-form-urlencoded"},
                          ).status_code
    except httpx.TransportError as exc:  # the process died under this call
        return type(exc).__name__


def wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_sigkill_with_calls_in_flight_loses_nothing_and_counts_nothing_twice(pg_url, hanging_vendor, sql):
    upstream, vendor = hanging_vendor
    # A short reservation TTL so the test need not wait five minutes; the dead process never reconciles.
    env = proxy_env(pg_url, {"stripe": upstream}, reservation_ttl_s=2, reconcile_interval_s=3600)
    with tollgate_serve(env) as (doomed, process), ThreadPoolExecutor(CALLS) as pool:
        key = httpx.post(f"{doomed}/admin/v1/keys", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, json={
            "vendor": "stripe", "upstream_secret": STRIPE_SECRET,
            "policy": policy(caps=[{"usd": "30.00", "window": "day"}])}).json()
        answers = [pool.submit(charge, doomed, key["key"], i) for i in range(CALLS)]
        wait_for(lambda: len(vendor.state.received) == ADMITTED and sum(a.done() for a in answers) == CALLS - ADMITTED,
                 30, "15 calls at the vendor and 5 refused")
        pending = sql.execute("SELECT count(*) AS n FROM audit_events WHERE key_id = %s AND state = 'pending'",
                              (key["id"],)).fetchone()["n"]
        assert pending == ADMITTED  # the proof that the kill lands with calls in flight
        process.kill()
        process.wait(timeout=10)
        outcomes = sorted(str(a.result()) for a in answers)
    assert outcomes.count("403") == CALLS - ADMITTED
    assert all(o != "200" for o in outcomes)  # the in-flight calls died with the process

    vendor.state.delay_s = 0
    survivor_env = proxy_env(pg_url, {"stripe": upstream}, reservation_ttl_s=2, reconcile_interval_s=0.3)
    with tollgate_serve(survivor_env) as (survivor, _):
        open_reservations = "SELECT count(*) AS n FROM reservations WHERE key_id = %s AND reconciled_at IS NULL"
        wait_for(lambda: sql.execute(open_reservations, (key["id"],)).fetchone()["n"] == 0, 20, "reconciliation")
        after = httpx.post(f"{survivor}/stripe/v1/charges", content=b"amount=100&currency=usd&source=tok_visa",
                           headers={"authorization": f"Bearer {key['key']}", "x-agent-run-id": "crash-run",
                                    "content-type": "application/x-www-form-urlencoded"})
    assert after.status_code == 403 and after.json()["error"]["code"] == "cap_exceeded"  # $30 stays spent

    rows = sql.execute("SELECT decision, state, reason, cost_usd, cost_source, idempotency_key FROM audit_events "
                       "WHERE key_id = %s AND idempotency_key LIKE 'crash-%%'", (key["id"],)).fetchall()
    forwarded = [r for r in rows if r["decision"] == "allowed"]
    assert len(rows) == CALLS
    assert {(r["state"], r["reason"], r["cost_usd"], r["cost_source"]) for r in forwarded} == {
        ("reconciled", "reservation_expired", Decimal("2.00"), "estimated")}
    assert {r["idempotency_key"] for r in forwarded} == {r.headers["idempotency-key"] for r in vendor.state.received}
    counter = sql.execute("SELECT spent_usd, reserved_usd, requests FROM budget_counters "
                          "WHERE key_id = %s AND bucket LIKE 'day:%%'", (key["id"],)).fetchone()
    assert counter == {"spent_usd": sum(r["cost_usd"] for r in forwarded), "reserved_usd": 0, "requests": ADMITTED}
    assert counter["spent_usd"] == Decimal("30.00")
