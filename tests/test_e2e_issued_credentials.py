"""An answer that hands out a vendor credential is withheld from the agent unless its policy opts in.

Resend's ``POST /api-keys`` answers with the new key's ``token`` and Twilio's ``Keys.json`` with the
new API key's ``secret``: an agent holding either can reach the vendor without Tollgate, out of reach
of every rule and of the audit table. Through the real proxy, with resend-python 2 and twilio-python 9
against the emulators: allowed by the endpoint list alone, the call happens (the vendor issues the
key) and the agent gets a vendor-shaped ``credential_withheld`` refusal naming the new key; with the
endpoint in ``credentials.hand_out`` the answer comes as it came and the row says
``credential_handed_out``. Either way the secret is in no audit row and no log line.
"""

from __future__ import annotations

from typing import Any

import pytest
import resend
from resend.exceptions import ResendError
from twilio.base.exceptions import TwilioRestException

from tests.support import leaks
from tests.support.runid import ResendRunClient
from tests.support.tollgate import RESEND_SECRET, TWILIO_ACCOUNT, TWILIO_TOKEN
from tests.test_e2e_twilio_hosts import client_for

RESEND_KEYS = "POST /api-keys"
TWILIO_KEYS = "POST /2010-04-01/Accounts/{AccountSid}/Keys.json"


def resend_tokens(app: Any) -> list[str]:
    """Every key the Resend emulator issued: what the vendor handed out, whoever got it."""
    return [issued["token"] for issued in app.state.api_keys]


def twilio_secrets(app: Any) -> list[str]:
    return [key["secret"] for key in app.state.store.keys.values()]


def written(sql: Any, run_id: str) -> str:
    rows = sql.execute("SELECT t::text AS t FROM audit_events t WHERE agent_run_id = %s", (run_id,)).fetchall()
    logs = (leaks.OUTPUT / "inprocess.log").read_text(encoding="utf-8", errors="replace")
    return "\n".join(r["t"] for r in rows) + logs


def reasons(sql: Any, run_id: str) -> list[tuple[str, str | None, str | None]]:
    return [(r["decision"], r["reason"], r["endpoint"]) for r in sql.execute(
        "SELECT decision, reason, endpoint FROM audit_events WHERE agent_run_id = %s ORDER BY id", (run_id,))]


@pytest.fixture()
def resend_key(proxy_url, make_key, run_id, monkeypatch) -> Any:
    def use(**policy: Any) -> None:
        key = make_key({"vendor": "resend", "endpoints": {"allow": [RESEND_KEYS]}, **policy}, vendor="resend",
                       secret=RESEND_SECRET)
        monkeypatch.setattr(resend, "api_key", key["key"])
        monkeypatch.setattr(resend, "api_url", f"{proxy_url}/resend")
        monkeypatch.setattr(resend, "default_http_client", ResendRunClient(run_id))
    return use


def test_a_new_resend_key_is_withheld_unless_the_policy_hands_it_out(resend_key, sql, run_id, resend_emulator):
    app = resend_emulator[1]
    resend_key()
    with pytest.raises(ResendError) as withheld:
        resend.ApiKeys.create({"name": "agent-made"})
    assert "[tollgate:credential_withheld]" in withheld.value.message
    [token] = resend_tokens(app)[-1:]  # Resend issued it: the call happened
    assert token not in withheld.value.message

    resend_key(credentials={"hand_out": [RESEND_KEYS]})
    handed = resend.ApiKeys.create({"name": "operator-approved"})
    assert handed["token"].startswith("re_") and handed["token"] == resend_tokens(app)[-1]

    assert reasons(sql, run_id) == [("blocked", "credential_withheld", RESEND_KEYS),
                                    ("allowed", "credential_handed_out", RESEND_KEYS)]
    text = written(sql, run_id)
    assert token not in text and handed["token"] not in text


def test_a_new_twilio_api_key_secret_is_withheld_unless_the_policy_hands_it_out(proxy_url, make_key, sql, run_id,
                                                                               twilio_emulator):
    def client(**policy: Any) -> Any:
        key = make_key({"vendor": "twilio", "endpoints": {"allow": ["POST /2010-04-01/Accounts/*/Keys.json"]},
                        **policy}, vendor="twilio", secret=TWILIO_TOKEN, upstream_account=TWILIO_ACCOUNT)
        return client_for(proxy_url, key["key"], run_id)

    with pytest.raises(TwilioRestException) as withheld:
        client().new_keys.create(friendly_name="agent-made")
    assert withheld.value.status == 403 and "[tollgate:credential_withheld]" in withheld.value.msg
    [secret] = twilio_secrets(twilio_emulator[1])[-1:]
    assert secret not in withheld.value.msg

    handed = client(credentials={"hand_out": ["POST /2010-04-01/Accounts/*/Keys.json"]}).new_keys.create(
        friendly_name="operator-approved")
    assert handed.sid.startswith("SK") and handed.secret == twilio_secrets(twilio_emulator[1])[-1]

    assert reasons(sql, run_id) == [("blocked", "credential_withheld", TWILIO_KEYS),
                                    ("allowed", "credential_handed_out", TWILIO_KEYS)]
    text = written(sql, run_id)
    assert secret not in text and handed.secret not in text


def test_in_shadow_mode_the_answer_goes_through_and_the_row_says_it_would_have_been_withheld(
        resend_key, sql, run_id):
    resend_key(mode="shadow")
    assert resend.ApiKeys.create({"name": "shadowed"})["token"].startswith("re_")
    assert reasons(sql, run_id) == [("shadow_blocked", "credential_withheld", RESEND_KEYS)]
