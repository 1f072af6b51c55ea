"""Twilio Verify and Lookups priced from the prices an operator sets (issue 23, item 3).

Neither price is in Twilio's Pricing API or in any API description Tollgate holds, so Tollgate
ships none; the operator sets them (``tollgate prices set twilio verify:sms 0.05 --account AC...``).
Here twilio-python, with the README's setup, goes through a real proxy on a database of its own to
the Verify and Lookups emulators: before a price is set, a verification and a lookup with data
packages are refused ``cost_unknown`` with the exact command that prices them; after the real CLI
set them, each is priced before it is forwarded at the set price (a lookup at the sum of its
packages), its row saying ``price_source`` set, and one over the per-call limit never reaches the
emulator. A verification check costs nothing (Twilio bills per verification).
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from twilio.base.exceptions import TwilioRestException

from emulators.twilio_products import create_app as create_product_emulator
from tests.support.servers import serve_asgi
from tests.support.tollgate import TWILIO_ACCOUNT, TWILIO_TOKEN, audit_rows
from tests.test_e2e_twilio_hosts import CHECK, LOOKUP, NUMBER, SERVICE, VERIFY, client_for
from tests.test_vendor_price_sync import prices_db, proxy, tollgate, twilio_key, wait_for  # noqa: F401 (fixtures)
from vendors import pricebook
from vendors.base import PriceScope

POLICY = {"vendor": "twilio", "per_call_usd": "0.06", "recipients": {"countries": ["US"]}, "senders": [SERVICE],
          "endpoints": {"allow": ["POST /verify/v2/Services/*/Verifications",
                                  "POST /verify/v2/Services/*/VerificationCheck", "GET /lookups/v2/PhoneNumbers/*"]}}
SET = {"verify:sms": "0.05", "verify:call": "0.10", "lookups:line_type_intelligence": "0.008",
       "lookups:caller_name": "0.01"}


@pytest.fixture()
def hosts() -> Iterator[dict[str, tuple[str, Any]]]:
    """The Verify and Lookups emulators of this test's own (the proxy fixture's upstreams)."""
    apps = {f"twilio_{product}": create_product_emulator(product, TWILIO_ACCOUNT, TWILIO_TOKEN)
            for product in ("verify", "lookups")}
    with serve_asgi(apps["twilio_verify"]) as verify, serve_asgi(apps["twilio_lookups"]) as lookups:
        yield {"twilio_verify": (verify, apps["twilio_verify"]), "twilio_lookups": (lookups, apps["twilio_lookups"])}


def refusal(call: Any) -> str:
    with pytest.raises(TwilioRestException) as refused:
        call()
    return str(refused.value.msg)


def command(kind: str) -> str:
    return f"tollgate prices set twilio {kind} USD --account {TWILIO_ACCOUNT}"


def test_verify_and_lookups_are_priced_at_the_prices_set_and_refused_with_the_command_until_then(
        proxy, prices_db, hosts, run_id) -> None:  # noqa: F811 (the imported fixtures)
    proxy_url, admin = proxy
    key = twilio_key(admin, POLICY)
    client = client_for(proxy_url, key["key"], run_id)
    service, lookup = client.verify.v2.services(SERVICE), client.lookups.v2.phone_numbers(NUMBER)
    verify_app, lookups_app = hosts["twilio_verify"][1], hosts["twilio_lookups"][1]

    message = refusal(lambda: service.verifications.create(to=NUMBER, channel="sms"))
    assert "[tollgate:cost_unknown]" in message and command("verify:sms") in message, message
    message = refusal(lambda: lookup.fetch(fields="line_type_intelligence,caller_name"))
    assert command("lookups:line_type_intelligence") in message and command("lookups:caller_name") in message
    assert (verify_app.state.received, lookups_app.state.received) == ([], [])  # refused before either host

    for kind, usd in SET.items():
        done = tollgate(prices_db, "prices", "set", "twilio", kind, usd, "--account", TWILIO_ACCOUNT)
        assert done.returncode == 0 and f"twilio {kind}: USD {usd}" in done.stdout, done.stderr
    unknown = tollgate(prices_db, "prices", "set", "twilio", "verify:pigeon", "0.05", "--account", TWILIO_ACCOUNT)
    assert unknown.returncode != 0 and "verify:sms" in unknown.stderr  # names the kinds there are
    assert tollgate(prices_db, "prices", "set", "twilio", "0.05", "--account", TWILIO_ACCOUNT).returncode != 0
    assert "lookups:sim_swap" in tollgate(prices_db, "prices", "kinds", "twilio").stdout
    wait_for(lambda: all(pricebook.find("twilio", PriceScope(None, TWILIO_ACCOUNT), kind) for kind in SET))

    sent = service.verifications.create(to=NUMBER, channel="sms")
    assert service.verification_checks.create(to=NUMBER, code="123456").status == "approved"
    found = lookup.fetch(fields="line_type_intelligence,caller_name")
    assert sent.status == "pending" and found.caller_name is not None
    received = len(verify_app.state.received)
    message = refusal(lambda: service.verifications.create(to=NUMBER, channel="call"))  # 0.10 > 0.06
    assert "[tollgate:per_call_limit]" in message and len(verify_app.state.received) == received
    message = refusal(lambda: lookup.fetch(fields="line_type_intelligence,sim_swap"))
    assert command("lookups:sim_swap") in message and command("lookups:line_type_intelligence") not in message

    with psycopg.connect(prices_db, row_factory=dict_row) as sql:
        rows = audit_rows(sql, run_id)
    assert [(r["endpoint"], r["reason"], r["predicted_usd"]) for r in rows] == [  # a refused row holds 0
        (VERIFY, "cost_unknown", 0), (LOOKUP, "cost_unknown", 0), (VERIFY, None, Decimal("0.05")),
        (CHECK, None, 0), (LOOKUP, None, Decimal("0.018")), (VERIFY, "per_call_limit", Decimal("0.10")),
        (LOOKUP, "cost_unknown", 0)]
    verification, looked_up = rows[2]["request_summary"]["price_source"], rows[4]["request_summary"]["price_source"]
    assert (verification["source"], verification["kind"], verification["usd"], verification["scope"]) == (
        "set", "verify:sms", "0.05", "account")
    assert looked_up["source"] == "set" and sorted((p["kind"], p["usd"]) for p in looked_up["prices"]) == [
        ("lookups:caller_name", "0.01"), ("lookups:line_type_intelligence", "0.008")]
    assert rows[2]["cost_usd"] == Decimal("0.05")  # Twilio's answer carries no price: the estimate stands
