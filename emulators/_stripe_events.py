"""Stripe's events, as the emulator keeps them: what a reconciler reads to learn what a call did.

Like api.stripe.com, every POST that changed something records events naming the request that
caused them (``request.id``, its ``Request-Id``; ``request.idempotency_key``), each carrying the
object as it then was: ``charge.succeeded`` (``.pending``, ``.failed``) for a charge, both
``refund.created`` and ``charge.refunded`` for a refund, ``<object>.created`` for other creates
and ``<object>.updated`` for other changes. ``GET /v1/events`` lists them newest first, with
``created[gte|lte|gt|lt]``, ``type``, ``limit`` and ``starting_after`` / ``ending_before``.
"""

from __future__ import annotations

import copy
from typing import Any

from ._stripe_params import StripeApiError, integer, string
from ._stripe_store import Obj, Store, new_id, now

API_VERSION = "2024-06-20"


def record(store: Store, method: str, path: str, answer: Obj, request_id: str, key: str | None) -> None:
    """The events a successful ``method path`` that answered ``answer`` causes."""
    if method != "POST" or not isinstance(answer.get("object"), str):
        return
    kind = answer["object"]
    created = path.strip("/").count("/") == 1  # /v1/charges, not /v1/charges/ch_1/capture
    if kind == "charge":
        types = [(f"charge.{answer.get('status', 'succeeded')}", answer)]
    elif kind == "refund":
        types = [("refund.created", answer)]
        if (charge := store.find(answer.get("charge") or "")) is not None:
            types.append(("charge.refunded", charge))
    else:
        types = [(f"{kind}.created" if created else f"{kind}.updated", answer)]
    for event_type, obj in types:
        store.add({
            "id": new_id("evt"), "object": "event", "api_version": API_VERSION, "created": now(),
            "data": {"object": copy.deepcopy(obj)}, "livemode": False, "pending_webhooks": 0,
            "request": {"id": request_id, "idempotency_key": key}, "type": event_type,
        })


def list_events(store: Store, params: dict[str, Any]) -> Obj:
    limit = integer(params, "limit")
    limit = 10 if limit is None else limit
    if not 1 <= limit <= 100:
        raise StripeApiError(400, "Limit must be between 1 and 100.", param="limit")
    events = [e for e in store.newest_first("event") if _in_range(e["created"], params.get("created"))
              and params.get("type") in (None, e["type"])]
    ids = [e["id"] for e in events]
    if after := string(params, "starting_after"):
        store.get("event", after, param="starting_after")
        events = events[ids.index(after) + 1:] if after in ids else []
    elif before := string(params, "ending_before"):
        store.get("event", before, param="ending_before")
        events = events[:ids.index(before)] if before in ids else []
    return {"object": "list", "data": events[:limit], "has_more": len(events) > limit, "url": "/v1/events"}


def _in_range(created: int, bounds: Any) -> bool:
    if bounds is None:
        return True
    if not isinstance(bounds, dict):
        bounds = {"eq": bounds}
    checks = {"gte": created.__ge__, "gt": created.__gt__, "lte": created.__le__, "lt": created.__lt__,
              "eq": created.__eq__}
    try:
        return all(checks[op](int(value)) for op, value in bounds.items())
    except (KeyError, ValueError) as exc:
        raise StripeApiError(400, f"Invalid created bound: {exc}", param="created") from exc
