"""The Resend adapter's part of issue 23 item 4 (pure, no I/O): a scheduled email stays an open
estimate and its cancel names it to be released; a broadcast names its segment and sender and is
priced by the segment's contacts, read before the gate. (tests/test_resend_adapter.py is full.)"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from vendors.base import ParsedRequest
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
