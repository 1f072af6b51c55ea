"""twilio-python through the proxy against the Twilio emulator: messages priced from their
segments before they leave, repriced from Twilio's own price later, every scope rule
refusing with a TwilioRestException that carries Tollgate's reason."""

from __future__ import annotations

from decimal import Decimal

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from proxy import bootstrap, db, prices
from proxy.keycache import KeyCache
from proxy.upstream import create_upstream
from tests.support.runid import TwilioRunClient
from tests.support.tollgate import TWILIO_ACCOUNT, TWILIO_TOKEN

SENDER = "+15005550006"
US_SEGMENT = Decimal("0.0083")


def twilio_policy(**fields) -> dict:
    return {"vendor": "twilio",
            "endpoints": {"allow": ["POST /2010-04-01/Accounts/*/Messages.json",
                                    "GET /2010-04-01/Accounts/*/Messages/*"]},
            "recipients": {"countries": ["US", "CA"], "numbers": ["+4420*"]},
            "senders": [SENDER], **fields}


@pytest.fixture()
def twilio_key(make_key):
    def make(**fields) -> dict:
        return make_key(twilio_policy(**fields), vendor="twilio", secret=TWILIO_TOKEN, upstream_account=TWILIO_ACCOUNT)
    return make


def client_for(proxy_url: str, key: str, run_id: str, account: str = TWILIO_ACCOUNT) -> Client:
    client = Client(account, key, http_client=TwilioRunClient(run_id))
    client.api.base_url = f"{proxy_url}/twilio"
    return client


def rows(sql, run_id: str) -> list[dict]:
    return sql.execute("SELECT * FROM audit_events WHERE agent_run_id = %s ORDER BY id", (run_id,)).fetchall()


def test_a_message_is_estimated_then_repriced_from_twilio(proxy_url, twilio_key, sql, run_id, twilio_emulator, pg_url):
    key = twilio_key(caps=[{"usd": "1.00", "window": "day"}])
    message = client_for(proxy_url, key["key"], run_id).messages.create(
        to="+14155550100", from_=SENDER, body="Your appointment is tomorrow at 10:00.")
    assert message.sid.startswith("SM") and message.price is None

    [row] = rows(sql, run_id)
    assert (row["decision"], row["endpoint"]) == ("allowed", "POST /2010-04-01/Accounts/{AccountSid}/Messages.json")
    assert (row["predicted_usd"], row["cost_usd"], row["cost_source"]) == (US_SEGMENT, US_SEGMENT, "estimated")
    assert row["object_id"] == message.sid and row["vendor_account"] == TWILIO_ACCOUNT
    assert row["request_summary"]["segments"] == 1 and "Body" not in str(row["request_summary"])
    forwarded = twilio_emulator[1].state.received[-1]
    assert forwarded.headers["authorization"].startswith("Basic ") and key["key"] not in str(forwarded)
    assert "x-agent-run-id" not in forwarded.headers

    twilio_emulator[1].state.store.set_price(message.sid, "-0.00790")
    report = reprice(pg_url, twilio_emulator[0])
    assert report.repriced >= 1
    [row] = rows(sql, run_id)
    assert (row["predicted_usd"], row["cost_usd"], row["cost_source"]) == (US_SEGMENT, Decimal("0.0079"), "parsed")
    assert row["cost_reconciled_at"] is not None
    counter = sql.execute("SELECT spent_usd FROM budget_counters WHERE key_id = %s AND bucket LIKE 'day:%%'",
                          (key["id"],)).fetchone()
    assert counter["spent_usd"] == Decimal("0.0079")


def test_a_reprice_takes_a_price_only_from_an_answer_about_the_rows_own_message(
    proxy_url, twilio_key, sql, run_id, twilio_emulator, pg_url
):
    key = twilio_key()
    client = client_for(proxy_url, key["key"], run_id)
    mine, other = (client.messages.create(to="+14155550100", from_=SENDER, body=text) for text in ("one", "two"))
    store = twilio_emulator[1].state.store
    store.set_price(other.sid, "-0.50000")
    store.messages[mine.sid] = store.messages[other.sid]  # a fetch of mine answers about the other message
    reprice(pg_url, twilio_emulator[0])
    costs = {r["object_id"]: (r["cost_usd"], r["cost_source"]) for r in rows(sql, run_id)}
    assert costs == {mine.sid: (US_SEGMENT, "estimated"), other.sid: (Decimal("0.5"), "parsed")}


def reprice(pg_url: str, twilio_url: str) -> prices.RepriceReport:
    import asyncio

    from tests.support.tollgate import settings_for as make_settings

    runtime = bootstrap.runtime(make_settings(pg_url, {"twilio": twilio_url}))

    async def run() -> prices.RepriceReport:
        engine = db.create_engine(runtime.database_url, runtime.settings)
        upstream = create_upstream(runtime.settings)
        try:
            twilio = runtime.vendors.get("twilio")
            assert twilio is not None
            return await prices.reprice(engine, KeyCache(engine, runtime.box, 60), upstream, twilio, twilio_url)
        finally:
            await upstream.aclose()
            await engine.dispose()

    return asyncio.run(run())


def test_unicode_bodies_cost_more_segments(proxy_url, twilio_key, sql, run_id):
    key = twilio_key()
    body = "Réservation confirmée 🎉 " * 3  # an emoji forces UCS-2: 70 code units a segment, 67 when split
    client_for(proxy_url, key["key"], run_id).messages.create(to="+14155550100", from_=SENDER, body=body)
    [row] = rows(sql, run_id)
    assert row["request_summary"]["encoding"] == "UCS-2" and row["request_summary"]["segments"] == 2
    assert row["predicted_usd"] == 2 * US_SEGMENT


@pytest.mark.parametrize("to, sender, reason", [
    ("+33612345678", SENDER, "recipient_not_allowed"),  # France: not an allowed country
    ("+442071234567", SENDER, None),  # London: the +4420* number pattern admits it
    ("+14155550100", "+15005550009", "sender_not_allowed"),
])
def test_scope_rules(proxy_url, twilio_key, sql, run_id, to, sender, reason):
    key = twilio_key()
    client = client_for(proxy_url, key["key"], run_id)
    if reason is None:
        assert client.messages.create(to=to, from_=sender, body="hello").status == "queued"
        return
    with pytest.raises(TwilioRestException) as raised:
        client.messages.create(to=to, from_=sender, body="hello")
    assert raised.value.status == 403 and f"[tollgate:{reason}]" in raised.value.msg
    assert rows(sql, run_id)[0]["reason"] == reason


def test_endpoint_account_and_caps(proxy_url, twilio_key, sql, run_id):
    key = twilio_key(caps=[{"requests": 1, "window": "run"}])
    client = client_for(proxy_url, key["key"], run_id)
    with pytest.raises(TwilioRestException) as call:
        client.calls.create(to="+14155550100", from_=SENDER, url="https://example.com/twiml")
    assert call.value.status == 403 and "[tollgate:endpoint_not_allowed]" in call.value.msg

    other_account = "AC" + "f" * 32
    with pytest.raises(TwilioRestException) as account:
        client_for(proxy_url, key["key"], run_id, account=other_account).messages.create(
            to="+14155550100", from_=SENDER, body="hi")
    assert account.value.status == 401 and "[tollgate:account_mismatch]" in account.value.msg

    client.messages.create(to="+14155550100", from_=SENDER, body="first")
    with pytest.raises(TwilioRestException) as capped:
        client.messages.create(to="+14155550100", from_=SENDER, body="second")
    assert "[tollgate:cap_exceeded]" in capped.value.msg and "Cap of 1 requests per run" in capped.value.msg
    assert [r["reason"] for r in rows(sql, run_id)] == [
        "endpoint_not_allowed", "account_mismatch", None, "cap_exceeded"]


def test_a_twilio_key_needs_its_account(admin):
    response = admin.post("/admin/v1/keys", json={"vendor": "twilio", "policy": twilio_policy(),
                                                  "upstream_secret": TWILIO_TOKEN})
    assert response.status_code == 400 and response.json()["error"]["code"] == "missing_upstream_account"


def test_fetching_a_message_is_free_and_recorded(proxy_url, twilio_key, sql, run_id):
    key = twilio_key()
    client = client_for(proxy_url, key["key"], run_id)
    sent = client.messages.create(to="+14155550100", from_=SENDER, body="hi")
    fetched = client.messages(sent.sid).fetch()
    assert fetched.sid == sent.sid
    last = rows(sql, run_id)[-1]
    assert (last["endpoint"], last["cost_usd"], last["object_id"]) == (
        "GET /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json", Decimal("0"), sent.sid)
