"""Exchange rates from the ECB's published daily reference (issue 19, item 2).

The reference is the shipped real copy (tests/fixtures/ecb_eurofxref-daily.xml), served over
loopback HTTP to the real ``tollgate prices sync --fx``; the proxy is a real one on a database of
its own, so the rates it installs are this test's alone, and the charge goes through stripe-python
to the emulator. ISK is the currency of the story: Stripe takes it, the shipped table has no rate
for it, the ECB publishes one."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import stripe
from psycopg.rows import dict_row
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from proxy import bootstrap, fxrates, migrate
from proxy.app import create_app
from proxy.errors import UpstreamFailure
from tests.support.databases import database_of_its_own
from tests.support.servers import serve_asgi
from tests.support.tollgate import ADMIN_TOKEN, STRIPE_SECRET, audit_rows, settings_for
from vendors import money

REFERENCE = (Path(__file__).parent / "fixtures" / "ecb_eurofxref-daily.xml").read_bytes()
SOURCE_PATH = "/stats/eurofxref/eurofxref-daily.xml"
POLICY = {"vendor": "stripe", "endpoints": {"allow": ["POST /v1/charges"]},
          "caps": [{"usd": "10000.00", "window": "day"}]}
HOSTILE = {
    "internal entity": b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
                       b"<lolz>&lol2;</lolz>",
    "external entity": b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>',
    "bare doctype": REFERENCE.replace(b"<gesmes:Envelope", b"<!DOCTYPE gesmes:Envelope>\n<gesmes:Envelope", 1),
    "not the reference": b"<html><body>Service unavailable</body></html>",
    "two days": REFERENCE.replace(b"\t</Cube>\n</gesmes", b"\t\t<Cube time='2024-06-27'/>\n\t</Cube>\n</gesmes"),
    "no usd": REFERENCE.replace(b"<Cube currency='USD' rate='1.0705'/>", b""),
    "a float-shaped rate": REFERENCE.replace(b"rate='148.90'", b"rate='1.489e2'"),
}


def _ratio(usd: str, rate: str) -> Decimal:
    with localcontext() as context:
        context.prec = fxrates.DIGITS
        return Decimal(usd) / Decimal(rate)


@pytest.fixture()
def reference_server() -> Iterator[tuple[str, dict[str, bytes]]]:
    """A loopback HTTP server; what it serves at each path is the test's to set."""
    served = {SOURCE_PATH: REFERENCE}

    async def page(request: Request) -> Response:
        body = served.get(request.url.path)
        return Response(body, media_type="text/xml") if body is not None else Response(status_code=404)

    with serve_asgi(Starlette(routes=[Route("/{path:path}", page)])) as base_url:
        yield base_url, served


@pytest.fixture()
def fx_db(pg_url: str) -> Iterator[str]:
    """A migrated database of the test's own; this process's table is restored after."""
    with database_of_its_own(pg_url, "fx") as url:
        migrate.upgrade(url)
        try:
            yield url
        finally:
            money.install_fx([])


def sync_fx(url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``tollgate prices sync --fx`` as an operator runs it: a process of its own."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}
    environment.update(DATABASE_URL=url, **env)
    return subprocess.run([sys.executable, "-m", "proxy", "prices", "sync", "--fx", *args], env=environment,
                          capture_output=True, text=True, timeout=120)


def _stored(url: str) -> list[dict[str, Any]]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        return conn.execute("SELECT currency, as_of::text, source, usd_per_unit FROM fx_rates ORDER BY 1").fetchall()


def test_every_currency_of_the_real_reference_is_converted_to_usd_per_unit() -> None:
    reference = fxrates.parse_reference(REFERENCE)
    assert reference.as_of.isoformat() == "2024-06-28" and len(reference.per_euro) == 30
    rates = fxrates.usd_per_unit(reference)
    assert set(rates) == {code.lower() for code in reference.per_euro} | {"eur"}
    assert rates["eur"] == Decimal("1.0705") and rates["usd"] == Decimal(1)
    for code, per_euro in reference.per_euro.items():
        if code != "USD":
            assert rates[code.lower()] == _ratio("1.0705", str(per_euro)), code
    assert rates["isk"] == _ratio("1.0705", "148.90") and rates["jpy"] == _ratio("1.0705", "171.94")
    assert all(isinstance(rate, Decimal) for rate in rates.values())


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_or_foreign_document_is_refused_whole(name: str) -> None:
    with pytest.raises(UpstreamFailure) as refused:
        fxrates.parse_reference(HOSTILE[name])
    assert refused.value.reason == "fx_source_invalid"


def test_sync_fetches_the_reference_over_http_and_stores_it_with_its_day(fx_db, reference_server) -> None:
    source = reference_server[0] + SOURCE_PATH
    done = sync_fx(fx_db, "--source", source)
    assert done.returncode == 0, done.stderr
    assert "31 exchange rates of 2024-06-28 stored" in done.stdout
    rows = {row["currency"]: row for row in _stored(fx_db)}
    assert len(rows) == 31 and {row["as_of"] for row in rows.values()} == {"2024-06-28"}
    assert {row["source"] for row in rows.values()} == {source}
    assert rows["eur"]["usd_per_unit"] == Decimal("1.0705") and rows["usd"]["usd_per_unit"] == 1
    assert rows["isk"]["usd_per_unit"] == _ratio("1.0705", "148.90")
    assert sync_fx(fx_db, "--source", source).returncode == 0  # the same day again: the same rows
    assert len(_stored(fx_db)) == 31


def test_the_source_is_configurable_by_environment(fx_db, reference_server) -> None:
    done = sync_fx(fx_db, TOLLGATE_FX_SOURCE=reference_server[0] + SOURCE_PATH)
    assert done.returncode == 0, done.stderr
    assert len(_stored(fx_db)) == 31


@pytest.mark.parametrize("name", ["internal entity", "external entity", "not the reference"])
def test_sync_refuses_a_hostile_answer_and_stores_nothing(fx_db, reference_server, name) -> None:
    base_url, served = reference_server
    served["/hostile.xml"] = HOSTILE[name]
    done = sync_fx(fx_db, "--source", base_url + "/hostile.xml")
    assert done.returncode == 1 and "exchange-rate reference was refused" in done.stderr
    assert _stored(fx_db) == []


def test_sync_says_when_the_source_cannot_be_fetched(fx_db, reference_server) -> None:
    done = sync_fx(fx_db, "--source", reference_server[0] + "/missing.xml")
    assert done.returncode == 1 and "answered 404" in done.stderr
    assert _stored(fx_db) == []


def test_installed_rates_keep_the_shipped_table_for_what_the_reference_lacks() -> None:
    shipped = money.shipped_fx_table()
    synced = [money.SyncedRate(code, rate, "2024-06-28", "ecb") for code, rate in
              fxrates.usd_per_unit(fxrates.parse_reference(REFERENCE)).items()]
    try:
        table = money.install_fx(synced)
        assert table.usd_per_unit["isk"] == _ratio("1.0705", "148.90")
        assert table.usd_per_unit["aed"] == shipped.usd_per_unit["aed"]  # the ECB does not publish AED
        assert money.fx_note("aed") == {"currency": "aed", "usd_per_unit": str(shipped.usd_per_unit["aed"]),
                                        "as_of": shipped.as_of, "source": "vendors/pricing/fx_usd.json"}
        assert money.fx_note("eur") == {"currency": "eur", "usd_per_unit": "1.0705", "as_of": "2024-06-28",
                                        "source": "ecb"}
        assert money.fx_note("usd") is None
    finally:
        assert money.install_fx([]) is shipped


@pytest.fixture()
def fx_proxy(fx_db: str, stripe_emulator) -> Iterator[tuple[str, httpx.Client]]:
    """A proxy on the test's database that reloads the stored rates every 50 ms."""
    settings = settings_for(fx_db, {"stripe": stripe_emulator[0]}, fx_refresh_interval_s=0.05)
    with serve_asgi(create_app(bootstrap.runtime(settings)), lifespan="on") as base_url, httpx.Client(
            base_url=base_url, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10) as admin:
        yield base_url, admin


def _charge_isk(proxy_url: str, key: str, run_id: str) -> Any:
    client = stripe.StripeClient(key, base_addresses={"api": f"{proxy_url}/stripe"}, max_network_retries=0)
    return client.v1.charges.create(params={"amount": 50000, "currency": "isk", "source": "tok_visa"},
                                    options={"headers": {"X-Agent-Run-Id": run_id}})


def _wait_for_rate(currency: str) -> None:
    deadline = time.monotonic() + 30  # a bound on a hang, not a speed assertion
    while not money.has_rate(currency):
        assert time.monotonic() < deadline, f"the proxy never installed the synced {currency} rate"
        time.sleep(0.05)


def test_a_charge_in_a_currency_only_the_reference_has_is_priced_from_it_after_sync(
        fx_proxy, fx_db, reference_server, run_id) -> None:
    proxy_url, admin = fx_proxy
    created = admin.post("/admin/v1/keys", json={"vendor": "stripe", "policy": POLICY,
                                                 "upstream_secret": STRIPE_SECRET})
    key = created.json()["key"]
    with pytest.raises(stripe.PermissionError) as refused:
        _charge_isk(proxy_url, key, run_id + "_before")
    assert refused.value.error.code == "cost_unknown"

    source = reference_server[0] + SOURCE_PATH
    done = sync_fx(fx_db, "--source", source)
    assert done.returncode == 0, done.stderr
    _wait_for_rate("isk")
    charge = _charge_isk(proxy_url, key, run_id)
    assert charge.currency == "isk"

    with psycopg.connect(fx_db, row_factory=dict_row) as sql:
        [before] = audit_rows(sql, run_id + "_before")
        [row] = audit_rows(sql, run_id)
    assert (before["decision"], before["reason"]) == ("blocked", "cost_unknown")
    rate = _ratio("1.0705", "148.90")
    expected = (Decimal(500) * rate).quantize(money.MICRO)  # 50000 minor units: 500 ISK
    assert (row["decision"], row["predicted_usd"], row["cost_usd"]) == ("allowed", expected, expected)
    assert row["request_summary"]["fx"] == {"currency": "isk", "usd_per_unit": str(rate), "as_of": "2024-06-28",
                                            "source": source}
