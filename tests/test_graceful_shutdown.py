"""Graceful shutdown: SIGTERM lets calls in flight finish (and settle) before the process exits."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time

import httpx
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from tests.support.processes import tollgate_serve
from tests.support.servers import serve_asgi
from tests.support.tollgate import ADMIN_TOKEN, MASTER_KEY, STRIPE_SECRET, policy


async def slow_charge(request) -> Response:
    await asyncio.sleep(1.5)
    body = {"id": "ch_slow1234567890", "object": "charge", "amount": 500, "currency": "usd"}
    return Response(json.dumps(body), media_type="application/json", headers={"Request-Id": "req_slow"})


def test_sigterm_drains_calls_in_flight(pg_url, sql):
    slow_vendor = Starlette(routes=[Route("/v1/charges", slow_charge, methods=["POST"])])
    with serve_asgi(slow_vendor) as upstream:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}
        env.update(DATABASE_URL=pg_url, TOLLGATE_MASTER_KEY=MASTER_KEY, TOLLGATE_ADMIN_TOKEN=ADMIN_TOKEN,
                   TOLLGATE_UPSTREAM_STRIPE=upstream)
        with tollgate_serve(env) as (base, process):
            key = httpx.post(f"{base}/admin/v1/keys", headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
                             json={"vendor": "stripe", "policy": policy(), "upstream_secret": STRIPE_SECRET}).json()
            answers: list[httpx.Response] = []
            call = threading.Thread(target=lambda: answers.append(httpx.post(
                f"{base}/stripe/v1/charges", content=b"amount=500&currency=usd&source=tok_visa", timeout=30,
                headers={"authorization": f"Bearer {key['key']}", "x-agent-run-id": "drain-run",
                         "content-type": "application/x-www-form-urlencoded"})))
            call.start()
            time.sleep(0.5)  # the call is at the vendor now
            process.send_signal(signal.SIGTERM)
            call.join(timeout=30)
            # uvicorn drains, then re-raises the SIGTERM it caught so the exit status tells why it stopped.
            assert process.wait(timeout=30) in (0, -signal.SIGTERM)
    assert [a.status_code for a in answers] == [200]
    row = sql.execute("SELECT state, decision, cost_usd FROM audit_events WHERE agent_run_id = 'drain-run'").fetchone()
    assert (row["state"], row["decision"], row["cost_usd"]) == ("final", "allowed", 5)
