"""Whom a Stripe meter event bills (vendors/stripe/meters.py), read without a network: the payload's
``stripe_customer_id`` when nothing else could be the meter's customer key, else each event's
meter's key as read from ``GET /v1/billing/meters``, and nobody when that read does not tell."""

from __future__ import annotations

import json

import pytest

from vendors.base import LookedUp, RequestRejected
from vendors.stripe import meters


def event(name: str = "api_calls", **payload: str) -> dict:
    return {"event_name": name, "payload": payload}


def listed(*pairs: tuple[str, str]) -> LookedUp:
    data = [{"event_name": name, "customer_mapping": {"type": "by_id", "event_payload_key": key}}
            for name, key in pairs]
    return LookedUp(200, json.dumps({"object": "list", "data": data}).encode())


def test_a_plain_payload_bills_its_stripe_customer_id_without_a_read() -> None:
    one = event(stripe_customer_id="cus_A", value="3")
    assert not meters.needs_meters(one) and meters.customers(one) == ("cus_A",)
    stream = {"events": [one, event(stripe_customer_id="cus_B"), one]}
    assert meters.customers(stream) == ("cus_A", "cus_B")  # each once, in order


def test_any_other_key_is_read_from_the_events_meter() -> None:
    decoy = event("seats", stripe_customer_id="cus_A", account_ref="cus_B", value="1")
    assert meters.needs_meters(decoy) and meters.customers(decoy) is None  # not told until the meters are read
    assert meters.customers(decoy, meters.customer_keys(listed(("seats", "account_ref")))) == ("cus_B",)
    assert meters.customers(decoy, meters.customer_keys(listed(("other", "account_ref")))) is None  # no such meter
    assert meters.customer_keys(LookedUp(404, b"{}")) is None
    assert meters.customers(decoy, meters.customer_keys(LookedUp(200, b"not json"))) is None


def test_a_payload_that_is_not_a_hash_is_refused() -> None:
    with pytest.raises(RequestRejected):
        meters.customers({"event_name": "api_calls", "payload": "cus_A"})
    with pytest.raises(RequestRejected):
        meters.customers({"events": "cus_A"})
