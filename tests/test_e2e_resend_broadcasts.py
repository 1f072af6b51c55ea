"""resend-python 2 through the proxy for what mails many people or un-mails one (issue 23 item 4):
a broadcast is priced by the contacts of its segment before the gate and held to the segment,
sender and max_recipients rules; a cancelled scheduled email gives back what it was counted."""

from __future__ import annotations

from decimal import Decimal

import pytest
import resend

from tests.support.runid import ResendRunClient
from tests.support.tollgate import RESEND_SECRET

RATE = Decimal("0.0009")


@pytest.fixture()
def use_key(proxy_url, make_key, run_id, monkeypatch):
    def use(**fields) -> dict:
        policy = {"vendor": "resend", "recipients": {"domains": ["acme.example"]},
                  "senders": ["news@acme.example"], **fields}
        key = make_key(policy, vendor="resend", secret=RESEND_SECRET)
        monkeypatch.setattr(resend, "api_key", key["key"])
        monkeypatch.setattr(resend, "api_url", f"{proxy_url}/resend")
        monkeypatch.setattr(resend, "default_http_client", ResendRunClient(run_id))
        return key
    return use


def rows(sql, run_id: str) -> list[dict]:
    return sql.execute("SELECT * FROM audit_events WHERE agent_run_id = %s ORDER BY id", (run_id,)).fetchall()


def spent(sql, key_id: str) -> dict[str, Decimal]:
    counters = sql.execute("SELECT bucket, spent_usd, reserved_usd FROM budget_counters WHERE key_id = %s",
                           (key_id,)).fetchall()
    return {c["bucket"].partition(":")[0]: c["spent_usd"] + c["reserved_usd"] for c in counters}


def test_a_cancelled_scheduled_email_settles_at_zero(use_key, sql, run_id, resend_emulator):
    key = use_key(endpoints={"allow": ["POST /emails", "POST /emails/{id}/cancel"]},
                  caps=[{"usd": "10.00", "window": "day"}, {"usd": "10.00", "window": "total"}])
    sent = resend.Emails.send({"from": "news@acme.example", "to": ["ana@acme.example", "bo@acme.example"],
                               "subject": "Later", "html": "<p>soon</p>", "scheduled_at": "in 1 hour"})
    assert set(spent(sql, key["id"]).values()) == {2 * RATE}
    resend.Emails.cancel(sent["id"])
    assert resend_emulator[1].state.emails[sent["id"]]["last_event"] == "canceled"
    email_row, cancel_row = rows(sql, run_id)
    assert (email_row["object_id"], email_row["cost_usd"]) == (sent["id"], Decimal(0))
    assert (cancel_row["endpoint"], cancel_row["cost_usd"]) == ("POST /emails/{id}/cancel", Decimal(0))
    assert set(spent(sql, key["id"]).values()) == {Decimal(0)}
