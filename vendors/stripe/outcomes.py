"""What became of a Stripe call whose answer did not say (a timeout, a 5xx): Stripe's events tell.

Stripe documents a 500 as indeterminate: the call may have moved money. The idempotent retry
cannot tell what happened and may make it happen: for API v1, Stripe saves the first answer
with a key once the endpoint began executing (a 500 included) and replays it to every retry,
so the retry answers the same 500; where nothing was saved (the call failed before executing)
or the key is over 24 hours old, the retry *executes* the call. A reconciler that replays
would move money on its own. So Tollgate reads instead: every event a v1 API request causes
names it (``request.id``, ``request.idempotency_key``), and ``GET /v1/events`` lists events,
newest first, for 30 days, as a read Stripe does not bill.

The call happened when an event names its idempotency key (and its request id, when Stripe
answered with one); its cost is read from the object it answers with, as the answer would
have said. It did nothing when no event in its window names it, once the window is over.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from vendors import money
from vendors.base import LookedUp, Lookup, Outcome, UncertainCall
from vendors.stripe import catalogue
from vendors.stripe.facts import MAX_AMOUNT_MINOR
from vendors.wire import json_object

OPERATIONS = catalogue.load()
WINDOW_BEFORE_S = 60  # clock skew between Tollgate's database and Stripe
# A call's events are created while it runs, well within any upstream timeout: once the window
# is over, events missing from it will not appear.
WINDOW_AFTER_S = 600
PAGE_SIZE = 100
_EVENT_ID = re.compile(r"evt_[A-Za-z0-9]{1,64}\Z")
# The status of an object on which no money moved (a declined charge is created, status failed).
_NOTHING_MOVED = frozenset({"failed", "canceled"})


def lookup(call: UncertainCall, page: str | None) -> Lookup | None:
    """The page of events around the call; None for a call no event can be tied to."""
    if call.method != "POST" or not call.idempotency_key or not call.path.startswith("/v1/"):
        return None  # v2 sends thin events, and a call without a key cannot be named
    query: list[tuple[str, str | int]] = [("created[gte]", call.sent_at - WINDOW_BEFORE_S),
                                          ("created[lte]", call.sent_at + WINDOW_AFTER_S), ("limit", PAGE_SIZE)]
    if page is not None:
        query.append(("starting_after", page))
    headers = {}
    if call.account:  # the events of the account the call acted on
        headers["stripe-context" if "/" in call.account else "stripe-account"] = call.account
    return Lookup("/v1/events", headers, urlencode(query))


def read(call: UncertainCall, answer: LookedUp) -> Outcome:
    if answer.status != 200:
        return Outcome(None)  # not readable now (a restricted key, an outage): ask again later
    listing = json_object(answer.body)
    events = listing.get("data")
    if not isinstance(events, list):
        return Outcome(None)
    caused = [e["data"]["object"] for e in events if _caused_by(call, e)]
    if caused:
        return _happened(call, caused)
    if listing.get("has_more") is True:
        last = events[-1].get("id") if events and isinstance(events[-1], dict) else None
        return Outcome(None, next_page=last if isinstance(last, str) and _EVENT_ID.match(last) else None)
    if call.age_s < WINDOW_BEFORE_S + WINDOW_AFTER_S:
        return Outcome(None)  # the window is not over: its events may still be written
    return Outcome(False, Decimal(0))


def _caused_by(call: UncertainCall, event: Any) -> bool:
    """The event was caused by this call: its request carried the call's key, and was this call
    (Stripe's request id from the call's answer) or, when Stripe never answered, none of the others."""
    if not isinstance(event, dict) or not isinstance(event.get("data"), dict):
        return False
    if not isinstance(event["data"].get("object"), dict):
        return False
    request = event.get("request")
    if not isinstance(request, dict) or request.get("idempotency_key") != call.idempotency_key:
        return False
    if call.vendor_request_id is not None:
        return bool(request.get("id") == call.vendor_request_id)
    return request.get("id") not in call.others


def _happened(call: UncertainCall, objects: list[dict[str, Any]]) -> Outcome:
    """Priced from the object the call answers with, as its answer would have priced it; where
    that object or its amount is not among the events, the estimate stands."""
    endpoint, path_params, _ = OPERATIONS.match(call.method, call.path)
    if endpoint is None:
        return Outcome(True)
    answer = _answer(endpoint.template, path_params, objects)
    object_id = answer.get("id") if answer and isinstance(answer.get("id"), str) else None
    money_facts = endpoint.facts.money
    if answer is None or money_facts is None or money_facts.response_amount is None:
        return Outcome(True, object_id=object_id)
    if answer.get("status") in _NOTHING_MOVED:
        return Outcome(True, Decimal(0), object_id)
    amount, currency = catalogue.param(answer, money_facts.response_amount), answer.get("currency")
    if (type(amount) is not int or not 0 <= amount <= MAX_AMOUNT_MINOR or not isinstance(currency, str)
            or currency.lower() not in money.fx_table().usd_per_unit):
        return Outcome(True, object_id=object_id)
    return Outcome(True, money.minor_to_usd(amount, currency), object_id)


def _answer(template: str, path_params: dict[str, str], objects: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Of the objects the call's events carry (newest state first), the one its answer is: the object
    the path names for an update or an action (``/v1/charges/{charge}/capture``), an object of the
    collection's kind for a create (``/v1/refunds``: a refund, not the refunded charge)."""
    segments = template.strip("/").split("/")
    named = [s for s in segments if s.startswith("{")]
    last = segments[-1]
    if named and (last.startswith("{") or not last.endswith("s")):  # /x/{id} or /x/{id}/verb
        target = path_params.get(named[-1].strip("{}"))
        return next((o for o in objects if o.get("id") == target), None)
    if named:  # a sub-collection (/v1/transfers/{id}/reversals): its kind is not the path's to say
        return None
    kind = ".".join([s for s in segments[1:-1] if s != "test_helpers"] + [last.removesuffix("s")])
    return next((o for o in objects if o.get("object") == kind), None)
