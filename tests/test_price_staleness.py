"""Staleness is visible and bounded (issue 19, item 4): `tollgate prices status`, the per-table age
gauge in /metrics and /readyz's body say how old each price table is; past TOLLGATE_PRICE_MAX_AGE_S
serve warns, and with TOLLGATE_REFUSE_STALE_PRICES=1 refuses a money-moving call whose conversion
would use a stale rate (stale_price), naming the table, its age and the command that refreshes it.

The reference synced is the shipped real ECB page of 2024-06-28: years old by any clock this runs
on, so it is stale under the default age (a week) and fresh under an age set past it. Real
components: the CLI as an operator runs it, a proxy over loopback, stripe-python, the emulator."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest
import stripe
from psycopg.rows import dict_row

from proxy import bootstrap, config
from proxy.app import create_app
from tests import test_fx_sync
from tests.support.servers import serve_asgi
from tests.support.tollgate import ADMIN_TOKEN, STRIPE_SECRET, audit_rows, settings_for
from tests.test_fx_sync import POLICY, SOURCE_PATH, _wait_for_rate, sync_fx
from vendors import money

# The exchange-rate story's fixtures, shared: a reference server and a database of the test's own.
reference_server, fx_db = test_fx_sync.reference_server, test_fx_sync.fx_db
REFERENCE_DAY_S = money.day_start_s("2024-06-28")
SHIPPED = ["vendors/pricing/fx_usd.json", "vendors/pricing/resend.json", "vendors/pricing/twilio_sms.json"]


def prices_status(url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}
    environment.update(DATABASE_URL=url, **env)
    done = subprocess.run([sys.executable, "-m", "proxy", "prices", "status", *args], env=environment,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done


def _synced(url: str, reference: tuple[str, Any]) -> None:
    done = sync_fx(url, "--source", reference[0] + SOURCE_PATH)
    assert done.returncode == 0, done.stderr


@pytest.fixture()
def serve(fx_db: str, stripe_emulator) -> Iterator[Callable[..., tuple[str, httpx.Client]]]:
    """Start proxies on the test's database with the settings a test gives; each reloads rates every 50 ms."""
    with contextlib.ExitStack() as stack:
        def start(**settings: Any) -> tuple[str, httpx.Client]:
            chosen = settings_for(fx_db, {"stripe": stripe_emulator[0]}, fx_refresh_interval_s=0.05, **settings)
            base_url = stack.enter_context(serve_asgi(create_app(bootstrap.runtime(chosen)), lifespan="on"))
            admin = stack.enter_context(httpx.Client(base_url=base_url, timeout=10,
                                                     headers={"authorization": f"Bearer {ADMIN_TOKEN}"}))
            return base_url, admin

        yield start


def _charge(proxy_url: str, admin: httpx.Client, run_id: str, currency: str = "eur") -> Any:
    created = admin.post("/admin/v1/keys", json={"vendor": "stripe", "policy": POLICY,
                                                 "upstream_secret": STRIPE_SECRET})
    client = stripe.StripeClient(created.json()["key"], base_addresses={"api": f"{proxy_url}/stripe"},
                                 max_network_retries=0)
    return client.v1.charges.create(params={"amount": 5000, "currency": currency, "source": "tok_visa"},
                                    options={"headers": {"X-Agent-Run-Id": run_id}})


def test_prices_status_lists_every_table_with_its_day_age_and_source(fx_db, reference_server) -> None:
    before = json.loads(prices_status(fx_db, "--json").stdout)
    assert [t["table"] for t in before] == ["fx_rates", "vendor_prices", *SHIPPED]
    assert before[0] == {"table": "fx_rates", "as_of": None, "source": "tollgate prices sync --fx (not run yet)",
                         "age_s": None, "stale": False}
    assert before[1] == {"table": "vendor_prices", "as_of": None, "age_s": None, "stale": False,
                         "source": "tollgate prices sync --vendor (not run yet)"}
    assert {t["as_of"] for t in before[2:]} == {"2026-11-24"}  # the shipped tables' own day

    _synced(fx_db, reference_server)
    started = time.time()
    text = prices_status(fx_db).stdout
    [fx_line] = [line for line in text.splitlines() if line.startswith("fx_rates")]
    assert "2024-06-28" in fx_line and " days " in fx_line and " yes " in fx_line
    assert reference_server[0] + SOURCE_PATH in fx_line
    assert "`tollgate prices sync --fx` refreshes the exchange rates" in text
    [fx] = [t for t in json.loads(prices_status(fx_db, "--json").stdout) if t["table"] == "fx_rates"]
    assert fx["as_of"] == "2024-06-28" and fx["stale"] is True
    assert int(started - REFERENCE_DAY_S) <= fx["age_s"] <= int(time.time() - REFERENCE_DAY_S)
    fresh = json.loads(prices_status(fx_db, "--json", TOLLGATE_PRICE_MAX_AGE_S="1e12").stdout)
    assert not any(t["stale"] for t in fresh)


def test_metrics_and_readyz_say_how_old_each_table_is(serve, fx_db, reference_server) -> None:
    _, admin = serve()
    _synced(fx_db, reference_server)
    _wait_for_rate("isk")  # the reference's: installed
    started = time.time()
    ready = admin.get("/readyz")
    metrics = admin.get("/metrics").text
    assert ready.status_code == 200
    tables = {t["table"]: t for t in ready.json()["prices"]}
    assert list(tables) == ["fx_rates", "vendor_prices", *SHIPPED]
    assert tables["fx_rates"]["as_of"] == "2024-06-28" and tables["fx_rates"]["stale"] is True
    assert "source" not in tables["fx_rates"]  # /readyz answers anyone: where a table came from is the operator's
    gauges = {line.split('"')[1]: float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
              if line.startswith("tollgate_price_table_age_seconds{")}
    assert set(gauges) == set(tables)
    assert started - REFERENCE_DAY_S - 1 <= gauges["fx_rates"] <= time.time() - REFERENCE_DAY_S
    assert gauges["vendors/pricing/fx_usd.json"] >= started - money.day_start_s("2026-11-24") - 1


def test_a_stale_rate_is_refused_when_so_configured(serve, fx_db, reference_server, stripe_emulator, run_id) -> None:
    proxy_url, admin = serve(refuse_stale_prices=True)
    _synced(fx_db, reference_server)
    _wait_for_rate("isk")
    received = len(stripe_emulator[1].state.received)
    with pytest.raises(stripe.PermissionError) as refused:
        _charge(proxy_url, admin, run_id)
    message = str(refused.value.user_message)
    assert refused.value.error.code == "stale_price"
    assert "EUR rate" in message and "fx_rates, as of 2024-06-28" in message and " days old" in message
    assert "`tollgate prices sync --fx`" in message and "TOLLGATE_PRICE_MAX_AGE_S" in message
    assert len(stripe_emulator[1].state.received) == received  # nothing was forwarded
    assert _charge(proxy_url, admin, run_id + "_usd", currency="usd").currency == "usd"  # no conversion: no rate
    with psycopg.connect(fx_db, row_factory=dict_row) as sql:
        [row] = audit_rows(sql, run_id)
    assert (row["decision"], row["reason"], row["upstream_status"]) == ("blocked", "stale_price", None)


def test_a_stale_rate_is_allowed_with_a_warning_otherwise(serve, fx_db, reference_server, run_id, capfd) -> None:
    proxy_url, admin = serve()
    _synced(fx_db, reference_server)
    _wait_for_rate("isk")
    assert _charge(proxy_url, admin, run_id).currency == "eur"
    logged = capfd.readouterr().err
    assert '"event":"stale_price_used"' in logged and '"currency":"eur"' in logged
    assert '"event":"price_table_stale"' in logged and '"table":"fx_rates"' in logged  # serve's own warning
    with psycopg.connect(fx_db, row_factory=dict_row) as sql:
        [row] = audit_rows(sql, run_id)
    assert (row["decision"], row["reason"]) == ("allowed", None)


def test_a_rate_within_the_age_is_not_refused(serve, fx_db, reference_server, run_id) -> None:
    proxy_url, admin = serve(refuse_stale_prices=True, price_max_age_s=1e12)
    _synced(fx_db, reference_server)
    _wait_for_rate("isk")
    assert _charge(proxy_url, admin, run_id).currency == "eur"


@pytest.mark.parametrize("value, refuse", [("1", True), ("true", True), ("0", False), ("off", False)])
def test_refusing_stale_prices_is_set_by_environment(value: str, refuse: bool) -> None:
    settings = config.load(env={"TOLLGATE_REFUSE_STALE_PRICES": value, "TOLLGATE_PRICE_MAX_AGE_S": "3600"})
    assert (settings.refuse_stale_prices, settings.price_max_age_s) == (refuse, 3600.0)
