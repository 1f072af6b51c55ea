"""The vendor misbehaves: too slow, hanging, resetting the connection, refusing it,
answering 5xx/429/402, or answering more than Tollgate relays. Each call ends within the
configured timeout, the official SDK raises its own exception, the reservation is settled (at
its estimate when the call may have happened: a timeout, a reset, a 5xx, an answer too large
to relay; at 0 when it surely did not), the audit row says what happened, and the vendor sees
the call exactly once: the proxy never retries a POST, with or without an Idempotency-Key (it
adds one where the client sent none)."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal

import httpx
import pytest
import stripe
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from emulators.stripe_api import create_app as create_stripe_emulator
from proxy import bootstrap
from proxy.app import create_app
from tests.support.faulty import faulty_vendor
from tests.support.processes import free_port
from tests.support.servers import serve_asgi
from tests.support.tollgate import (
    ADMIN_TOKEN,
    STRIPE_SECRET,
    audit_rows,
    policy,
    settings_for,
)

TIMEOUT_S = 1.0
CHARGE = {"amount": 100, "currency": "usd", "source": "tok_visa"}  # $1.00
MAYBE_SENT = Decimal("1.00")  # the call may have moved money: its estimate stays on the books

# fault: (status, SDK exception, decision, reason, upstream_status, cost_usd, cost_source, Stripe-Should-Retry)
FAULTS = {
    "slow": (504, stripe.APIError, "error", "upstream_timeout", None, MAYBE_SENT, "estimated", "false"),
    "hang": (504, stripe.APIError, "error", "upstream_timeout", None, MAYBE_SENT, "estimated", "false"),
    "reset": (502, stripe.APIError, "error", "upstream_error", None, MAYBE_SENT, "estimated", "false"),
    "refused": (502, stripe.APIError, "error", "upstream_unreachable", None, Decimal(0), "none", "true"),
    "500": (500, stripe.APIError, "error", "upstream_server_error", 500, MAYBE_SENT, "estimated", None),
    "429": (429, stripe.RateLimitError, "allowed", None, 429, Decimal(0), "parsed", None),
    "402": (402, stripe.CardError, "allowed", None, 402, Decimal(0), "parsed", None),  # declined: nothing moved
}


@contextmanager
def vendor_with(fault: str) -> Iterator[tuple[str, Callable[[], int], Callable[[], None]]]:
    """(base URL, how many POSTs the vendor has seen, arm the fault for the next call)."""
    if fault in ("hang", "reset"):
        with faulty_vendor(fault) as (url, raw):
            yield url, lambda: sum(line.startswith("POST ") for line in raw.request_lines), lambda: None
        return
    if fault == "refused":
        yield f"http://127.0.0.1:{free_port()}", lambda: 0, lambda: None
        return
    app = create_stripe_emulator(STRIPE_SECRET)
    arm = {
        "slow": lambda: setattr(app.state, "delay_s", TIMEOUT_S + 4),
        "500": lambda: setattr(app.state, "fail_next", (500, {"type": "api_error", "message": "Stripe broke."})),
        "429": lambda: setattr(app.state, "fail_next", (429, {"type": "rate_limit_error", "code": "rate_limit",
                                                              "message": "Too many requests."}, {"Retry-After": "7"})),
        "402": lambda: setattr(app.state, "fail_next", (402, {"type": "card_error", "code": "card_declined",
                                                              "message": "Your card was declined."})),
    }[fault]
    with serve_asgi(app) as url:
        yield url, lambda: sum(r.method == "POST" for r in app.state.received), arm


@pytest.fixture(params=list(FAULTS))
def fault(request, pg_url):
    with vendor_with(request.param) as (upstream, posts_seen, arm):
        settings = settings_for(pg_url, {"stripe": upstream}, upstream_timeout_s=TIMEOUT_S,
                                upstream_connect_timeout_s=TIMEOUT_S)
        with serve_asgi(create_app(bootstrap.runtime(settings)), lifespan="on") as proxy_url:
            key = httpx.post(f"{proxy_url}/admin/v1/keys", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, json={
                "vendor": "stripe", "upstream_secret": STRIPE_SECRET,
                "policy": policy(caps=[{"usd": "100.00", "window": "day"}])}).json()
            yield request.param, proxy_url, key, posts_seen, arm


def test_a_failing_vendor_is_reported_recorded_and_never_retried(fault, sql, run_id):
    name, proxy_url, key, posts_seen, arm = fault
    status, sdk_error, decision, reason, upstream_status, cost, source, should_retry = FAULTS[name]
    client = stripe.StripeClient(key["key"], base_addresses={"api": f"{proxy_url}/stripe"}, max_network_retries=0)

    arm()
    started = time.monotonic()
    with pytest.raises(sdk_error) as raised:
        client.v1.charges.create(params=CHARGE, options={"headers": {"X-Agent-Run-Id": run_id}})
    assert time.monotonic() - started < TIMEOUT_S + 2
    assert raised.value.http_status == status
    assert posts_seen() == (0 if name == "refused" else 1)

    arm()  # the same call without an Idempotency-Key, as a hand-written client would send it
    started = time.monotonic()
    bare = httpx.post(f"{proxy_url}/stripe/v1/charges", data={k: str(v) for k, v in CHARGE.items()}, timeout=30,
                      headers={"authorization": f"Bearer {key['key']}", "x-agent-run-id": run_id})
    assert time.monotonic() - started < TIMEOUT_S + 2
    assert bare.status_code == status and "error" in bare.json()
    assert bare.headers.get("stripe-should-retry") == should_retry
    assert posts_seen() == (0 if name == "refused" else 2)  # once per call: never retried
    if name == "429":
        assert bare.headers["retry-after"] == "7"  # the vendor's back-off reaches the agent

    rows = audit_rows(sql, run_id)
    assert [(r["state"], r["decision"], r["reason"], r["upstream_status"], r["cost_usd"], r["cost_source"])
            for r in rows] == [("final", decision, reason, upstream_status, cost, source)] * 2
    assert rows[0]["idempotency_key"] and rows[1]["idempotency_key"] == f"tollgate-{rows[1]['request_id']}"
    counter = sql.execute("SELECT spent_usd, reserved_usd FROM budget_counters WHERE key_id = %s",
                          (key["id"],)).fetchone()
    assert counter == {"spent_usd": 2 * cost, "reserved_usd": 0}


MAX_BODY = 64 * 1024
HUGE = json.dumps({"id": "ch_huge", "object": "charge", "amount": 100, "currency": "usd",
                   "metadata": {f"k{i}": "x" * 500 for i in range(2048)}}).encode()  # ~1 MiB


def huge_vendor(shape: str, posts: list[str]) -> Starlette:
    """Answers every charge with ~1 MiB: with its length, chunked without one, or gzipped to
    well under the limit (a small answer on the wire that decodes to too much)."""

    async def charge(request: Request) -> Response:
        posts.append(request.method)
        if shape == "declared":
            return Response(HUGE, media_type="application/json")
        if shape == "gzip":
            return Response(gzip.compress(HUGE), media_type="application/json", headers={"content-encoding": "gzip"})

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(HUGE), 16384):
                yield HUGE[start:start + 16384]

        return StreamingResponse(chunks(), media_type="application/json")

    return Starlette(routes=[Route("/v1/charges", charge, methods=["POST"])])


@pytest.mark.parametrize("transport", ["aiohttp", "httpx-aiohttp", "httpx"])
@pytest.mark.parametrize("shape", ["declared", "chunked", "gzip"])
def test_an_answer_larger_than_the_limit_is_not_relayed_and_its_estimate_stands(pg_url, sql, run_id, transport,
                                                                                 shape):
    """Issue 17 item 8: a 40 MB answer was read into memory and relayed whole."""
    assert len(gzip.compress(HUGE)) < MAX_BODY < len(HUGE)
    posts: list[str] = []
    with serve_asgi(huge_vendor(shape, posts)) as upstream:
        settings = settings_for(pg_url, {"stripe": upstream}, upstream_transport=transport,
                                upstream_max_body_bytes=MAX_BODY)
        with serve_asgi(create_app(bootstrap.runtime(settings)), lifespan="on") as proxy_url:
            key = httpx.post(f"{proxy_url}/admin/v1/keys", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, json={
                "vendor": "stripe", "upstream_secret": STRIPE_SECRET,
                "policy": policy(caps=[{"usd": "100.00", "window": "day"}])}).json()
            client = stripe.StripeClient(key["key"], base_addresses={"api": f"{proxy_url}/stripe"},
                                         max_network_retries=0)
            with pytest.raises(stripe.APIError) as raised:
                client.v1.charges.create(params=CHARGE, options={"headers": {"X-Agent-Run-Id": run_id}})
    assert raised.value.http_status == 502 and raised.value.json_body["error"]["code"] == "upstream_too_large"
    assert raised.value.headers.get("stripe-should-retry") == "false"  # it reached the vendor: never again
    assert len(raised.value.http_body) < 2048 and posts == ["POST"]
    [row] = audit_rows(sql, run_id)
    assert (row["state"], row["decision"], row["reason"], row["upstream_status"], row["cost_usd"],
            row["cost_source"]) == ("final", "error", "upstream_too_large", 200, MAYBE_SENT, "estimated")
    counter = sql.execute("SELECT spent_usd, reserved_usd FROM budget_counters WHERE key_id = %s AND bucket LIKE "
                          "'day:%%'", (key["id"],)).fetchone()
    assert counter == {"spent_usd": MAYBE_SENT, "reserved_usd": 0}  # like a timeout: not released as $0
