"""Guarantee 1: if the gate cannot commit, nothing is forwarded and the agent gets a
Stripe-shaped 503; when Postgres returns, the proxy recovers without a restart."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
import stripe

from proxy import bootstrap
from proxy.app import create_app
from tests.support.servers import serve_asgi
from tests.support.tollgate import ADMIN_TOKEN, STRIPE_SECRET, policy, settings_for


def test_database_down_fails_closed_and_recovers(own_postgres, stripe_emulator):
    url, stop_postgres, start_postgres = own_postgres
    emulator_url, emulator_app = stripe_emulator
    runtime = bootstrap.runtime(settings_for(url, {"stripe": emulator_url}, db_timeout_s=2.0))
    with serve_asgi(create_app(runtime), lifespan="on") as proxy_url:
        admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        key = httpx.post(f"{proxy_url}/admin/v1/keys", headers=admin,
                         json={"vendor": "stripe", "policy": policy(), "upstream_secret": STRIPE_SECRET}).json()
        client = stripe.StripeClient(key["key"], base_addresses={"api": f"{proxy_url}/stripe"}, max_network_retries=0)
        charge = {"amount": 100, "currency": "usd", "source": "tok_visa"}
        client.v1.charges.create(params=charge)  # warm: the key is now cached in the process

        stop_postgres()
        forwarded_before = len(emulator_app.state.received)
        for _ in range(3):
            with pytest.raises(stripe.APIError) as raised:
                client.v1.charges.create(params=charge, options={"headers": {"X-Agent-Run-Id": str(uuid.uuid4())}})
            assert raised.value.http_status == 503
            assert "Nothing was sent to the vendor" in raised.value.user_message
        assert len(emulator_app.state.received) == forwarded_before
        assert httpx.get(f"{proxy_url}/readyz").status_code == 503
        assert httpx.get(f"{proxy_url}/healthz").status_code == 200

        start_postgres()
        deadline = time.monotonic() + 20
        while True:
            try:
                recovered = client.v1.charges.create(params=charge)
                break
            except stripe.APIError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert recovered.status == "succeeded"
        assert httpx.get(f"{proxy_url}/readyz").status_code == 200


def test_a_refusal_that_cannot_be_recorded_still_fails_closed_in_stripes_shape(own_postgres, stripe_emulator):
    """A malformed request on a known key is refused and recorded; with the database gone the
    record cannot be written, and the answer is a Stripe 503, not a server crash."""
    url, stop_postgres, _ = own_postgres
    runtime = bootstrap.runtime(settings_for(url, {"stripe": stripe_emulator[0]}, db_timeout_s=2.0))
    with serve_asgi(create_app(runtime), lifespan="on") as proxy_url:
        admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        key = httpx.post(f"{proxy_url}/admin/v1/keys", headers=admin,
                         json={"vendor": "stripe", "policy": policy(), "upstream_secret": STRIPE_SECRET}).json()
        headers = {"authorization": f"Bearer {key['key']}", "content-type": "application/x-www-form-urlencoded"}
        assert httpx.post(f"{proxy_url}/stripe/v1/charges", content=b"a=1&a=2", headers=headers).status_code == 400
        stop_postgres()
        response = httpx.post(f"{proxy_url}/stripe/v1/charges", content=b"a=1&a=2", headers=headers)
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "database_unavailable"
        assert response.headers["stripe-should-retry"] == "true"
