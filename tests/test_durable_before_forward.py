"""Guarantee 2: no forward without a durable audit row. The vendor, at the moment a call
reaches it, can already read the call's audit row, committed and 'pending', from another
connection."""

from __future__ import annotations

import json

import httpx
import psycopg
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from proxy import bootstrap
from proxy.app import create_app
from tests.support.servers import serve_asgi
from tests.support.tollgate import ADMIN_TOKEN, STRIPE_SECRET, policy, settings_for


def test_the_pending_row_is_committed_before_the_vendor_sees_the_call(pg_url, run_id):
    seen_by_vendor: list[tuple] = []

    async def charge(request) -> Response:
        idempotency_key = request.headers["idempotency-key"]  # forwarded, and recorded on the audit row
        with psycopg.connect(pg_url, autocommit=True) as conn:  # another session: sees only committed rows
            seen_by_vendor.extend(conn.execute(
                "SELECT decision, state, upstream_status FROM audit_events WHERE idempotency_key = %s",
                (idempotency_key,)).fetchall())
        body = {"id": "ch_durable12345678", "object": "charge", "amount": 100, "currency": "usd"}
        return Response(json.dumps(body), media_type="application/json")

    vendor = Starlette(routes=[Route("/v1/charges", charge, methods=["POST"])])
    with serve_asgi(vendor) as upstream:
        runtime = bootstrap.runtime(settings_for(pg_url, {"stripe": upstream}))
        with serve_asgi(create_app(runtime), lifespan="on") as proxy_url:
            admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
            key = httpx.post(f"{proxy_url}/admin/v1/keys", headers=admin,
                             json={"vendor": "stripe", "policy": policy(), "upstream_secret": STRIPE_SECRET}).json()
            answer = httpx.post(f"{proxy_url}/stripe/v1/charges", content=b"amount=100&currency=usd",
                                headers={"authorization": f"Bearer {key['key']}", "x-agent-run-id": run_id,
                                         "idempotency-key": f"durable-{run_id}",
                                         "content-type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 200
    assert seen_by_vendor == [("allowed", "pending", None)]
