"""A vendor 5xx on a call that moves money is uncertain (a 4xx, a 429, a replay and a read's 5xx
are not): the adapters say so, and the core keeps the call's estimate. Pure functions."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from vendors.resend import ResendAdapter
from vendors.stripe import StripeAdapter
from vendors.twilio import TwilioAdapter

ADAPTER = StripeAdapter()
FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize("status, headers, method, uncertain, cost", [
    (500, {}, "POST", True, None),
    (503, {}, "POST", True, None),
    (500, {"idempotent-replayed": "true"}, "POST", False, Decimal(0)),  # the first call's row holds the doubt
    (402, {}, "POST", False, Decimal(0)),  # card_declined: no money moved
    (429, {}, "POST", False, Decimal(0)),
    (500, {}, "GET", False, Decimal(0)),  # a read moves no money, answered or not
])
def test_a_5xx_on_a_call_that_moves_money_is_uncertain(status, headers, method, uncertain, cost) -> None:
    request = (ADAPTER.parse_request("POST", "/v1/charges", b"", FORM, b"amount=2000&currency=usd")
               if method == "POST" else ADAPTER.parse_request("GET", "/v1/charges/ch_1", b"", {}, b""))
    result = ADAPTER.parse_response(request, status, {"request-id": "req_9", **headers}, b'{"error": {}}')
    assert (result.uncertain, result.cost_usd, result.vendor_request_id) == (uncertain, cost, "req_9")


def test_a_5xx_on_a_twilio_send_or_a_resend_email_is_uncertain_too() -> None:
    twilio, resend = TwilioAdapter(), ResendAdapter()
    account = "AC" + "0" * 32
    sms = twilio.parse_request("POST", f"/2010-04-01/Accounts/{account}/Messages.json", b"", FORM,
                               b"To=%2B14155550100&From=%2B15005550006&Body=hi")
    email = resend.parse_request("POST", "/emails", b"", {"content-type": "application/json"}, json.dumps(
        {"from": "a@acme.example", "to": ["b@acme.example"], "subject": "s", "html": "h"}).encode())
    for adapter, request in ((twilio, sms), (resend, email)):
        assert adapter.parse_response(request, 500, {}, b"{}").uncertain is True
        assert adapter.parse_response(request, 400, {}, b"{}").cost_usd == Decimal(0)
