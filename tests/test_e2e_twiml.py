"""Voice calls through twilio-python 9, the proxy and the Twilio emulator: every leg inline TwiML
dials is held to the key's recipient rules and priced, on create and on update; TwiML by URL is
refused on a country-restricted key unless recipients.twiml_urls names its host (issue 23, item 3)."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import parse_qs

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from tests.support.runid import TwilioRunClient
from tests.support.tollgate import TWILIO_ACCOUNT, TWILIO_TOKEN

SENDER = "+15005550006"
US_MINUTE, GB_MINUTE = Decimal("0.0140"), Decimal("0.0245")
HIGHEST_MINUTE = Decimal("0.5000")  # the table's default voice rate, its highest
DIAL_FRANCE = "<Response><Dial>+33612345678</Dial></Response>"


@pytest.fixture()
def voice_key(make_key):
    def make(**recipients) -> dict:
        policy = {"vendor": "twilio",
                  "endpoints": {"allow": ["POST /2010-04-01/Accounts/*/Calls.json",
                                          "POST /2010-04-01/Accounts/*/Calls/*"]},
                  "recipients": {"countries": ["US", "CA", "GB"], **recipients},
                  "senders": [SENDER]}
        return make_key(policy, vendor="twilio", secret=TWILIO_TOKEN, upstream_account=TWILIO_ACCOUNT)
    return make


def client_for(proxy_url: str, key: str, run_id: str) -> Client:
    client = Client(TWILIO_ACCOUNT, key, http_client=TwilioRunClient(run_id))
    client.api.base_url = f"{proxy_url}/twilio"
    return client


def rows(sql, run_id: str) -> list[dict]:
    return sql.execute("SELECT * FROM audit_events WHERE agent_run_id = %s ORDER BY id", (run_id,)).fetchall()


def last_form(emulator) -> dict[str, list[str]]:
    return parse_qs(emulator[1].state.received[-1].body.decode())


def refused(call, reason: str) -> TwilioRestException:
    with pytest.raises(TwilioRestException) as raised:
        call()
    assert f"[tollgate:{reason}]" in raised.value.msg, raised.value.msg
    return raised.value


def test_a_dial_to_france_inside_a_us_call_is_refused_before_twilio(proxy_url, voice_key, sql, run_id,
                                                                   twilio_emulator):
    """The issue's exact case: allowed and priced as one US minute before."""
    client = client_for(proxy_url, voice_key()["key"], run_id)
    seen = len(twilio_emulator[1].state.received)
    error = refused(lambda: client.calls.create(to="+14155550100", from_=SENDER, twiml=DIAL_FRANCE),
                    "recipient_not_allowed")
    assert error.status == 403 and "+33612345678 (FR)" in error.msg
    assert len(twilio_emulator[1].state.received) == seen
    [row] = rows(sql, run_id)
    assert (row["decision"], row["reason"]) == ("blocked", "recipient_not_allowed")


def test_an_allowed_dial_is_priced_as_both_legs(proxy_url, voice_key, sql, run_id, twilio_emulator):
    client = client_for(proxy_url, voice_key()["key"], run_id)
    call = client.calls.create(to="+14155550100", from_=SENDER,
                               twiml="<Response><Say>Connecting</Say><Dial>+442071838750</Dial></Response>")
    assert call.sid.startswith("CA")
    assert last_form(twilio_emulator)["Twiml"][0].startswith("<Response>")
    [row] = rows(sql, run_id)
    assert (row["decision"], row["predicted_usd"]) == ("allowed", US_MINUTE + GB_MINUTE)


def test_an_update_is_priced_and_scoped_by_the_legs_it_adds(proxy_url, voice_key, sql, run_id, twilio_emulator):
    client = client_for(proxy_url, voice_key()["key"], run_id)
    call = client.calls.create(to="+14155550100", from_=SENDER, twiml="<Response><Pause/></Response>")
    seen = len(twilio_emulator[1].state.received)
    refused(lambda: client.calls(call.sid).update(twiml=DIAL_FRANCE), "recipient_not_allowed")
    assert len(twilio_emulator[1].state.received) == seen
    client.calls(call.sid).update(
        twiml=f'<Response><Dial callerId="{SENDER}">+442071838750</Dial></Response>', time_limit=120)
    client.calls(call.sid).update(status="completed")
    recorded = rows(sql, run_id)
    assert [r["reason"] for r in recorded] == [None, "recipient_not_allowed", None, None]
    assert [r["predicted_usd"] for r in recorded if r["decision"] == "allowed"] == [US_MINUTE, 2 * GB_MINUTE, 0]


def test_twiml_by_url_needs_its_host_named_on_a_restricted_key(proxy_url, voice_key, sql, run_id, twilio_emulator):
    default = client_for(proxy_url, voice_key()["key"], run_id)
    seen = len(twilio_emulator[1].state.received)
    error = refused(lambda: default.calls.create(to="+14155550100", from_=SENDER, time_limit=600,
                                                 url="https://hooks.acme.example/voice"), "recipient_not_allowed")
    assert "hooks.acme.example" in error.msg and len(twilio_emulator[1].state.received) == seen

    named = client_for(proxy_url, voice_key(twiml_urls=["hooks.acme.example"])["key"], run_id)
    refused(lambda: named.calls.create(to="+14155550100", from_=SENDER, url="https://hooks.acme.example/voice"),
            "cost_unknown")  # no TimeLimit: Twilio documents no default, so no bound
    named.calls.create(to="+14155550100", from_=SENDER, time_limit=600, url="https://hooks.acme.example/voice")
    assert last_form(twilio_emulator)["Url"] == ["https://hooks.acme.example/voice"]
    refused(lambda: named.calls.create(to="+14155550100", from_=SENDER, time_limit=600,
                                       url="https://evil.example/voice"), "recipient_not_allowed")
    recorded = rows(sql, run_id)
    assert [r["reason"] for r in recorded] == ["recipient_not_allowed", "cost_unknown", None, "recipient_not_allowed"]
    assert recorded[2]["predicted_usd"] == 10 * (US_MINUTE + HIGHEST_MINUTE)  # To + one unseen leg, 10 minutes
