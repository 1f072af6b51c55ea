"""resend-python 2 through the proxy for what mails many people or un-mails one (issue 23 item 4):
a broadcast is priced by the contacts of its segment before the gate and held to the segment,
sender and max_recipients rules; a cancelled scheduled email gives back what it was counted."""

from __future__ import annotations

from decimal import Decimal

import pytest
import resend
from resend.exceptions import ResendError

from emulators.resend_api import add_segment
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


BROADCASTS = {"allow": ["POST /broadcasts", "POST /broadcasts/*/send"]}


def draft(segment_id: str, **fields) -> dict:
    return {"segment_id": segment_id, "from": "Acme News <news@acme.example>", "subject": "November",
            "html": "<p>news</p>", **fields}


def reached(emulator, method: str, prefix: str) -> list:
    return [r for r in emulator.state.received if r.method == method and r.path.startswith(prefix)]


def test_a_broadcast_is_priced_by_its_segments_contacts(use_key, sql, run_id, resend_emulator):
    app = resend_emulator[1]
    segment = add_segment(app, 150)  # two pages of contacts
    use_key(endpoints=BROADCASTS, recipients={"domains": ["acme.example"], "segments": [segment]})
    before = len(app.state.received)
    created = resend.Broadcasts.create(draft(segment))
    resend.Broadcasts.send({"broadcast_id": created["id"]})
    assert len(app.state.broadcast_emails[created["id"]]) == 150
    draft_row, send_row = rows(sql, run_id)
    assert (draft_row["decision"], draft_row["predicted_usd"]) == ("allowed", Decimal(0))
    assert (send_row["decision"], send_row["endpoint"]) == ("allowed", "POST /broadcasts/{id}/send")
    assert send_row["predicted_usd"] == send_row["cost_usd"] == 150 * RATE
    assert send_row["request_summary"]["price"]["lookup_reads"] == 3  # the broadcast, then two pages
    assert [(r.method, r.path) for r in app.state.received[before:]] == [
        ("POST", "/broadcasts"), ("GET", f"/broadcasts/{created['id']}"), ("GET", "/contacts"), ("GET", "/contacts"),
        ("POST", f"/broadcasts/{created['id']}/send")]


def test_a_broadcast_over_the_per_call_limit_never_reaches_resend(use_key, sql, run_id, resend_emulator):
    app = resend_emulator[1]
    segment = add_segment(app, 150)  # 150 x 0.0009 = 0.135 USD
    use_key(endpoints=BROADCASTS, recipients={"segments": [segment]}, per_call_usd="0.10")
    before = len(app.state.received)
    with pytest.raises(ResendError) as raised:
        resend.Broadcasts.create(draft(segment, send=True))
    assert "[tollgate:per_call_limit]" in raised.value.message
    assert [(r.method, r.path) for r in app.state.received[before:]] == [("GET", "/contacts")] * 2  # priced only
    assert not any(b["segment_id"] == segment for b in app.state.broadcasts.values())
    [row] = rows(sql, run_id)
    assert (row["decision"], row["predicted_usd"]) == ("blocked", 150 * RATE)


def test_a_segment_too_large_to_count_is_cost_unknown(use_key, sql, run_id, resend_emulator):
    app = resend_emulator[1]
    segment = add_segment(app, 1101)  # one contact more than 11 pages after the broadcast's read
    use_key(endpoints=BROADCASTS, recipients={"segments": [segment]})
    created = resend.Broadcasts.create(draft(segment))
    with pytest.raises(ResendError) as raised:
        resend.Broadcasts.send({"broadcast_id": created["id"]})
    assert "[tollgate:cost_unknown]" in raised.value.message
    assert app.state.broadcasts[created["id"]]["status"] == "draft"
    assert rows(sql, run_id)[-1]["request_summary"]["price"]["lookup_reads"] == 12


@pytest.mark.parametrize("policy, sender, reason", [
    ({"recipients": {"domains": ["acme.example"]}}, "news@acme.example", "recipient_not_allowed"),
    ({"max_recipients": 4}, "news@acme.example", "too_many_recipients"),
    ({}, "ceo@acme.example", "sender_not_allowed"),
])
def test_a_broadcast_send_is_held_to_the_recipient_rules(use_key, sql, run_id, resend_emulator, policy, sender,
                                                         reason):
    app = resend_emulator[1]
    segment = add_segment(app, 5)
    listed = {"recipients": {"segments": [segment]}} if "recipients" not in policy else {}
    use_key(endpoints=BROADCASTS, **{**listed, **policy})
    created = resend.Broadcasts.create(draft(segment))  # a draft mails nobody
    app.state.broadcasts[created["id"]]["from"] = sender  # edited since (the dashboard): the send reads it
    with pytest.raises(ResendError) as raised:
        resend.Broadcasts.send({"broadcast_id": created["id"]})
    assert f"[tollgate:{reason}]" in raised.value.message
    assert reached(app, "POST", f"/broadcasts/{created['id']}/send") == []
    assert [r["reason"] for r in rows(sql, run_id)] == [None, reason]
