"""The Resend adapter's part of issue 23 item 4 (pure, no I/O): a scheduled email stays an open
estimate and its cancel names it to be released; a broadcast names its segment and sender and is
priced by the segment's contacts, read before the gate. (tests/test_resend_adapter.py is full.)"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from vendors.base import LookedUp, Lookup, ParsedRequest
from vendors.resend import ResendAdapter

ADAPTER = ResendAdapter()
JSON = {"content-type": "application/json"}
EMAIL_ID = "4ef9a417-02e9-4d39-ad75-9611e0fcc33c"
RATE = Decimal("0.0009")


def parse(method: str, path: str, body: Any = None) -> ParsedRequest:
    raw = b"" if body is None else json.dumps(body).encode()
    return ADAPTER.parse_request(method, path, b"", JSON if raw else {}, raw)


def test_a_scheduled_email_is_settled_at_its_estimate() -> None:
    send = parse("POST", "/emails", {"from": "a@acme.example", "to": ["b@acme.example"], "subject": "s",
                                     "html": "h", "scheduled_at": "in 1 hour"})
    assert ADAPTER.estimate_usd(send) == RATE
    answer = ADAPTER.parse_response(send, 200, {}, json.dumps({"id": EMAIL_ID}).encode())
    assert (answer.cost_usd, answer.object_id) == (None, EMAIL_ID)


def test_a_cancel_releases_the_email_it_names() -> None:
    cancel = parse("POST", f"/emails/{EMAIL_ID}/cancel")
    assert (cancel.endpoint, cancel.object_id, ADAPTER.estimate_usd(cancel)) == (
        "POST /emails/{id}/cancel", EMAIL_ID, Decimal(0))
    answer = ADAPTER.parse_response(cancel, 200, {}, json.dumps({"object": "email", "id": EMAIL_ID}).encode())
    assert (answer.cost_usd, answer.releases) == (Decimal(0), EMAIL_ID)
    refused = ADAPTER.parse_response(cancel, 422, {}, b'{"statusCode": 422}')
    assert refused.releases is None  # a cancel Resend refused stopped nothing


SEGMENT = "78261eea-8f8b-4381-83c6-79fa7120f1cf"
BROADCAST = "e169aa45-1ecf-4183-9955-b1499d5701d3"


def page(n: int, more: bool) -> LookedUp:
    data = [{"id": f"c{i:04d}", "email": f"u{i}@acme.example"} for i in range(n)]
    return LookedUp(200, json.dumps({"object": "list", "has_more": more, "data": data}).encode())


def test_a_draft_reads_nothing_and_costs_nothing() -> None:
    create = parse("POST", "/broadcasts", {"segment_id": SEGMENT, "from": "n@acme.example", "subject": "s"})
    assert (create.segments, ADAPTER.price_lookup(create, None), ADAPTER.estimate_usd(create)) == ((), None, 0)


def test_a_broadcast_sent_at_creation_counts_its_segment_page_by_page() -> None:
    create = parse("POST", "/broadcasts", {"audience_id": SEGMENT, "from": "News <n@acme.example>",
                                           "subject": "s", "send": True})
    assert (create.segments, create.senders) == ((SEGMENT,), ("n@acme.example",))
    first = ADAPTER.price_lookup(create, None)
    assert first == Lookup("/contacts", query=f"segment_id={SEGMENT}&limit=100")
    assert ADAPTER.estimate_usd(create) is None  # not counted yet
    counting, following = ADAPTER.after_lookup(create, page(100, more=True))
    assert following == Lookup("/contacts", query=f"segment_id={SEGMENT}&limit=100&after=c0099")
    counted, done = ADAPTER.after_lookup(counting, page(30, more=False))
    assert (done, counted.audience_size, ADAPTER.estimate_usd(counted)) == (None, 130, 130 * RATE)


def test_a_send_reads_the_broadcast_for_its_segment_and_sender() -> None:
    send = parse("POST", f"/broadcasts/{BROADCAST}/send", {})
    assert (send.object_id, send.segments, send.senders) == (BROADCAST, (), ())
    assert ADAPTER.price_lookup(send, None) == Lookup(f"/broadcasts/{BROADCAST}")
    answer = {"id": BROADCAST, "segment_id": SEGMENT, "from": "Acme <onboarding@resend.dev>", "status": "draft"}
    read, following = ADAPTER.after_lookup(send, LookedUp(200, json.dumps(answer).encode()))
    assert (read.segments, read.senders) == ((SEGMENT,), ("onboarding@resend.dev",))
    assert following is not None and following.path == "/contacts"


@pytest.mark.parametrize("answer", [LookedUp(0), LookedUp(404, b'{"name": "not_found"}'), LookedUp(200, b"[]"),
                                    LookedUp(200, json.dumps({"id": BROADCAST, "segment_id": "../x"}).encode())])
def test_an_unreadable_answer_leaves_the_broadcast_unpriced(answer: LookedUp) -> None:
    send = parse("POST", f"/broadcasts/{BROADCAST}/send", {})
    read, following = ADAPTER.after_lookup(send, answer)
    assert following is None and ADAPTER.estimate_usd(read) is None


def test_an_event_that_runs_automations_stays_unpriced() -> None:
    event = parse("POST", "/events/send", {"event": "signed_up", "email": "ana@acme.example"})
    assert (ADAPTER.price_lookup(event, None), ADAPTER.estimate_usd(event)) == (None, None)
    assert event.recipients == ("ana@acme.example",)
