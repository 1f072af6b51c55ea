"""The duplicate guard through stripe-python against the Stripe emulator: an agent's retry loop
(a fresh Idempotency-Key per call, as the SDK draws them) forwards one refund, not fifty; the
vendor's own replay, a different call, a read, and the same call after the window all pass."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest
import stripe

from proxy import bootstrap
from proxy.app import create_app
from tests.support.processes import free_port
from tests.support.servers import serve_asgi
from tests.support.tollgate import ADMIN_TOKEN, STRIPE_SECRET, audit_rows, policy, settings_for

WINDOW = {"duplicates": {"window_s": 60}}


def client_for(proxy_url: str, key: str) -> stripe.StripeClient:
    return stripe.StripeClient(key, base_addresses={"api": f"{proxy_url}/stripe"}, max_network_retries=0)


def run(run_id: str, **extra: Any) -> dict[str, Any]:
    return {"headers": {"X-Agent-Run-Id": run_id}, **extra}


def refunds_forwarded(emulator_app: Any, charge_id: str) -> int:
    return sum(1 for r in emulator_app.state.received
               if r.method == "POST" and r.path == "/v1/refunds" and charge_id.encode() in r.body)


@pytest.fixture()
def emulator_app(stripe_emulator: Any) -> Any:
    return stripe_emulator[1]


def charged(client: stripe.StripeClient, run_id: str) -> str:
    return client.v1.charges.create(params={"amount": 5000, "currency": "usd", "source": "tok_visa"},
                                    options=run(run_id)).id


def refund_rows(sql: Any, run_id: str) -> list[dict[str, Any]]:
    return [r for r in audit_rows(sql, run_id) if r["endpoint"] == "POST /v1/refunds"]


def test_a_retry_loop_of_50_identical_refunds_forwards_one(proxy_url, make_key, sql, run_id, emulator_app):
    client = client_for(proxy_url, make_key(policy(**WINDOW))["key"])
    charge = charged(client, run_id)
    refused: list[stripe.StripeError] = []
    for _ in range(50):  # agent code retrying on every error, each call a new SDK idempotency key
        try:
            client.v1.refunds.create(params={"charge": charge, "amount": 700}, options=run(run_id))
        except stripe.PermissionError as exc:
            refused.append(exc)

    assert refunds_forwarded(emulator_app, charge) == 1
    assert len(refused) == 49
    rows = refund_rows(sql, run_id)
    first = rows[0]
    assert first["decision"] == "allowed" and first["upstream_status"] == 200
    assert [(r["decision"], r["reason"]) for r in rows[1:]] == [("blocked", "duplicate_call")] * 49
    assert len({r["idempotency_key"] for r in rows}) == 50  # 50 distinct keys: the vendor saw one call
    assert all(exc.error is not None and exc.error.code == "duplicate_call" for exc in refused)
    assert all(first["request_id"] in str(exc) for exc in refused)
    assert all(first["request_id"] in r["message"] for r in rows[1:])


def test_the_first_calls_idempotency_key_again_is_the_vendors_replay(proxy_url, make_key, sql, run_id,
                                                                    emulator_app):
    client = client_for(proxy_url, make_key(policy(**WINDOW))["key"])
    charge = charged(client, run_id)
    params = {"charge": charge, "amount": 300}
    first = client.v1.refunds.create(params=params, options=run(run_id, idempotency_key=f"retry-{charge}"))
    again = client.v1.refunds.create(params=params, options=run(run_id, idempotency_key=f"retry-{charge}"))

    assert again.id == first.id  # Stripe answered from its idempotency cache: one refund
    assert refunds_forwarded(emulator_app, charge) == 2
    rows = refund_rows(sql, run_id)
    assert [r["decision"] for r in rows] == ["allowed", "allowed"]
    assert rows[1]["reason"] == "idempotent_replay"


def test_a_different_amount_is_another_call(proxy_url, make_key, sql, run_id, emulator_app):
    client = client_for(proxy_url, make_key(policy(**WINDOW))["key"])
    charge = charged(client, run_id)
    client.v1.refunds.create(params={"charge": charge, "amount": 100}, options=run(run_id))
    client.v1.refunds.create(params={"amount": 200, "charge": charge}, options=run(run_id))

    assert refunds_forwarded(emulator_app, charge) == 2
    assert [r["decision"] for r in refund_rows(sql, run_id)] == ["allowed", "allowed"]


def test_after_the_window_the_same_call_passes_again(proxy_url, make_key, sql, run_id, emulator_app):
    client = client_for(proxy_url, make_key(policy(duplicates={"window_s": 1}))["key"])
    charge = charged(client, run_id)
    params = {"charge": charge, "amount": 400}
    client.v1.refunds.create(params=params, options=run(run_id))
    with pytest.raises(stripe.PermissionError):
        client.v1.refunds.create(params=params, options=run(run_id))
    time.sleep(1.2)  # past the 1 s window (Postgres's clock decides)
    client.v1.refunds.create(params=params, options=run(run_id))

    assert refunds_forwarded(emulator_app, charge) == 2
    assert [r["reason"] for r in refund_rows(sql, run_id)] == [None, "duplicate_call", None]


def test_concurrent_identical_calls_forward_one(proxy_url, make_key, sql, run_id, emulator_app):
    key = make_key(policy(**WINDOW))["key"]
    charge = charged(client_for(proxy_url, key), run_id)
    start, outcomes = threading.Barrier(2), []

    def refund() -> None:
        client = client_for(proxy_url, key)  # one client per thread, as two workers would have
        start.wait()
        try:
            client.v1.refunds.create(params={"charge": charge, "amount": 500}, options=run(run_id))
            outcomes.append("forwarded")
        except stripe.PermissionError as exc:
            outcomes.append(exc.error.code if exc.error else "?")

    threads = [threading.Thread(target=refund) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["duplicate_call", "forwarded"]
    assert refunds_forwarded(emulator_app, charge) == 1


def test_a_read_is_never_a_duplicate(proxy_url, make_key, sql, run_id):
    client = client_for(proxy_url, make_key(policy(**WINDOW))["key"])
    charge = charged(client, run_id)
    for _ in range(3):
        assert client.v1.charges.retrieve(charge, options=run(run_id)).id == charge

    reads = [r for r in audit_rows(sql, run_id) if r["endpoint"] == "GET /v1/charges/{id}"]
    assert [r["decision"] for r in reads] == ["allowed"] * 3


def test_without_the_option_repeats_are_forwarded(proxy_url, make_key, sql, run_id, emulator_app):
    client = client_for(proxy_url, make_key(policy())["key"])
    charge = charged(client, run_id)
    for _ in range(2):
        client.v1.refunds.create(params={"charge": charge, "amount": 100}, options=run(run_id))

    assert refunds_forwarded(emulator_app, charge) == 2



def test_a_call_that_never_reached_the_vendor_may_be_retried(pg_url, sql, run_id):
    """Tollgate answers an unreachable vendor with 'retry': the retry is not refused as a duplicate."""
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with serve_asgi(create_app(bootstrap.runtime(settings_for(pg_url, {"stripe": nowhere}))), lifespan="on") as url:
        key = httpx.post(f"{url}/admin/v1/keys", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, json={
            "vendor": "stripe", "upstream_secret": STRIPE_SECRET, "policy": policy(**WINDOW)}).json()
        client = client_for(url, key["key"])
        for _ in range(2):
            with pytest.raises(stripe.APIError):
                client.v1.charges.create(params={"amount": 500, "currency": "usd", "source": "tok_visa"},
                                         options=run(run_id))
    assert [r["reason"] for r in audit_rows(sql, run_id)] == ["upstream_unreachable"] * 2
