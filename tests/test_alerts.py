"""Alerts that are not lost (issue 18, item 4): webhook receivers that are real HTTP servers on
loopback, events caused through stripe-python against the emulator, a Tollgate of its own on a
database of its own (so no other test's subscription or refusal is in the way), and for the
lease two real ``tollgate serve`` processes delivering from one outbox."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest
import stripe
from psycopg.rows import dict_row
from sqlalchemy.ext.asyncio import create_async_engine

from proxy import bootstrap, db, migrate
from proxy.app import create_app
from tests.support import leaks
from tests.support.databases import database_of_its_own
from tests.support.processes import proxy_env, tollgate_serve
from tests.support.servers import serve_asgi
from tests.support.tollgate import ADMIN_TOKEN, MASTER_KEY, STRIPE_SECRET, policy, settings_for
from tests.support.webhooks import Delivery, documented_verifier, receiver, until
from tests.test_console import sign_in

FAST = {"alert_interval_s": 0.05, "alert_retry_base_s": 0.05, "alert_retry_max_s": 0.2}
PUBLIC = "https://tollgate.example"
CHARGE = {"currency": "usd", "source": "tok_visa"}
verify = documented_verifier()


@pytest.fixture(scope="module")
def alert_db(pg_url: str) -> Iterator[str]:
    with database_of_its_own(pg_url, "alerts") as url:
        migrate.upgrade(url)
        yield url
        leaks.dump_database(url, "alerts")


@pytest.fixture(scope="module")
def tollgate(alert_db: str, stripe_emulator: tuple[str, Any]) -> Iterator[str]:
    runtime = bootstrap.runtime(settings_for(alert_db, {"stripe": stripe_emulator[0]}, public_url=PUBLIC, **FAST))
    with serve_asgi(create_app(runtime), lifespan="on") as base_url:
        yield base_url


@pytest.fixture()
def admin_api(tollgate: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=tollgate, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10) as client:
        yield client


@pytest.fixture()
def db_sql(alert_db: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(alert_db, autocommit=True, row_factory=dict_row) as conn:
        yield conn


@pytest.fixture()
def subscribe(admin_api: httpx.Client) -> Iterator[Callable[..., dict[str, Any]]]:
    """Subscribe through the admin API; each subscription is removed when the test ends."""
    made: list[str] = []

    def make(url: str, wanted: list[str], fmt: str = "json") -> dict[str, Any]:
        response = admin_api.post("/admin/v1/alerts/subscriptions", json={"url": url, "events": wanted, "format": fmt})
        assert response.status_code == 201, response.text
        made.append(response.json()["id"])
        return response.json()

    yield make
    for subscription_id in made:
        assert admin_api.delete(f"/admin/v1/alerts/subscriptions/{subscription_id}").status_code == 200


def _stripe(admin_api: httpx.Client, tollgate: str, document: dict[str, Any]) -> tuple[str, stripe.StripeClient]:
    created = admin_api.post("/admin/v1/keys", json={"vendor": "stripe", "policy": document,
                                                     "upstream_secret": STRIPE_SECRET})
    assert created.status_code == 201, created.text
    client = stripe.StripeClient(created.json()["key"], base_addresses={"api": f"{tollgate}/stripe"},
                                 max_network_retries=0)
    return created.json()["id"], client


def _settled(db_sql: psycopg.Connection, subscription_id: str) -> list[dict[str, Any]]:
    """The subscription's deliveries once none is pending (then nothing more can be sent)."""
    rows = db_sql.execute("SELECT * FROM alert_deliveries WHERE subscription_id = %s ORDER BY event_id",
                          [subscription_id]).fetchall()
    return rows if rows and all(r["status"] != "pending" for r in rows) else []


def _summary(delivery: Delivery) -> tuple[str, Any]:
    data = delivery.event["data"]
    return delivery.event["type"], data.get("reason") or data.get("threshold") or data.get("key_id")


def test_a_receiver_down_for_its_first_attempts_gets_every_event_once_signed_and_in_order(
        tollgate, admin_api, subscribe, db_sql):
    with receiver(down_for=4) as (url, got):
        subscription = subscribe(url, ["refusal", "key_revoked"])
        key_id, client = _stripe(admin_api, tollgate, policy())
        client.v1.charges.create(params={"amount": 500, **CHARGE})  # allowed: no event
        for _ in range(5):
            with pytest.raises(stripe.PermissionError):
                client.v1.payouts.create(params={"amount": 100, "currency": "usd"})
        assert admin_api.post(f"/admin/v1/keys/{key_id}/revoke").status_code == 200
        with pytest.raises(stripe.AuthenticationError):
            client.v1.charges.create(params={"amount": 500, **CHARGE})
        deliveries = until(lambda: _settled(db_sql, subscription["id"]), "every delivery settled")

    accepted = got.accepted()
    assert [_summary(d) for d in accepted] == [("refusal", "endpoint_not_allowed")] * 5 + [
        ("key_revoked", key_id), ("refusal", "key_revoked")]
    ids = [d.event["id"] for d in accepted]
    assert ids == [f"evt_{r['event_id']}" for r in deliveries]  # each once, in outbox order
    assert all(r["status"] == "delivered" for r in deliveries)
    # Down for the first four attempts: all of them the first event, which the others waited behind.
    assert [(d.answered, d.event["id"]) for d in got.received[:5]] == [(503, ids[0])] * 4 + [(200, ids[0])]
    assert len(got.received) == 4 + len(accepted)
    for delivery in got.received:
        assert verify(subscription["secret"], delivery.body, delivery.headers["tollgate-signature"])
        assert delivery.headers["tollgate-event-id"] == delivery.event["id"]
    assert not verify(subscription["secret"], accepted[0].body + b" ", accepted[0].headers["tollgate-signature"])
    assert not verify("whsec_other", accepted[0].body, accepted[0].headers["tollgate-signature"])
    assert accepted[-1].event["data"]["key_id"] == key_id and accepted[-1].event["data"]["vendor"] == "stripe"

    attempts = db_sql.execute("SELECT attempt, status_code, error FROM alert_attempts WHERE delivery_id = %s "
                              "ORDER BY attempt", [deliveries[0]["id"]]).fetchall()
    assert [(a["attempt"], a["status_code"], a["error"]) for a in attempts] == [
        (1, 503, "HTTP 503"), (2, 503, "HTTP 503"), (3, 503, "HTTP 503"), (4, 503, "HTTP 503"), (5, 200, None)]
    listed = admin_api.get("/admin/v1/alerts/deliveries", params={"subscription_id": subscription["id"]})
    assert [d["event_id"] for d in listed.json()["data"]] == ids[::-1]  # newest first
    assert subscription["secret"] not in listed.text
    assert subscription["secret"] not in admin_api.get("/admin/v1/alerts/subscriptions").text
    with httpx.Client(base_url=tollgate, timeout=10) as browser:
        assert browser.get("/console/alerts").headers["location"].startswith("/console/signin")
        assert sign_in(browser).status_code == 303
        page = browser.get("/console/alerts")
    assert page.status_code == 200 and subscription["id"] in page.text and ids[-1] in page.text
    assert "HTTP 200" in page.text and subscription["secret"] not in page.text


def test_a_cap_crossing_80_then_100_percent_fires_each_once(tollgate, admin_api, subscribe, db_sql):
    with receiver() as (url, got), receiver() as (slack_url, slack):
        subscription = subscribe(url, ["cap_threshold", "refusal:cap_exceeded"])
        in_slack = subscribe(slack_url, ["cap_threshold"], "slack")
        key_id, client = _stripe(admin_api, tollgate, policy(caps=[{"usd": "10.00", "window": "day"}]))
        client.v1.charges.create(params={"amount": 450, **CHARGE})  # 45 %
        client.v1.charges.create(params={"amount": 400, **CHARGE})  # 85 %
        until(lambda: got.accepted(), "the 80 % alert")
        client.v1.charges.create(params={"amount": 50, **CHARGE})  # 90 %: the loop sees the counter again
        client.v1.charges.create(params={"amount": 100, **CHARGE})  # 100 %
        with pytest.raises(stripe.PermissionError):
            client.v1.charges.create(params={"amount": 100, **CHARGE})  # cap_exceeded
        with pytest.raises(stripe.PermissionError):
            client.v1.payouts.create(params={"amount": 100, "currency": "usd"})  # a reason nobody asked for
        until(lambda: len(got.accepted()) >= 3 and _settled(db_sql, subscription["id"]), "three alerts")
        until(lambda: len(slack.accepted()) >= 2 and _settled(db_sql, in_slack["id"]), "two Slack messages")

    # A refusal's event is written by the refusing transaction; a crossing is found by the loop's
    # next look at the counters, so the 100 % alert may come before or after the refusal it led to.
    summaries = [_summary(d) for d in got.accepted()]
    assert [s for s in summaries if s[0] == "cap_threshold"] == [("cap_threshold", 80), ("cap_threshold", 100)]
    assert sorted(summaries) == [("cap_threshold", 80), ("cap_threshold", 100), ("refusal", "cap_exceeded")]
    eighty = got.accepted()[0].event["data"]
    assert (eighty["key_id"], eighty["window"], eighty["unit"], eighty["limit"], eighty["used"]) == (
        key_id, "day", "usd", "10.00", "8.500000")
    crossed = db_sql.execute("SELECT cap, threshold FROM alert_thresholds WHERE key_id = %s ORDER BY threshold",
                             [key_id]).fetchall()
    assert [(c["cap"], c["threshold"]) for c in crossed] == [("day:usd:10.00", 80), ("day:usd:10.00", 100)]
    texts = [json.loads(d.body) for d in slack.accepted()]
    assert texts == [{"text": f":warning: Key {key_id} reached 80% of its day cap: $8.50 of $10.00."},
                     {"text": f":warning: Key {key_id} reached 100% of its day cap: $10.00 of $10.00."}]


def test_an_approval_waiting_fires_with_a_link_to_it_in_the_console(tollgate, admin_api, subscribe, db_sql):
    held = policy(endpoints={"allow": ["POST /v1/charges"], "require_approval": ["POST /v1/payouts"]})
    with receiver() as (url, got), receiver() as (slack_url, slack):
        subscribe(url, ["approval_waiting"])
        subscribe(slack_url, ["approval_waiting"], "slack")
        key_id, client = _stripe(admin_api, tollgate, held)
        with pytest.raises(stripe.PermissionError):
            client.v1.payouts.create(params={"amount": 25000, "currency": "usd"})
        until(lambda: got.accepted() and slack.accepted(), "the approval alerts")

    [approval] = db_sql.execute("SELECT id FROM approvals WHERE key_id = %s", [key_id]).fetchall()
    [delivery] = got.accepted()
    data = delivery.event["data"]
    assert delivery.event["type"] == "approval_waiting"
    assert (data["approval_id"], data["key_id"], data["endpoint"]) == (approval["id"], key_id, "POST /v1/payouts")
    assert data["console_url"] == f"{PUBLIC}/console/approvals#approval-{approval['id']}"
    assert f"<{PUBLIC}/console/approvals#approval-{approval['id']}|Review it in the console>" in json.loads(
        slack.accepted()[0].body)["text"]


def test_a_run_halted_by_an_operator_or_by_a_stop_condition_fires_each_time(tollgate, admin_api, subscribe):
    run_id = f"run_alert_{uuid.uuid4().hex[:8]}"
    with receiver() as (url, got):
        subscribe(url, ["run_halted"])
        _, client = _stripe(admin_api, tollgate, policy(stop={"max_calls": 1}))
        # halted before its first call (the run's row is made halted), resumed, then halted by max_calls
        assert admin_api.post(f"/admin/v1/runs/{run_id}/stop", json={"reason": "loop on ticket 7"}).status_code == 200
        assert admin_api.post(f"/admin/v1/runs/{run_id}/resume").status_code == 200
        in_run = {"headers": {"X-Agent-Run-Id": run_id}}
        client.v1.charges.create(params={**CHARGE, "amount": 100}, options=in_run)
        with pytest.raises(stripe.PermissionError):
            client.v1.charges.create(params={**CHARGE, "amount": 101}, options=in_run)
        until(lambda: len(got.accepted()) == 2, "both halts")
    halts = [delivery.event for delivery in got.accepted()]
    assert [(e["type"], e["data"]["agent_run_id"], e["data"]["condition"]) for e in halts] == [
        ("run_halted", run_id, "operator"), ("run_halted", run_id, "max_calls")]
    assert halts[0]["data"]["detail"] == "loop on ticket 7"


def test_emit_writes_with_the_callers_transaction_or_not_at_all(alert_db, tollgate, subscribe, db_sql):
    from proxy.alerts import events  # here, so the other tests fail on main by what they do, not on an import

    async def emit_twice() -> tuple[int | None, int | None]:
        engine = create_async_engine(db.sqlalchemy_url(alert_db))
        try:
            async with engine.connect() as conn:
                transaction = await conn.begin()
                await events.emit(conn, "run_halted", {"agent_run_id": "run_a", "condition": "rolled back"})
                await transaction.rollback()
            async with engine.begin() as conn:
                unwanted = await events.emit(conn, "approval_waiting", {"approval_id": "apr_none"})
                wanted = await events.emit(conn, "run_halted", {"agent_run_id": "run_b", "condition": "max_refusals"})
            return unwanted, wanted
        finally:
            await engine.dispose()

    with receiver() as (url, got):
        subscription = subscribe(url, ["run_halted"])
        unwanted, wanted = asyncio.run(emit_twice())
        until(lambda: _settled(db_sql, subscription["id"]), "the run_halted delivery")

    assert unwanted is None  # nobody subscribed to it: nothing written
    assert db_sql.execute("SELECT count(*) AS n FROM alert_outbox WHERE payload->>'approval_id' = 'apr_none'"
                          ).fetchone()["n"] == 0
    assert [d.event for d in got.accepted()] == [
        {"id": f"evt_{wanted}", "type": "run_halted", "created": got.accepted()[0].event["created"],
         "data": {"agent_run_id": "run_b", "condition": "max_refusals"}}]


def test_two_processes_deliver_each_event_once(pg_url, stripe_emulator):
    """Two ``tollgate serve`` on a database of their own (no in-process Tollgate delivering too),
    polling every 10 ms while 60 events are committed one by one: each is sent once, in order."""
    with database_of_its_own(pg_url, "alerts_lease") as url, receiver() as (hook, got):
        migrate.upgrade(url)
        env = proxy_env(url, {"stripe": stripe_emulator[0]}, alert_interval_s=0.01, alert_retry_base_s=0.05)
        with tollgate_serve(env) as (first, one), tollgate_serve(env) as (second, other), \
                psycopg.connect(url, autocommit=True, row_factory=dict_row) as sql:
            created = httpx.post(f"{first}/admin/v1/alerts/subscriptions", json={"url": hook, "events": ["run_halted"]},
                                 headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
            assert created.status_code == 201
            subscription = created.json()
            leaks.remember_secret(subscription["secret"])
            for i in range(60):  # one transaction each, while both processes poll
                sql.execute("SELECT tollgate_alert_emit('run_halted', jsonb_build_object('agent_run_id', %s::text), "
                            "NULL)", [f"run_{i:02d}"])
            rows = until(lambda: len(_settled(sql, subscription["id"])) == 60 and _settled(sql, subscription["id"]),
                         "60 deliveries")
            assert httpx.delete(f"{second}/admin/v1/alerts/subscriptions/{subscription['id']}",
                                headers={"authorization": f"Bearer {ADMIN_TOKEN}"}).status_code == 200
        leaks.dump_database(url, "alerts_lease")
        logged = [_delivered_in(process.log_path) for process in (one, other)]

    accepted = got.accepted()
    assert [d.event["data"]["agent_run_id"] for d in accepted] == [f"run_{i:02d}" for i in range(60)]
    assert [d.event["id"] for d in accepted] == [f"evt_{r['event_id']}" for r in rows]
    assert len(got.received) == 60 and {r["attempts"] for r in rows} == {1}
    assert sorted(logged[0] + logged[1]) == sorted(d.event["id"] for d in accepted)  # by one process or the other
    print(f"deliveries by process: {len(logged[0])} and {len(logged[1])}")


def _delivered_in(log_path: Any) -> list[str]:
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    return [line["event_id"] for line in lines if line.get("event") == "alert_delivered"]


def test_the_cli_adds_lists_and_removes_and_shows_the_secret_once(alert_db, tollgate, db_sql):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}
    env.update(DATABASE_URL=alert_db, TOLLGATE_MASTER_KEY=MASTER_KEY)

    def tollgate_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "proxy", "alerts", *args], env=env, capture_output=True,
                              text=True, timeout=120)

    token = "slackhook" + uuid.uuid4().hex  # a Slack webhook's path is its credential
    leaks.remember_secret(token)  # so the whole-run search looks for it in everything Tollgate wrote
    added = tollgate_cli("add", f"https://hooks.slack.com/services/T000/B000/{token}", "--events",
                         "refusal:cap_exceeded,run_halted", "--format", "slack", "--json")
    assert added.returncode == 0, added.stderr
    created = json.loads(added.stdout)
    leaks.remember_secret(created["secret"])
    assert created["secret"].startswith("whsec_") and created["events"] == ["refusal:cap_exceeded", "run_halted"]
    assert created["url"] == "https://hooks.slack.com/services/..."  # a Slack webhook URL is a credential
    listed = tollgate_cli("list")
    assert created["id"] in listed.stdout and created["secret"] not in listed.stdout
    assert token not in listed.stdout
    stored = db_sql.execute("SELECT s::text AS row FROM alert_subscriptions s WHERE id = %s",
                            [created["id"]]).fetchone()
    assert token not in stored["row"] and "https://hooks.slack.com/services/..." in stored["row"]  # sealed, not stored
    wrong = tollgate_cli("add", "https://example.com/h", "--events", "refusal:no_such_reason")
    assert wrong.returncode == 1 and "'no_such_reason' is not a reason code" in wrong.stderr
    removed = tollgate_cli("remove", created["id"])
    assert removed.returncode == 0 and f"Removed {created['id']}" in removed.stdout
    assert created["id"] not in tollgate_cli("list").stdout
    assert tollgate_cli("deliveries", "--status", "delivered").returncode == 0


def test_a_delivery_past_its_give_up_time_is_failed_and_the_next_one_goes(pg_url):
    """The loop by hand on a database of its own: a tick while another transaction holds the
    lease sends nothing; with ``give_up_s=0`` a refused first attempt is final and the event
    behind it is delivered on the next tick."""
    from proxy.alerts import events, subscriptions
    from proxy.alerts.delivery import ALERT_LOCK, Deliverer, Options

    async def scenario(url: str, hook: str) -> list[Any]:
        engine = create_async_engine(db.sqlalchemy_url(url))
        runtime = bootstrap.runtime(settings_for(url, {}))
        deliverer = Deliverer(engine, runtime.box, Options(give_up_s=0, retry_base_s=0))
        try:
            async with engine.begin() as conn:
                created = await subscriptions.create(conn, runtime.box, hook, ["run_halted"])
                for name in ("run_first", "run_second"):
                    await events.emit(conn, "run_halted", {"agent_run_id": name, "condition": "max_calls"})
            leaks.remember_secret(created["secret"])
            with psycopg.connect(url) as holder:  # another process's tick, mid-transaction
                holder.execute("SELECT pg_advisory_xact_lock(%s)", [ALERT_LOCK])
                busy = await deliverer.tick()
            return [busy, await deliverer.tick(), await deliverer.tick()]
        finally:
            await deliverer.aclose()
            await engine.dispose()

    with database_of_its_own(pg_url, "alerts_give_up") as url, receiver(down_for=1) as (hook, got):
        migrate.upgrade(url)
        busy, first, second = asyncio.run(scenario(url, hook))
        with psycopg.connect(url, row_factory=dict_row) as sql:
            rows = sql.execute("SELECT status, attempts FROM alert_deliveries ORDER BY event_id").fetchall()
        leaks.dump_database(url, "alerts_give_up")

    assert (busy.busy, busy.delivered, busy.failed) == (True, 0, 0)
    assert (first.failed, first.delivered, second.delivered) == (1, 0, 1)
    assert [(r["status"], r["attempts"]) for r in rows] == [("failed", 1), ("delivered", 1)]
    assert [(d.answered, d.event["data"]["agent_run_id"]) for d in got.received] == [(503, "run_first"),
                                                                                      (200, "run_second")]


def test_a_master_key_rotation_reseals_the_signing_secrets(pg_url):
    """After ``tollgate master-key rotate`` the previous master key can be dropped: the new one
    alone still opens every subscription's signing secret (else no delivery could be signed)."""
    import secrets

    from proxy import rotation
    from proxy.alerts import subscriptions
    from proxy.secretbox import SecretBox

    old, new = secrets.token_bytes(32), secrets.token_bytes(32)

    async def rotate(url: str) -> tuple[str, str]:
        engine = create_async_engine(db.sqlalchemy_url(url))
        try:
            async with engine.begin() as conn:
                created = await subscriptions.create(conn, SecretBox(old), "https://example.com/hook", ["refusal"])
            async with engine.begin() as conn:
                await rotation.reencrypt_all(conn, SecretBox(new, (old,)))
            async with engine.connect() as conn:
                [row] = (await conn.exec_driver_sql("SELECT id, sealed FROM alert_subscriptions")).all()
            return created["secret"], subscriptions.Sealed.open(SecretBox(new), row.id, row.sealed).secret
        finally:
            await engine.dispose()

    with database_of_its_own(pg_url, "alerts_rotate") as url:
        migrate.upgrade(url)
        shown, opened = asyncio.run(rotate(url))
        leaks.remember_secret(shown)
        leaks.dump_database(url, "alerts_rotate")
    assert opened == shown
