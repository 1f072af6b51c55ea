"""Every blocked row names its endpoint (and, when the account is why, the account) whenever
the method and path identify them, including refusals raised before or while the adapter
parsed the request (issue 16 item 8, issue 23 item 7): an operator's SQL by endpoint finds
them all."""

from __future__ import annotations

import contextlib

import httpx
import resend
from resend.exceptions import ResendError
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from tests.support.runid import ResendRunClient, TwilioRunClient
from tests.support.tollgate import RESEND_SECRET, TWILIO_ACCOUNT, TWILIO_TOKEN, policy

MESSAGES = "POST /2010-04-01/Accounts/{AccountSid}/Messages.json"
OTHER_ACCOUNT = "AC" + "f" * 32


def rows(sql, run_id: str) -> list[tuple]:
    return [(r["reason"], r["endpoint"], r["vendor_account"]) for r in sql.execute(
        "SELECT * FROM audit_events WHERE agent_run_id = %s ORDER BY id", (run_id,)).fetchall()]


def twilio(proxy_url: str, key: str, run_id: str, account: str = TWILIO_ACCOUNT) -> Client:
    client = Client(account, key, http_client=TwilioRunClient(run_id))
    client.api.base_url = f"{proxy_url}/twilio"
    return client


def test_twilio_refusals_before_the_policy_name_the_operation(proxy_url, make_key, sql, run_id):
    document = {"vendor": "twilio", "senders": ["+15005550006"], "recipients": {"countries": ["US"]},
                "endpoints": {"allow": ["POST /2010-04-01/Accounts/*/Messages.json"]}}
    key = make_key(document, vendor="twilio", secret=TWILIO_TOKEN, upstream_account=TWILIO_ACCOUNT)["key"]
    for client, sender in ((twilio(proxy_url, key, run_id, OTHER_ACCOUNT), "+15005550006"),  # another account
                           (twilio(proxy_url, key, run_id), "not a number")):  # a sender the adapter refuses
        with contextlib.suppress(TwilioRestException):
            client.messages.create(to="+14155550100", from_=sender, body="hi")
    assert rows(sql, run_id) == [("account_mismatch", MESSAGES, OTHER_ACCOUNT), ("invalid_sender", MESSAGES, None)]


def test_a_key_on_another_vendors_route_names_the_operation(proxy_url, make_key, sql, run_id):
    stripe_key = make_key(policy())["key"]
    with contextlib.suppress(TwilioRestException):
        twilio(proxy_url, stripe_key, run_id).messages.create(to="+14155550100", from_="+15005550006", body="hi")
    assert rows(sql, run_id) == [("wrong_vendor", MESSAGES, None)]


def test_resend_refusals_while_parsing_name_the_operation(proxy_url, make_key, sql, run_id, monkeypatch):
    document = {"vendor": "resend", "endpoints": {"allow": ["POST /emails"]},
                "recipients": {"domains": ["acme.example"]}, "senders": ["receipts@acme.example"]}
    key = make_key(document, vendor="resend", secret=RESEND_SECRET)["key"]
    monkeypatch.setattr(resend, "api_key", key)
    monkeypatch.setattr(resend, "api_url", f"{proxy_url}/resend")
    monkeypatch.setattr(resend, "default_http_client", ResendRunClient(run_id))
    with contextlib.suppress(ResendError):
        resend.Emails.send({"from": "receipts@acme.example", "to": ["not an address"], "subject": "s", "html": "h"})
    httpx.post(f"{proxy_url}/resend/emails", content=b"{not json", headers={
        "authorization": f"Bearer {key}", "content-type": "application/json", "x-agent-run-id": run_id})
    assert [(reason, endpoint) for reason, endpoint, _ in rows(sql, run_id)] == [
        ("invalid_recipient", "POST /emails"), ("invalid_json", "POST /emails")]
