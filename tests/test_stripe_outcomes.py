"""The Stripe adapter's two halves of an uncertain call: a 5xx on a call that moves money is
uncertain (a 4xx, a 429, a replay and a read's 5xx are not), and Stripe's events say later what
the call did (vendors/stripe/outcomes.py). Pure functions: bytes in, facts out."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import pytest

from vendors.base import LookedUp, Outcome, UncertainCall
from vendors.resend import ResendAdapter
from vendors.stripe import StripeAdapter
from vendors.stripe.outcomes import WINDOW_AFTER_S, WINDOW_BEFORE_S
from vendors.twilio import TwilioAdapter

ADAPTER = StripeAdapter()
FORM = {"content-type": "application/x-www-form-urlencoded"}
SENT_AT = 1_770_000_000
OVER = WINDOW_BEFORE_S + WINDOW_AFTER_S  # the call's events would all exist by now


def call(path: str = "/v1/charges", request_id: str | None = "req_1", *, others: tuple[str, ...] = (),
         age_s: float = OVER, key: str | None = "idem-1", account: str | None = None) -> UncertainCall:
    return UncertainCall("POST", path, None, account, key, request_id, others, SENT_AT, age_s)


def event(obj: dict[str, Any], request_id: str = "req_1", key: str = "idem-1", event_id: str = "evt_1") -> dict:
    return {"id": event_id, "object": "event", "type": f"{obj['object']}.created", "data": {"object": obj},
            "request": {"id": request_id, "idempotency_key": key}}


def page(*events: dict, has_more: bool = False, status: int = 200) -> LookedUp:
    return LookedUp(status, json.dumps({"object": "list", "data": list(events), "has_more": has_more}).encode())


CHARGE = {"id": "ch_1", "object": "charge", "amount": 2000, "currency": "usd", "status": "succeeded"}


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
        assert adapter.outcome_lookup(call(), None) is None  # nothing names the call later: the estimate stands


def test_the_lookup_reads_the_events_of_the_calls_window_in_its_account() -> None:
    lookup = ADAPTER.outcome_lookup(call(account="acct_1"), None)
    assert lookup is not None and lookup.path == "/v1/events" and lookup.headers == {"stripe-account": "acct_1"}
    assert parse_qs(lookup.query) == {"created[gte]": [str(SENT_AT - WINDOW_BEFORE_S)],
                                      "created[lte]": [str(SENT_AT + WINDOW_AFTER_S)], "limit": ["100"]}
    assert "starting_after=evt_9" in ADAPTER.outcome_lookup(call(), "evt_9").query
    assert ADAPTER.outcome_lookup(call(key=None), None) is None  # nothing names it
    assert ADAPTER.outcome_lookup(call("/v2/money_management/outbound_payments"), None) is None


def test_an_event_of_the_call_prices_it_as_the_answer_would_have() -> None:
    assert ADAPTER.outcome(call(), page(event(CHARGE))) == Outcome(True, Decimal("20.00"), "ch_1")
    declined = {**CHARGE, "status": "failed"}
    assert ADAPTER.outcome(call(), page(event(declined))) == Outcome(True, Decimal(0), "ch_1")
    # A refund's events carry the refund and the refunded charge: the refund is what it answers with.
    refund = {"id": "re_1", "object": "refund", "amount": 500, "currency": "usd", "charge": "ch_1"}
    refunded = event({**CHARGE, "amount_refunded": 500}, event_id="evt_2")
    assert ADAPTER.outcome(call("/v1/refunds"), page(refunded, event(refund))) == Outcome(True, Decimal("5.00"), "re_1")
    captured = {**CHARGE, "amount_captured": 1500}
    assert ADAPTER.outcome(call("/v1/charges/ch_1/capture"), page(event(captured))).cost_usd == Decimal("15.00")
    # Its amount unreadable, or its object not among the events: it happened; the estimate stands.
    assert ADAPTER.outcome(call(), page(event({**CHARGE, "amount": "2000"}))) == Outcome(True, None, "ch_1")
    assert ADAPTER.outcome(call("/v1/refunds"), page(refunded)) == Outcome(True, None, None)


def test_only_the_calls_own_request_counts() -> None:
    other = event(CHARGE, request_id="req_2")  # the same key, another request: an SDK retry that charged
    assert ADAPTER.outcome(call(), page(other)) == Outcome(False, Decimal(0))
    assert ADAPTER.outcome(call(request_id=None), page(other)).happened is True  # a timeout: its request id unknown
    assert ADAPTER.outcome(call(request_id=None, others=("req_2",)), page(other)) == Outcome(False, Decimal(0))
    assert ADAPTER.outcome(call(), page(event(CHARGE, key="idem-2"))) == Outcome(False, Decimal(0))


def test_no_event_says_nothing_happened_only_once_the_window_is_over_and_read_to_its_end() -> None:
    assert ADAPTER.outcome(call(age_s=OVER - 1), page()) == Outcome(None)
    assert ADAPTER.outcome(call(), page(event(CHARGE, key="idem-2", event_id="evt_7"), has_more=True)) == Outcome(
        None, next_page="evt_7")
    assert ADAPTER.outcome(call(), page(status=403)) == Outcome(None)  # a key that may not read events
    assert ADAPTER.outcome(call(), LookedUp(200, b"<html>")) == Outcome(None)
    assert ADAPTER.outcome(call(), page()) == Outcome(False, Decimal(0))
