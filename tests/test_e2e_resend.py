"""resend-python through the proxy against the Resend emulator: each recipient priced as one
email, batches counted per email, scope rules refusing with resend's own exceptions."""

from __future__ import annotations

from decimal import Decimal

import pytest
import resend
from resend.exceptions import InvalidApiKeyError, ResendError, ValidationError

from tests.support.runid import ResendRunClient
from tests.support.tollgate import RESEND_SECRET

RATE = Decimal("0.0009")


def resend_policy(**fields) -> dict:
    return {"vendor": "resend", "endpoints": {"allow": ["POST /emails", "POST /emails/batch", "GET /emails/*"]},
            "recipients": {"domains": ["acme.example", "*.customers.example"], "addresses": ["cfo@partner.example"]},
            "senders": ["Receipts@Acme.example"], **fields}


@pytest.fixture()
def use_key(proxy_url, make_key, run_id, monkeypatch):
    def use(**fields) -> dict:
        key = make_key(resend_policy(**fields), vendor="resend", secret=RESEND_SECRET)
        monkeypatch.setattr(resend, "api_key", key["key"])
        monkeypatch.setattr(resend, "api_url", f"{proxy_url}/resend")
        monkeypatch.setattr(resend, "default_http_client", ResendRunClient(run_id))
        return key
    return use


def email(**fields) -> dict:
    return {"from": "Acme Receipts <receipts@acme.example>", "to": ["ana@acme.example"],
            "subject": "Your receipt", "html": "<p>Thanks!</p>", **fields}


def rows(sql, run_id: str) -> list[dict]:
    return sql.execute("SELECT * FROM audit_events WHERE agent_run_id = %s ORDER BY id", (run_id,)).fetchall()


def test_each_recipient_is_an_email(use_key, sql, run_id, resend_emulator):
    key = use_key()
    sent = resend.Emails.send(email(cc="bo@eu.customers.example", bcc=["cfo@partner.example"]))
    [row] = rows(sql, run_id)
    assert (row["decision"], row["endpoint"], row["object_id"]) == ("allowed", "POST /emails", sent["id"])
    assert row["predicted_usd"] == row["cost_usd"] == 3 * RATE
    forwarded = resend_emulator[1].state.received[-1]
    assert forwarded.headers["authorization"] == f"Bearer {RESEND_SECRET}" and key["key"] not in str(forwarded)


def test_a_batch_counts_every_email(use_key, sql, run_id):
    use_key()
    answer = resend.Batch.send([email(), email(to=["a@acme.example", "b@acme.example"])])
    assert len(answer["data"]) == 2
    [row] = rows(sql, run_id)
    assert (row["endpoint"], row["cost_usd"]) == ("POST /emails/batch", 3 * RATE)


@pytest.mark.parametrize("fields, reason", [
    ({"to": ["someone@gmail.example"]}, "recipient_not_allowed"),
    ({"from": "ceo@acme.example"}, "sender_not_allowed"),
])
def test_scope_rules(use_key, sql, run_id, fields, reason):
    use_key()
    with pytest.raises(ResendError) as raised:
        resend.Emails.send(email(**fields))
    assert f"[tollgate:{reason}]" in raised.value.message
    assert [r["reason"] for r in rows(sql, run_id)] == [reason]


def test_max_recipients_and_resend_limits(use_key, sql, run_id):
    use_key(max_recipients=3)
    with pytest.raises(ResendError) as too_many:
        resend.Emails.send(email(to=[f"u{i}@acme.example" for i in range(4)]))
    assert "[tollgate:too_many_recipients]" in too_many.value.message
    with pytest.raises(ValidationError) as over_fifty:
        resend.Emails.send(email(to=[f"u{i}@acme.example" for i in range(51)]))
    assert "[tollgate:too_many_to_addresses]" in over_fifty.value.message


def test_a_revoked_key_raises_resends_invalid_key_error(use_key, admin):
    key = use_key()
    resend.Emails.send(email())
    admin.post(f"/admin/v1/keys/{key['id']}/revoke")
    with pytest.raises(InvalidApiKeyError) as raised:
        resend.Emails.send(email())
    assert "[tollgate:key_revoked]" in raised.value.message


def test_a_contact_fetched_by_its_address_and_inbound_mail_are_their_own_operations(use_key, sql, run_id,
                                                                                   resend_emulator):
    use_key(endpoints={"allow": ["GET /contacts/*", "GET /emails/*"]})
    contact = resend.Contacts.get(email="ana@acme.example")  # resend-python: /contacts/ana%40acme.example
    assert contact["email"] == "ana@acme.example"
    assert resend_emulator[1].state.received[-1].path == "/contacts/ana@acme.example"  # one segment, as Resend reads it
    with pytest.raises(ResendError) as inbound_refused:  # GET /emails/* reads sent emails, not inbound mail
        resend.Emails.Receiving.list()
    assert "[tollgate:endpoint_not_allowed]" in inbound_refused.value.message
    use_key(endpoints={"allow": ["GET /emails/receiving"]})
    assert resend.Emails.Receiving.list()["object"] == "list"
    assert [(r["decision"], r["endpoint"], r["object_id"]) for r in rows(sql, run_id)] == [
        ("allowed", "GET /contacts/{id}", contact["id"]), ("blocked", "GET /emails/receiving", None),
        ("allowed", "GET /emails/receiving", None)]
    assert "acme" not in str([r["endpoint"] for r in rows(sql, run_id)])


def test_creating_an_api_key_is_refused_unless_named_and_blocked_rows_name_their_endpoint(use_key, sql, run_id):
    use_key()
    with pytest.raises(ResendError) as refused:
        resend.ApiKeys.create({"name": "agent"})
    assert "[tollgate:endpoint_not_allowed]" in refused.value.message
    with pytest.raises(ValidationError):
        resend.Batch.send([email()] * 101)
    with pytest.raises(ResendError):
        resend.Emails.send(email(**{"from": "not an address"}))
    assert [(r["reason"], r["endpoint"]) for r in rows(sql, run_id)] == [
        ("endpoint_not_allowed", "POST /api-keys"), ("batch_too_large", "POST /emails/batch"),
        ("invalid_sender", "POST /emails")]


def test_under_objects_created_through_key_a_key_reads_its_own_emails_only(use_key, sql, run_id):
    use_key()  # another key sends one
    theirs = resend.Emails.send(email())["id"]
    use_key(objects={"created_through_key": True})
    ours = resend.Emails.send(email())["id"]  # a send names no existing email
    assert resend.Emails.get(ours)["id"] == ours
    with pytest.raises(ResendError) as other:
        resend.Emails.get(theirs)
    assert "[tollgate:object_not_created_through_key]" in other.value.message
    assert [r["reason"] for r in rows(sql, run_id)] == [None, None, None, "object_not_created_through_key"]
