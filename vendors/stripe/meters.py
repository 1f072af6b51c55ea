"""Which customers a meter event bills, for customer scope (DESIGN.md guarantee 9).

A meter event (``POST /v1/billing/meter_events``, ``POST /v2/billing/meter_events``, and each
event of ``POST /v2/billing/meter_event_stream``) names no customer parameter: Stripe bills the
customer found in its ``payload`` under the key the meter's ``customer_mapping.event_payload_key``
says, ``stripe_customer_id`` by default, the meter being the one whose ``event_name`` the event
names. A payload that holds nothing but ``stripe_customer_id`` and ``value`` can only bill the
customer it names there (a meter mapped to another key finds no customer and Stripe refuses the
event). Any other key could be the meter's customer key, so then the meters are read first
(``GET /v1/billing/meters``, a read Stripe does not bill, made by the core before the gate like a
price look-up) and each event's customer taken from its meter's key. An event whose meter that
read does not show names no customer Tollgate knows: a key limited to customers refuses it
(``customer_not_identified``), an unscoped key forwards it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from vendors.base import LookedUp, Lookup, ParsedRequest, RequestRejected
from vendors.wire import json_object

DEFAULT_KEY = "stripe_customer_id"  # Stripe's default customer_mapping.event_payload_key
_PLAIN = frozenset({DEFAULT_KEY, "value"})  # keys a payload may hold without its meter being read
ENDPOINTS = frozenset({"POST /v1/billing/meter_events", "POST /v2/billing/meter_events",
                       "POST /meter_events/v2/billing/meter_event_stream"})
METERS = Lookup("/v1/billing/meters", query="status=active&limit=100")  # Stripe's largest page


def is_meter_event(endpoint: str) -> bool:
    return endpoint in ENDPOINTS


def _events(params: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The events a call reports: the stream's ``events``, or the call's own parameters."""
    found = params.get("events", []) if "events" in params or "event_name" not in params else [params]
    if not isinstance(found, list) or not all(isinstance(e, dict) for e in found):
        raise RequestRejected("invalid_parameter", "Parameter 'events' must be a list of events.", param="events")
    return found


def _payload(event: Mapping[str, Any]) -> Mapping[str, Any]:
    payload = event.get("payload", {})  # none: it bills nobody Tollgate can name (Stripe refuses it)
    if not isinstance(payload, dict):
        raise RequestRejected("invalid_parameter", "Parameter 'payload' must be a hash.", param="payload")
    return payload


def needs_meters(params: Mapping[str, Any]) -> bool:
    """Whether a payload holds a key that could be its meter's customer key besides the default."""
    return any(set(_payload(event)) - _PLAIN for event in _events(params))


def customers(params: Mapping[str, Any], keys: Mapping[str, str] | None = None) -> tuple[str, ...] | None:
    """The customers the events bill, in order, each once; None when one event's cannot be told.
    ``keys``: each meter's customer key by its event name, as read; None: not read (the default)."""
    found: list[str] = []
    for event in _events(params):
        payload = _payload(event)
        if keys is None and set(payload) - _PLAIN:
            return None
        key = DEFAULT_KEY if keys is None else keys.get(str(event.get("event_name")))
        customer = payload.get(key) if key else None
        if not isinstance(customer, str) or not customer:
            return None
        found.append(customer)
    return tuple(dict.fromkeys(found))


def billed(endpoint: str, params: Mapping[str, Any]) -> tuple[str, ...]:
    """The customers a call bills as its request alone tells (none for other operations)."""
    return (customers(params) or ()) if is_meter_event(endpoint) else ()


def customer_keys(answer: LookedUp) -> dict[str, str] | None:
    """Each active meter's customer key by its event name, from a ``GET /v1/billing/meters``."""
    if answer.status != 200:
        return None
    try:
        listed = json_object(answer.body).get("data")
    except RequestRejected:
        return None
    keys: dict[str, str] = {}
    for meter in listed if isinstance(listed, list) else []:
        mapping = meter.get("customer_mapping") if isinstance(meter, dict) else None
        key = mapping.get("event_payload_key") if isinstance(mapping, dict) else None
        if isinstance(meter.get("event_name"), str) and isinstance(key, str):
            keys[meter["event_name"]] = key
    return keys


def naming(request: ParsedRequest, billed: tuple[str, ...] | None) -> ParsedRequest:
    """The request with the customers its events bill: the first as ``customer_id``, all in ``customers``."""
    billed = billed or ()
    return dataclasses.replace(request, customer_id=billed[0] if billed else None, customers=billed)
