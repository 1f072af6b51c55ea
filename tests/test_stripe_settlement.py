"""Stripe's settled amounts (issue 19, item 3): a charge in EUR is converted at the reference rate of
the day, recorded as an estimate, and later settled by `tollgate prices reconcile --vendor stripe` at
what its balance transaction says moved in USD; the prediction stays, the caps follow, and a sealed
row is never edited. A refund is settled at its own balance transaction, not the charge's its row names.

Real components throughout: the ECB reference (the shipped real copy) served over loopback to the
real `tollgate prices sync --fx`, a proxy on a database of its own, stripe-python against the Stripe
emulator (which answers balance transactions at its own account's rates), and the CLI run as an
operator runs it."""

from __future__ import annotations

import subprocess
import sys
import time
from decimal import Decimal
from typing import Any

import httpx
import psycopg
import pytest
import stripe
from psycopg.rows import dict_row

from proxy import bootstrap
from proxy.app import create_app
from proxy.audit import chain
from tests import test_fx_sync
from tests.support.audit_cli import SIGNING_KEY, tollgate, verify
from tests.support.processes import proxy_env
from tests.support.servers import serve_asgi
from tests.support.tollgate import ADMIN_TOKEN, STRIPE_SECRET, TWILIO_ACCOUNT, TWILIO_TOKEN, audit_rows, settings_for
from tests.test_e2e_twilio import SENDER, US_SEGMENT, client_for, twilio_policy
from tests.test_fx_sync import SOURCE_PATH, _wait_for_rate, sync_fx
from vendors.stripe import settlement

# The exchange-rate story's fixtures, shared: a reference server, a database and a proxy of the test's own.
reference_server, fx_db, fx_proxy = test_fx_sync.reference_server, test_fx_sync.fx_db, test_fx_sync.fx_proxy

REFERENCE_EUR = Decimal("1.0705")  # USD per EUR in tests/fixtures/ecb_eurofxref-daily.xml (2024-06-28)
STRIPE_EUR = Decimal("1.059795")  # the emulated account's own rate (emulators/_stripe_balance.py)
CAP = Decimal("106.60")  # two 50 EUR charges at the reference rate (107.05) do not fit; settled (106.515) do
POLICY = {"vendor": "stripe", "endpoints": {"allow": ["POST /v1/charges", "POST /v1/refunds"]},
          "caps": [{"usd": str(CAP), "window": "day"}]}


def _client(proxy_url: str, key: str) -> stripe.StripeClient:
    return stripe.StripeClient(key, base_addresses={"api": f"{proxy_url}/stripe"}, max_network_retries=0)


def _charge(client: stripe.StripeClient, run_id: str, amount: int = 5000) -> Any:
    return client.v1.charges.create(params={"amount": amount, "currency": "eur", "source": "tok_visa"},
                                    options={"headers": {"X-Agent-Run-Id": run_id}})


def reconcile(url: str, stripe_url: str) -> subprocess.CompletedProcess[str]:
    """`tollgate prices reconcile --vendor stripe` as an operator runs it."""
    done = subprocess.run([sys.executable, "-m", "proxy", "prices", "reconcile", "--vendor", "stripe"],
                          env=proxy_env(url, {"stripe": stripe_url}), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done


def _rows(url: str, run_id: str) -> list[dict[str, Any]]:
    with psycopg.connect(url, row_factory=dict_row) as sql:
        return audit_rows(sql, run_id)


def _day_spend(url: str, key_id: str) -> Decimal:
    with psycopg.connect(url, row_factory=dict_row) as sql:
        row = sql.execute("SELECT spent_usd FROM budget_counters WHERE key_id = %s AND bucket LIKE 'day:%%'",
                          (key_id,)).fetchone()
    assert row is not None
    return Decimal(row["spent_usd"])


@pytest.fixture()
def synced(fx_proxy, fx_db, reference_server) -> tuple[str, dict[str, Any]]:
    """The proxy, with the reference synced and installed, and a key of POLICY."""
    proxy_url, admin = fx_proxy
    done = sync_fx(fx_db, "--source", reference_server[0] + SOURCE_PATH)
    assert done.returncode == 0, done.stderr
    _wait_for_rate("eur")
    created = admin.post("/admin/v1/keys", json={"vendor": "stripe", "policy": POLICY,
                                                 "upstream_secret": STRIPE_SECRET})
    assert created.status_code == 201, created.text
    return proxy_url, created.json()


def test_a_eur_charge_is_converted_at_the_reference_then_settled_at_its_balance_transaction(
        synced, fx_db, stripe_emulator, run_id) -> None:
    proxy_url, key = synced
    client = _client(proxy_url, key["key"])
    charge = _charge(client, run_id)
    estimate = Decimal("50.00") * REFERENCE_EUR
    [row] = _rows(fx_db, run_id)
    assert (row["predicted_usd"], row["cost_usd"], row["cost_source"]) == (estimate, estimate, "estimated")
    assert row["request_summary"]["fx"]["as_of"] == "2024-06-28" and row["object_id"] == charge.id
    with pytest.raises(stripe.PermissionError) as refused:  # a second one does not fit at the reference rate
        _charge(client, run_id + "_over")
    assert refused.value.error.code == "cap_exceeded"

    done = reconcile(fx_db, stripe_emulator[0])
    assert "1 repriced" in done.stdout, done.stdout
    txn = stripe_emulator[1].state.store.get("balance_transaction", charge.balance_transaction)
    settled = Decimal(txn["amount"]).scaleb(-2)
    assert txn["currency"] == "usd" and txn["source"] == charge.id and Decimal(str(txn["exchange_rate"])) == STRIPE_EUR
    assert settled == (Decimal("50.00") * STRIPE_EUR).quantize(Decimal("0.01")) == Decimal("52.99")
    [row] = _rows(fx_db, run_id)
    assert (row["predicted_usd"], row["cost_usd"], row["cost_source"]) == (estimate, settled, "parsed")
    assert row["cost_reconciled_at"] is not None
    assert _day_spend(fx_db, key["id"]) == settled  # the cap's counter follows (the refused call moved nothing)

    _charge(client, run_id + "_fits")  # 52.99 + 53.525 fits under 106.60 now
    assert reconcile(fx_db, stripe_emulator[0]).stdout.startswith("1 estimated call(s) checked: 1 repriced")


def _refund(client: stripe.StripeClient, run_id: str, charge: Any, amount: int) -> Any:
    return client.v1.refunds.create(params={"charge": charge.id, "amount": amount},
                                    options={"headers": {"X-Agent-Run-Id": run_id}})


def test_a_eur_refund_is_converted_at_the_reference_then_settled_at_its_own_balance_transaction(
        synced, fx_db, stripe_emulator, run_id) -> None:
    proxy_url, key = synced
    client = _client(proxy_url, key["key"])
    charge = _charge(client, run_id, amount=2000)
    refund = _refund(client, run_id, charge, 1500)
    estimate = Decimal("15.00") * REFERENCE_EUR
    charged, refunded = _rows(fx_db, run_id)  # the refund's row names the charge it refunds
    assert (refunded["object_id"], refunded["predicted_usd"], refunded["cost_usd"], refunded["cost_source"]) == (
        charge.id, estimate, estimate, "estimated")
    assert _day_spend(fx_db, key["id"]) == Decimal("20.00") * REFERENCE_EUR + estimate

    done = reconcile(fx_db, stripe_emulator[0])
    assert done.stdout.startswith("2 estimated call(s) checked: 2 repriced"), done.stdout
    txn = stripe_emulator[1].state.store.get("balance_transaction", refund.balance_transaction)
    assert (txn["source"], txn["currency"], txn["amount"]) == (refund.id, "usd", -1590)  # 15 EUR at 1.059795, out
    charged, refunded = _rows(fx_db, run_id)
    assert (refunded["predicted_usd"], refunded["cost_usd"], refunded["cost_source"]) == (
        estimate, Decimal("15.90"), "parsed")  # its size, not the charge's 21.20
    assert (charged["cost_usd"], charged["cost_source"]) == (Decimal("21.20"), "parsed")
    assert _day_spend(fx_db, key["id"]) == Decimal("21.20") + Decimal("15.90")  # the cap's counter follows


def test_a_refund_is_never_priced_by_another_objects_balance_transaction(
        synced, fx_db, stripe_emulator, run_id) -> None:
    proxy_url, key = synced
    client = _client(proxy_url, key["key"])
    charge = _charge(client, run_id, amount=2000)
    refund = _refund(client, run_id, charge, 1000)
    store = stripe_emulator[1].state.store
    store.get("balance_transaction", refund.balance_transaction)["source"] = charge.id  # answers about the charge
    done = reconcile(fx_db, stripe_emulator[0])
    assert "1 repriced" in done.stdout and "1 could not be fetched" in done.stdout, done.stdout
    _, refunded = _rows(fx_db, run_id)
    assert (refunded["cost_usd"], refunded["cost_source"]) == (Decimal("10.00") * REFERENCE_EUR, "estimated")


def test_a_refund_row_reads_only_a_refund() -> None:
    """The row names the charge: should the refund's id be missing, the charge is not read in its place."""
    assert settlement.reconcile_path("ch_1", "POST /v1/refunds") is None
    assert settlement.reconcile_path("re_1", "POST /v1/refunds") == "/v1/refunds/re_1?expand[]=balance_transaction"
    assert settlement.reconcile_path("re_1", "POST /v1/charges") is None


def test_a_balance_transaction_about_another_object_prices_nothing(synced, fx_db, stripe_emulator, run_id) -> None:
    proxy_url, key = synced
    client = _client(proxy_url, key["key"])
    mine, other = _charge(client, run_id, amount=1000), _charge(client, run_id, amount=3000)
    store = stripe_emulator[1].state.store
    store.get("balance_transaction", mine.balance_transaction)["source"] = other.id  # answers about the other
    done = reconcile(fx_db, stripe_emulator[0])
    assert "1 repriced" in done.stdout and "1 could not be fetched" in done.stdout, done.stdout
    costs = {r["object_id"]: (r["cost_usd"], r["cost_source"]) for r in _rows(fx_db, run_id)}
    assert costs == {mine.id: (Decimal("10.00") * REFERENCE_EUR, "estimated"),
                     other.id: (Decimal("31.79"), "parsed")}  # 30 EUR at 1.059795: 3179.385 cents


def test_a_sealed_estimate_is_left_as_it_is_and_counted(synced, fx_db, stripe_emulator, run_id, tmp_path) -> None:
    proxy_url, key = synced
    client = _client(proxy_url, key["key"])
    old, new = _charge(client, run_id, amount=1000), _charge(client, run_id, amount=2000)
    with psycopg.connect(fx_db, autocommit=True) as sql:  # the first is past the day estimates stay open
        sql.execute("UPDATE audit_events SET ts = ts - interval '25 hours' WHERE object_id = %s", (old.id,))
    assert "sealed" in tollgate("audit", "seal", url=fx_db).stdout
    done = reconcile(fx_db, stripe_emulator[0])
    assert "1 repriced" in done.stdout and "1 estimated call(s) of the last 7 day(s) were already sealed" in done.stdout
    costs = {r["object_id"]: (r["cost_usd"], r["cost_source"]) for r in _rows(fx_db, run_id)}
    assert costs == {old.id: (Decimal("10.00") * REFERENCE_EUR, "estimated"), new.id: (Decimal("21.20"), "parsed")}
    public = tmp_path / "public.pem"
    public.write_text(chain.public_pem(chain.load_private(SIGNING_KEY)))
    tollgate("audit", "seal", url=fx_db)  # the repriced row is sealed now, at its settled amount
    assert verify(fx_db, public).returncode == 0


def test_a_twilio_price_that_arrives_after_the_seal_does_not_edit_the_sealed_row(
        fx_db, twilio_emulator, run_id, tmp_path) -> None:
    """The same rule for the vendor repriced first: `prices reconcile --days 7` used to reach past the seal."""
    settings = settings_for(fx_db, {"twilio": twilio_emulator[0]})
    with serve_asgi(create_app(bootstrap.runtime(settings)), lifespan="on") as proxy_url, httpx.Client(
            base_url=proxy_url, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10) as admin:
        created = admin.post("/admin/v1/keys", json={
            "vendor": "twilio", "policy": twilio_policy(), "upstream_secret": TWILIO_TOKEN,
            "upstream_account": TWILIO_ACCOUNT}).json()
        message = client_for(proxy_url, created["key"], run_id).messages.create(
            to="+14155550100", from_=SENDER, body="Your appointment is tomorrow at 10:00.")
    with psycopg.connect(fx_db, autocommit=True) as sql:  # Twilio priced it a day and more later
        sql.execute("UPDATE audit_events SET ts = ts - interval '25 hours' WHERE object_id = %s", (message.sid,))
    tollgate("audit", "seal", url=fx_db)
    twilio_emulator[1].state.store.set_price(message.sid, "-0.00790")
    done = subprocess.run([sys.executable, "-m", "proxy", "prices", "reconcile", "--vendor", "twilio"],
                          env=proxy_env(fx_db, {"twilio": twilio_emulator[0]}), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "1 estimated call(s) of the last 7 day(s) were already sealed" in done.stdout
    [row] = _rows(fx_db, run_id)
    assert (row["cost_usd"], row["cost_source"]) == (US_SEGMENT, "estimated")
    public = tmp_path / "public.pem"
    public.write_text(chain.public_pem(chain.load_private(SIGNING_KEY)))
    assert verify(fx_db, public).returncode == 0, verify(fx_db, public).stdout


def test_serve_settles_estimates_in_the_background(fx_db, stripe_emulator, reference_server, run_id) -> None:
    settings = settings_for(fx_db, {"stripe": stripe_emulator[0]}, fx_refresh_interval_s=0.05, reprice_interval_s=0.1)
    with serve_asgi(create_app(bootstrap.runtime(settings)), lifespan="on") as proxy_url, httpx.Client(
            base_url=proxy_url, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10) as admin:
        done = sync_fx(fx_db, "--source", reference_server[0] + SOURCE_PATH)
        assert done.returncode == 0, done.stderr
        _wait_for_rate("eur")
        key = admin.post("/admin/v1/keys", json={"vendor": "stripe", "policy": POLICY,
                                                 "upstream_secret": STRIPE_SECRET}).json()
        _charge(_client(proxy_url, key["key"]), run_id)
        deadline = time.monotonic() + 60  # a bound on a hang, not a speed assertion
        while (row := _rows(fx_db, run_id)[0])["cost_source"] == "estimated":
            assert time.monotonic() < deadline, "serve never repriced the estimate"
            time.sleep(0.1)
    assert (row["predicted_usd"], row["cost_usd"], row["cost_source"]) == (
        Decimal("50.00") * REFERENCE_EUR, Decimal("52.99"), "parsed")
