"""Guarantee 5: vault-key secrets and upstream secrets never appear in logs, audit rows,
errors or admin responses, even when an agent puts them where they do not belong."""

from __future__ import annotations

import contextlib
import json
import os

import httpx
import stripe

from tests.support.processes import tollgate_serve
from tests.support.tollgate import ADMIN_TOKEN, MASTER_KEY, STRIPE_SECRET, policy


def test_secrets_never_leave(pg_url, stripe_emulator, sql):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}
    env.update(DATABASE_URL=pg_url, TOLLGATE_MASTER_KEY=MASTER_KEY, TOLLGATE_ADMIN_TOKEN=ADMIN_TOKEN,
               TOLLGATE_UPSTREAM_STRIPE=stripe_emulator[0], TOLLGATE_LOG_FORMAT="json")
    seen: list[str] = []
    with tollgate_serve(env) as (base, process):
        admin = httpx.Client(base_url=base, headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
        created = admin.post("/admin/v1/keys", json={"vendor": "stripe", "policy": policy(),
                                                     "upstream_secret": STRIPE_SECRET})
        key = created.json()
        vault_secret = key["key"].split("_")[2]
        client = stripe.StripeClient(key["key"], base_addresses={"api": f"{base}/stripe"}, max_network_retries=0)
        run = {"headers": {"X-Agent-Run-Id": "secret-check"}}
        client.v1.charges.create(params={"amount": 100, "currency": "usd", "source": "tok_visa"}, options=run)
        try:  # the agent pastes its vault key and the real secret into a request
            client.v1.charges.create(params={"amount": 100, "currency": "xyz", "description": key["key"],
                                             "metadata": {"k": STRIPE_SECRET}}, options=run)
        except stripe.InvalidRequestError as error:
            seen.append(str(error.json_body))
        # ... and into every field that lands in an audit row: a path, a parameter naming an object,
        # the customer, the idempotency key, the connected account (guarantee 5 for agent text).
        pasted_options = {"headers": {"X-Agent-Run-Id": "secret-check"}, "idempotency_key": f"retry-{STRIPE_SECRET}"}
        for call in (lambda: client.v1.charges.retrieve(STRIPE_SECRET, options=run),
                     lambda: client.v1.refunds.create(params={"charge": key["key"], "amount": 100}, options=run),
                     lambda: client.v1.charges.create(params={"amount": 100, "currency": "usd",
                                                              "customer": ADMIN_TOKEN}, options=pasted_options),
                     lambda: client.v1.charges.retrieve("ch_1", options={**run, "stripe_account": STRIPE_SECRET})):
            # What comes back to the agent is its own text (or Stripe's echo of it): not searched.
            with contextlib.suppress(stripe.StripeError):
                call()
        for bad in (key["key"][:-1] + "x", key["key"] + "x", f"Basic {STRIPE_SECRET}"):
            seen.append(httpx.get(f"{base}/stripe/v1/charges/ch_1", headers={"authorization": bad}).text)
        pasted = httpx.get(f"{base}/stripe/v1/charges/ch_1", headers={"authorization": f"Bearer {key['key']}",
                                                                       "x-agent-run-id": STRIPE_SECRET})
        assert pasted.status_code == 400 and pasted.json()["error"]["code"] == "invalid_run_id"
        seen.append(pasted.text)
        admin.post(f"/admin/v1/keys/{key['id']}/revoke")
        seen += [admin.get("/admin/v1/keys").text, admin.get(f"/admin/v1/keys/{key['id']}").text,
                 admin.get("/admin/v1/audit", params={"key_id": key["id"]}).text]
        seen.append(process.log_path.read_text())
    rows = sql.execute("SELECT * FROM audit_events WHERE key_id = %s", (key["id"],)).fetchall()
    stored = sql.execute("SELECT secret_hash, secret_ciphertext FROM vault_keys JOIN upstream_credentials c "
                         "ON c.id = credential_id WHERE vault_keys.id = %s", (key["id"],)).fetchone()
    everything = "\n".join(seen) + repr(rows) + repr(stored)
    assert len(rows) >= 2 and "request" in seen[-1]  # the audit and the log really hold these calls
    assert vault_secret not in everything
    assert STRIPE_SECRET not in everything
    assert ADMIN_TOKEN not in everything
    assert len(rows) >= 6
    assert STRIPE_SECRET.encode() not in stored["secret_ciphertext"]

    lines = [json.loads(line) for line in seen[-1].splitlines() if line.startswith("{")]
    requests = [line for line in lines if line["event"] == "request"]
    assert requests and all(line["request_id"] for line in requests)
    allowed = [line for line in requests if line["decision"] == "allowed"]
    assert allowed[0]["agent_run_id"] == "secret-check" and allowed[0]["key_id"] == key["id"]


def test_secrets_without_a_shape_are_masked_by_value(proxy_url, make_key, admin, sql):
    """A Twilio auth token (32 hex digits) and the master key (base64) look like nothing in
    particular: pasted whole or cut short, they are masked because Tollgate knows their value."""
    from twilio.base.exceptions import TwilioRestException
    from twilio.rest import Client

    from tests.support.runid import TwilioRunClient
    from tests.support.tollgate import TWILIO_ACCOUNT, TWILIO_TOKEN

    document = {"vendor": "twilio", "senders": ["+15005550006"], "recipients": {"countries": ["US"]},
                "endpoints": {"allow": ["POST /2010-04-01/Accounts/*/Messages.json"]}}
    key = make_key(document, vendor="twilio", secret=TWILIO_TOKEN, upstream_account=TWILIO_ACCOUNT)
    vault_secret = key["key"].split("_")[2]
    pastes = (TWILIO_TOKEN, TWILIO_TOKEN[:14], MASTER_KEY, MASTER_KEY[:16], vault_secret)
    for run_id in ("run-" + TWILIO_TOKEN[:20], "run-plain"):
        client = Client(TWILIO_ACCOUNT, key["key"], http_client=TwilioRunClient(run_id))
        client.api.base_url = f"{proxy_url}/twilio"
        for pasted in pastes:
            with contextlib.suppress(TwilioRestException):  # a path and the object id, refused
                client.messages(f"SM{pasted}").fetch()
            with contextlib.suppress(TwilioRestException):  # a refusal quoting it
                client.messages.create(to="+14155550100", from_=pasted, body="hi")
            with contextlib.suppress(TwilioRestException):  # a parameter of a forwarded call
                client.messages.create(to="+14155550100", from_="+15005550006", body="hi",
                                       status_callback=f"https://hooks.example/{pasted}")
    rows = sql.execute("SELECT * FROM audit_events WHERE key_id = %s", (key["id"],)).fetchall()
    served = admin.get("/admin/v1/audit", params={"key_id": key["id"], "limit": 1000}).text
    assert len(rows) == 2 * 3 * len(pastes)
    assert {r["reason"] for r in rows} >= {None, "invalid_sender", "endpoint_not_allowed"}  # forwarded and refused
    assert {r["reason"] for r in rows if r["agent_run_id"] != "run-plain"} == {"invalid_run_id"}
    for text in (repr(rows), served):
        for secret in (TWILIO_TOKEN, MASTER_KEY, vault_secret):
            assert secret[:12] not in text
    assert "***" in repr(rows)


def test_a_known_secret_is_masked_as_far_as_it_matches():
    from proxy.redact import mask_secrets

    token = "5ec12e7a0b1c4d2e8f9a6b3c7d1e0f42"
    assert mask_secrets(f"SM{token}.json", (token,)) == "SM***.json"
    assert mask_secrets(f"a {token[:14]}zz {token[:11]} b", (token,)) == f"a ***zz {token[:11]} b"  # 11: too short
    assert mask_secrets(f"{token}{token}", (token,)) == "******"
    assert mask_secrets("nothing here", (token,)) == "nothing here"
