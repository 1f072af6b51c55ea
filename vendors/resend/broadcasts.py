"""What a Resend broadcast mails, read before the gate (pure): its segment, its sender, its size.

A broadcast goes to every contact of one segment (``segment_id``; the deprecated ``audience_id``
names the same thing), so its price is the segment's contacts x the per-email rate, and the
policy judges the segment by id, the broadcast's ``from`` against ``senders``, and the segment's
size against ``max_recipients``. Resend's API says none of this in a send: ``POST
/broadcasts/{id}/send`` names only the broadcast, so the broadcast is read first (``GET
/broadcasts/{id}``: its ``segment_id`` and ``from``); a segment's answer (``GET /segments/{id}``)
carries no size, so the size is counted from ``GET /contacts?segment_id=...``, 100 contacts a page.
The core follows these reads (proxy/lookups.py, at most ``MAX_READS``); a segment too large for
that, or any read that fails, leaves the broadcast unpriced: ``cost_unknown`` unless the policy
lists the endpoint in ``endpoints.priced_after``.
"""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import urlencode

from vendors.base import LookedUp, Lookup, ParsedRequest, RequestRejected
from vendors.endpoints import looks_like_id
from vendors.resend.emails import address
from vendors.wire import json_object

SEND = "POST /broadcasts/{id}/send"
PAGE = 100  # the most contacts Resend lists in one page (PaginationLimit's maximum)


def params(endpoint: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Whether the call sends (a create with ``send: true``, or a send), and the segment it names."""
    sends = endpoint == SEND or fields.get("send") is True
    segment = fields.get("segment_id") or fields.get("audience_id")
    return {"send": sends, **({"segment": segment} if sends and isinstance(segment, str) else {})}


def segments(request_params: dict[str, Any]) -> tuple[str, ...]:
    segment = request_params.get("segment")
    return (segment,) if segment else ()


def first_read(request: ParsedRequest) -> Lookup | None:
    """The read that starts pricing a broadcast that sends; None for a draft."""
    if request.params.get("send") is not True:
        return None
    if request.segments:
        return _contacts(request.segments[0], None)
    if request.endpoint == SEND and request.object_id:
        return Lookup(f"/broadcasts/{request.object_id}")
    return None


def after(request: ParsedRequest, answer: LookedUp) -> tuple[ParsedRequest, Lookup | None]:
    """Fold one answer into the request; the next read, or None when done (or when nothing more can tell)."""
    if answer.status != 200:
        return request, None
    obj = json_object(answer.body)
    if not request.segments:  # the broadcast itself: who it goes to, and from whom
        return _from_broadcast(request, obj)
    data = obj.get("data")
    if not isinstance(data, list):
        return request, None
    counted = request.params.get("counted", 0) + len(data)
    more = obj.get("has_more") is True or ("has_more" not in obj and len(data) == PAGE)
    last = data[-1].get("id") if data and isinstance(data[-1], dict) else None
    if more:
        if not isinstance(last, str):
            return request, None
        return dataclasses.replace(request, params={**request.params, "counted": counted}), \
            _contacts(request.segments[0], last)
    return dataclasses.replace(request, params={**request.params, "counted": counted, "contacts": counted},
                               audience_size=counted, units=counted), None


def _from_broadcast(request: ParsedRequest, obj: dict[str, Any]) -> tuple[ParsedRequest, Lookup | None]:
    segment = obj.get("segment_id") or obj.get("audience_id")
    try:
        sender = address(obj.get("from"), "from")
    except RequestRejected:  # an answer we cannot read names no sender: a senders rule then refuses
        sender = None
    refined = dataclasses.replace(request, senders=(sender,) if sender else (),
                                  segments=(segment,) if isinstance(segment, str) and segment else ())
    if not refined.segments:
        return refined, None
    return refined, _contacts(refined.segments[0], None)


def _contacts(segment: str, after_id: str | None) -> Lookup | None:
    if not looks_like_id(segment):
        return None  # not an id: nothing to ask about
    query = {"segment_id": segment, "limit": str(PAGE), **({"after": after_id} if after_id else {})}
    return Lookup("/contacts", query=urlencode(query))
