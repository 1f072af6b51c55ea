"""An account's own prices (issue 19, items 1 and 5): Twilio's from its Pricing API, Resend's as set.

The real ``tollgate prices sync --vendor twilio`` runs as a process of its own against the Pricing
host's emulator over loopback (Pricing v1 Messaging and PhoneNumbers, v2 Voice, in the shapes of
Twilio's OpenAPI documents) with the key's own credential; a real proxy on a database of its own
installs what it stored, and twilio-python's SMS is priced from it, its row naming the synced
price and its day. A country the account's price list lacks keeps the shipped price, and says so.
Two serve-like loops share one lease, so the price list is read once. A Resend key with a rate of
its own (``tollgate prices set resend``) prices its emails at that rate; another key, at the
shipped one.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import psycopg
import pytest
import resend
from psycopg.rows import dict_row
from twilio.rest import Client

from emulators.resend_api import create_app as create_resend_emulator
from emulators.twilio_api import create_app as create_twilio_emulator
from emulators.twilio_products import create_app as create_product_emulator
from proxy import bootstrap, db, leases, migrate, pricetables, vendorprices
from proxy.app import create_app
from proxy.upstream import create_upstream
from tests.support.databases import database_of_its_own
from tests.support.runid import ResendRunClient, TwilioRunClient
from tests.support.servers import serve_asgi
from tests.support.tollgate import (
    ADMIN_TOKEN,
    MASTER_KEY,
    RESEND_SECRET,
    TWILIO_ACCOUNT,
    TWILIO_TOKEN,
    audit_rows,
    settings_for,
)
from vendors import pricebook
from vendors.base import PriceScope

SENDER = "+15005550006"
SMS = "POST /2010-04-01/Accounts/*/Messages.json"
TWILIO_POLICY = {"vendor": "twilio", "endpoints": {"allow": [SMS]},
                 "recipients": {"countries": ["US", "GB", "FR"]}, "senders": [SENDER]}
RESEND_POLICY = {"vendor": "resend", "endpoints": {"allow": ["POST /emails"]},
                 "recipients": {"domains": ["acme.example"]}, "senders": ["receipts@acme.example"]}
SHIPPED_TWILIO = "vendors/pricing/twilio_sms.json"


@pytest.fixture()
def hosts() -> Iterator[dict[str, tuple[str, Any]]]:
    """Emulators of this test's own: Twilio's api and Pricing hosts, and Resend."""
    apps = {"twilio": create_twilio_emulator(TWILIO_ACCOUNT, TWILIO_TOKEN),
            "twilio_pricing": create_product_emulator("pricing", TWILIO_ACCOUNT, TWILIO_TOKEN),
            "resend": create_resend_emulator(RESEND_SECRET)}
    with serve_asgi(apps["twilio"]) as api, serve_asgi(apps["twilio_pricing"]) as pricing, \
            serve_asgi(apps["resend"]) as mail:
        yield {"twilio": (api, apps["twilio"]), "twilio_pricing": (pricing, apps["twilio_pricing"]),
               "resend": (mail, apps["resend"])}


@pytest.fixture()
def prices_db(pg_url: str) -> Iterator[str]:
    """A migrated database of the test's own; this process's installed prices are cleared after."""
    with database_of_its_own(pg_url, "prices") as url:
        migrate.upgrade(url)
        try:
            yield url
        finally:
            pricebook.install([])


@pytest.fixture()
def proxy(prices_db: str, hosts) -> Iterator[tuple[str, httpx.Client]]:
    """A proxy on the test's database that reloads stored prices every 50 ms and never resyncs itself."""
    upstreams = {name: url for name, (url, _) in hosts.items()}
    settings = settings_for(prices_db, upstreams, price_refresh_interval_s=0.05, price_sync_interval_s=0)
    with serve_asgi(create_app(bootstrap.runtime(settings)), lifespan="on") as base_url, httpx.Client(
            base_url=base_url, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10) as admin:
        yield base_url, admin


def tollgate(url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The CLI as an operator runs it: a process of its own."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}
    environment.update(DATABASE_URL=url, TOLLGATE_MASTER_KEY=MASTER_KEY, **env)
    return subprocess.run([sys.executable, "-m", "proxy", *args], env=environment, capture_output=True, text=True,
                          timeout=120)


def twilio_key(admin: httpx.Client, policy: dict[str, Any] = TWILIO_POLICY) -> dict[str, Any]:
    created = admin.post("/admin/v1/keys", json={"vendor": "twilio", "policy": policy, "upstream_secret": TWILIO_TOKEN,
                                                 "upstream_account": TWILIO_ACCOUNT})
    assert created.status_code == 201, created.text
    return created.json()


def send_sms(proxy_url: str, key: str, run_id: str, to: str) -> Any:
    client = Client(TWILIO_ACCOUNT, key, http_client=TwilioRunClient(run_id))
    client.api.base_url = f"{proxy_url}/twilio"
    return client.messages.create(to=to, from_=SENDER, body="Your table is ready.")


def stored(url: str) -> dict[tuple[str, str, str], dict[str, Any]]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        rows = conn.execute("SELECT * FROM vendor_prices ORDER BY kind, country, detail").fetchall()
    return {(row["kind"], row["country"], row["detail"]): row for row in rows}


def wait_for(found: Any) -> None:
    deadline = time.monotonic() + 30  # a bound on a hang, not a speed assertion
    while not found():
        assert time.monotonic() < deadline, "the proxy never installed the stored prices"
        time.sleep(0.05)


def received(app: Any) -> list[str]:
    return [r.path + (f"?{r.query}" if r.query else "") for r in app.state.received]


def test_the_cli_syncs_the_countries_the_policies_reach_and_an_sms_is_priced_from_them(
        proxy, prices_db, hosts, run_id) -> None:
    proxy_url, admin = proxy
    pricing_url, pricing = hosts["twilio_pricing"]
    key = twilio_key(admin)
    send_sms(proxy_url, key["key"], run_id + "_before", "+14155550100")

    done = tollgate(prices_db, "prices", "sync", "--vendor", "twilio", TOLLGATE_UPSTREAM_TWILIO_PRICING=pricing_url)
    assert done.returncode == 0, done.stderr
    assert f"account {TWILIO_ACCOUNT}: 10 price(s) of 3 country(ies) stored, read with key {key['id']}" in done.stdout
    # Only the countries the policy reaches, each list by country, with the key's own credential.
    assert sorted(received(pricing)) == sorted(f"{path}/{iso}" for iso in ("US", "GB", "FR") for path in (
        "/v1/Messaging/Countries", "/v2/Voice/Countries", "/v1/PhoneNumbers/Countries"))
    assert {r.headers["authorization"] for r in pricing.state.received} == {_basic(TWILIO_ACCOUNT, TWILIO_TOKEN)}
    prices = stored(prices_db)
    today = datetime.datetime.now(datetime.UTC).date()
    assert {(k, row["price"], row["currency"]) for k, row in prices.items() if k[0] != "number"} == {
        (("sms", "US", ""), Decimal("0.0091"), "usd"),  # the dearest carrier and number type: att's short code
        (("sms", "GB", ""), Decimal("0.0463"), "usd"),
        (("voice", "US", ""), Decimal("0.090"), "usd"),  # Alaska's prefix, the dearest of the country's
        (("voice", "GB", ""), Decimal("0.0300"), "usd")}
    assert prices[("number", "GB", "toll free")]["currency"] == "gbp" and ("sms", "FR", "") not in prices
    assert {(row["vendor"], row["scope"], row["scope_id"], row["as_of"]) for row in prices.values()} == {
        ("twilio", "account", TWILIO_ACCOUNT, today)}
    assert prices[("sms", "US", "")]["source"] == f"{pricing_url}/v1/Messaging/Countries/US"

    wait_for(lambda: pricebook.find("twilio", PriceScope(None, TWILIO_ACCOUNT), "sms", "US"))
    [synced] = [t for t in pricetables.describe(7 * 86_400) if t["table"] == "vendor_prices"]
    assert (synced["as_of"], synced["stale"]) == (today.isoformat(), False)  # its age is shown with the others
    send_sms(proxy_url, key["key"], run_id, "+14155550100")
    send_sms(proxy_url, key["key"], run_id, "+33612345678")  # France: Twilio's list has no price there
    with psycopg.connect(prices_db, row_factory=dict_row) as sql:
        [before] = audit_rows(sql, run_id + "_before")
        us, france = audit_rows(sql, run_id)
    assert before["predicted_usd"] == Decimal("0.0083")  # the shipped US price, before the sync
    assert before["request_summary"]["price_source"] == {
        "source": "shipped", "kind": "sms", "country": "US", "usd": "0.0083", "as_of": "2026-11-24",
        "from": SHIPPED_TWILIO}
    assert (us["decision"], us["predicted_usd"]) == ("allowed", Decimal("0.0091"))
    assert us["request_summary"]["price_source"] == {
        "source": "synced", "kind": "sms", "country": "US", "usd": "0.0091", "as_of": today.isoformat(),
        "from": f"{pricing_url}/v1/Messaging/Countries/US", "scope": "account"}
    assert (france["decision"], france["predicted_usd"]) == ("allowed", Decimal("0.0858"))
    assert france["request_summary"]["price_source"]["source"] == "shipped"
    assert france["request_summary"]["price_source"]["from"] == SHIPPED_TWILIO


def test_sync_all_lists_every_country_first(prices_db, proxy, hosts) -> None:
    pricing_url, pricing = hosts["twilio_pricing"]
    key = twilio_key(proxy[1])
    done = tollgate(prices_db, "prices", "sync", "--vendor", "twilio", "--key", key["id"], "--all",
                    TOLLGATE_UPSTREAM_TWILIO_PRICING=pricing_url)
    assert done.returncode == 0, done.stderr
    lists = [path for path in received(pricing) if path.endswith("Countries?PageSize=1000")]
    assert sorted(lists) == ["/v1/Messaging/Countries?PageSize=1000", "/v1/PhoneNumbers/Countries?PageSize=1000",
                             "/v2/Voice/Countries?PageSize=1000"]
    assert stored(prices_db)[("sms", "CA", "")]["price"] == Decimal("0.0075")  # no policy reaches Canada
    assert "/v1/Messaging/Countries/FR" not in received(pricing)  # Twilio does not list it: not asked


def test_a_sync_that_cannot_read_says_what_and_keeps_the_rest(prices_db, proxy, hosts) -> None:
    pricing_url, pricing = hosts["twilio_pricing"]
    twilio_key(proxy[1], {**TWILIO_POLICY, "recipients": {"countries": ["US"]}})
    pricing.state.fail_next = (500, {"code": 20500, "message": "Internal Server Error", "status": 500})
    done = tollgate(prices_db, "prices", "sync", "--vendor", "twilio", TOLLGATE_UPSTREAM_TWILIO_PRICING=pricing_url)
    assert done.returncode == 1, done.stderr
    assert "not read: messaging US: the messaging prices of US answered 500" in done.stderr
    assert sorted(stored(prices_db)) == [("number", "US", "local"), ("number", "US", "toll free"),
                                         ("voice", "US", "")]  # the reads that answered are stored


def test_two_serve_loops_under_the_lease_sync_once(prices_db, proxy, hosts) -> None:
    pricing_url, pricing = hosts["twilio_pricing"]
    twilio_key(proxy[1])
    runtime = bootstrap.runtime(settings_for(prices_db, {"twilio_pricing": pricing_url}))
    runs: list[str] = []

    async def serve_like(name: str) -> None:
        engine = db.create_engine(runtime.database_url, runtime.settings)
        upstream = create_upstream(runtime.settings)

        async def job() -> bool:
            runs.append(name)
            return await vendorprices.sync_all(engine, runtime.box, upstream, runtime.settings, runtime.vendors)
        try:
            await leases.every(engine, "price_sync", 3600, job, check_s=0.01, holder=name)
        finally:
            await upstream.aclose()
            await engine.dispose()

    async def both() -> None:
        loops = [asyncio.create_task(serve_like(name)) for name in ("first", "second")]
        while len(stored(prices_db)) < 10:  # the one sync has stored everything
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)  # dozens of further checks by each loop: none may sync again
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)

    asyncio.run(asyncio.wait_for(both(), 60))
    assert len(runs) == 1
    assert len([path for path in received(pricing) if path.startswith("/v1/Messaging/Countries/")]) == 3
    with psycopg.connect(prices_db) as conn:
        assert conn.execute("SELECT holder FROM background_leases WHERE name = 'price_sync'").fetchone() == (runs[0],)


def test_two_serve_processes_on_one_database_sync_once_and_install_it(prices_db, proxy, hosts) -> None:
    pricing = hosts["twilio_pricing"][1]
    twilio_key(proxy[1])
    upstreams = {name: url for name, (url, _) in hosts.items()}
    settings = settings_for(prices_db, upstreams, price_sync_interval_s=3600, price_refresh_interval_s=0.05)
    with serve_asgi(create_app(bootstrap.runtime(settings)), lifespan="on"), \
            serve_asgi(create_app(bootstrap.runtime(settings)), lifespan="on"):
        wait_for(lambda: len(stored(prices_db)) == 10)  # both started, and each tried the lease at its start
        wait_for(lambda: pricebook.find("twilio", PriceScope(None, TWILIO_ACCOUNT), "voice", "GB"))
    assert sorted(received(pricing)) == sorted(f"{path}/{iso}" for iso in ("US", "GB", "FR") for path in (
        "/v1/Messaging/Countries", "/v2/Voice/Countries", "/v1/PhoneNumbers/Countries"))  # each read once
    with psycopg.connect(prices_db) as conn:
        assert conn.execute("SELECT count(*) FROM background_leases").fetchone() == (1,)


def test_a_failed_job_gives_the_lease_back_to_be_taken_again(prices_db) -> None:
    runtime = bootstrap.runtime(settings_for(prices_db, {}))
    runs: list[bool] = []

    async def loop() -> None:
        engine = db.create_engine(runtime.database_url, runtime.settings)

        async def job() -> bool:
            runs.append(len(runs) > 0)  # fails the first time
            return runs[-1]
        task = asyncio.create_task(leases.every(engine, "flaky", 3600, job, check_s=0.01, retry_s=0.05))
        while len(runs) < 2:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await engine.dispose()

    asyncio.run(asyncio.wait_for(loop(), 60))
    assert runs == [False, True]  # retried after the failure, then held for the hour


def test_a_resend_email_is_priced_at_the_rate_set_for_its_key(prices_db, proxy, hosts, run_id, monkeypatch) -> None:
    proxy_url, admin = proxy
    own, other, team = (admin.post("/admin/v1/keys", json={
        "vendor": "resend", "policy": RESEND_POLICY, "upstream_secret": RESEND_SECRET, **account}).json()
        for account in ({}, {}, {"upstream_account": "team-a"}))
    done = tollgate(prices_db, "prices", "set", "resend", "0.0004", "--key", own["id"])
    assert done.returncode == 0, done.stderr
    assert f"stored for key {own['id']}" in done.stdout
    done = tollgate(prices_db, "prices", "set", "resend", "0.0006", "--account", "team-a")
    assert done.returncode == 0 and "stored for account team-a" in done.stdout, done.stderr
    assert tollgate(prices_db, "prices", "set", "resend", "cheap", "--key", own["id"]).returncode == 2
    assert tollgate(prices_db, "prices", "set", "resend", "0.0004", "--key", "tgk_nope").returncode == 1
    wait_for(lambda: pricebook.find("resend", PriceScope(own["id"]), "email")
             and pricebook.find("resend", PriceScope(None, "team-a"), "email"))

    monkeypatch.setattr(resend, "api_url", f"{proxy_url}/resend")
    monkeypatch.setattr(resend, "default_http_client", ResendRunClient(run_id))
    for key in (own, other, team):
        monkeypatch.setattr(resend, "api_key", key["key"])
        resend.Emails.send({"from": "receipts@acme.example", "to": ["ana@acme.example", "bo@acme.example"],
                            "subject": "Your receipt", "html": "<p>Thanks!</p>"})
    with psycopg.connect(prices_db, row_factory=dict_row) as sql:
        mine, theirs, teams = audit_rows(sql, run_id)
    assert (mine["predicted_usd"], mine["cost_usd"]) == (Decimal("0.0008"), Decimal("0.0008"))  # 2 x 0.0004
    source = mine["request_summary"]["price_source"]
    assert (source["source"], source["scope"], source["usd"], source["from"]) == (
        "set", "key", "0.0004", "tollgate prices set")
    assert theirs["predicted_usd"] == Decimal("0.0018")  # the shipped 0.0009 x 2
    assert theirs["request_summary"]["price_source"]["source"] == "shipped"
    assert teams["predicted_usd"] == Decimal("0.0012")  # its account's 0.0006 x 2
    assert (teams["request_summary"]["price_source"]["scope"], teams["request_summary"]["price_source"]["usd"]) == (
        "account", "0.0006")


def _basic(user: str, password: str) -> str:
    import base64
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
