"""Twilio (api.twilio.com, API 2010-04-01): flat form requests, JSON responses, prices per segment.

What the core gets from this adapter
------------------------------------
* ``presented_credentials``: Basic auth as twilio-python sends it,
  ``Client("AC...", "tg_...")`` -> ``PresentedCredentials(vault_key="tg_...", account="AC...")``.
  The username is returned as given (an ``SK...`` username too): the core compares it with the
  key's upstream account and refuses a mismatch.
* ``parse_request`` -> ``ParsedRequest`` with, for the governed endpoints (``ENDPOINTS``):

  - ``endpoint``: e.g. ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``;
  - ``account``: the AccountSid from the path, for every path under ``/2010-04-01/Accounts/``.
    **The core must refuse a request whose ``account`` differs from the key's upstream account**
    (that is what the issue asks; ``presented.account`` alone is not enough, since the path decides
    whose money Twilio spends);
  - message and call creates: ``moves_money=True``; ``recipients`` = the ``To`` number in E.164;
    ``recipient_countries`` = its ISO country ("ZZ" when unknown, see vendors.twilio.pricing);
    ``senders`` = ``From`` (channel prefix removed) and/or ``MessagingServiceSid``; ``units`` = SMS
    segments (1 for MMS and WhatsApp, estimated minutes for calls);
  - fetches: ``object_id`` = the Sid in the path;
  - ``summary`` (redacted, for the audit row): to, from, messaging_service_sid, channel
    (sms | mms | whatsapp | voice), country, segments, encoding, body_length, media_count, units,
    minutes. Never the Body text.

  Reasons it refuses with (all status 400 unless noted): ``malformed_form``, ``invalid_utf8``,
  ``duplicate_parameter`` (any repeated key but ``MediaUrl``/``PersistentAction`` on messages and
  ``StatusCallbackEvent``/``RecordingStatusCallbackEvent`` on calls, or a key in both query and
  body), ``ambiguous_parameter`` (``To`` and ``to``), ``too_many_parameters``,
  ``unsupported_content_type``, ``invalid_parameter``, ``invalid_recipient`` (``To`` missing, not
  E.164, or a channel Tollgate does not govern: sip:, client:, messenger:...), ``invalid_sender``,
  ``invalid_path`` (404: a malformed Sid, or a look-alike of a governed resource such as
  ``messages.json``, ``Messages.xml`` or ``Messages`` without extension, which Twilio would
  also act on but which Tollgate would not otherwise recognise).
* ``estimate_usd``: units x the country's rate from vendors/pricing/twilio_sms.json.
* ``parse_response``: ``cost_usd`` = abs(price) for creates when Twilio already priced the object,
  else None (Twilio prices messages after sending: the core records the estimate with
  ``cost_source='estimated'``); HTTP errors cost 0; fetches and lists cost 0. Creates also
  report ``created=RecordedObject(sid, "message" | "call")`` for record-level scope.
* Reconciliation (for the core's reconcile command): ``reconcile_path(account, sid)`` gives the
  path to GET later (through the same upstream, with the same auth headers), and
  ``reconcile(status, body)`` reads the final price from that answer (``FinalPrice``).
* ``render_error``: see vendors.twilio.errors (Tollgate's 99xxxx integer codes).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from vendors import flatform, money
from vendors.base import (
    FinalPrice,
    LookedUp,
    Lookup,
    Operation,
    ParsedRequest,
    ParsedResponse,
    PresentedCredentials,
    Quickstart,
    RecordedObject,
    RenderedResponse,
    RequestRejected,
    UpstreamCredential,
    VendorError,
)
from vendors.endpoints import looks_like_id
from vendors.twilio import errors
from vendors.twilio.messages import Facts, call_facts, message_facts
from vendors.twilio.pricing import UNKNOWN_COUNTRY, prices
from vendors.wire import json_object, require_content_type

API_VERSION = "2010-04-01"
ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}\Z")
OBJECT_SID = re.compile(r"(?:SM|MM|CA)[0-9a-fA-F]{32}\Z")
PRICE = re.compile(r"-?[0-9]{1,9}(?:\.[0-9]{1,12})?\Z")

# Twilio statuses after which an unpriced object will never be billed.
UNBILLED_FINAL = frozenset({"failed", "canceled", "busy", "no-answer"})


@dataclass(frozen=True)
class Endpoint:
    method: str
    resource: str  # "Messages" | "Calls"
    item: bool  # /{Sid}.json
    repeatable: frozenset[str] = frozenset()
    creates: bool = False

    @property
    def name(self) -> str:
        tail = f"{self.resource}/{{Sid}}.json" if self.item else f"{self.resource}.json"
        return f"{self.method} /{API_VERSION}/Accounts/{{AccountSid}}/{tail}"


_MESSAGE_LISTS = frozenset({"MediaUrl", "PersistentAction"})
_CALL_LISTS = frozenset({"StatusCallbackEvent", "RecordingStatusCallbackEvent"})
ENDPOINTS: dict[tuple[str, str, bool], Endpoint] = {
    (e.method, e.resource, e.item): e
    for e in (
        Endpoint("POST", "Messages", False, _MESSAGE_LISTS, creates=True),
        Endpoint("GET", "Messages", False),
        Endpoint("GET", "Messages", True),
        Endpoint("POST", "Calls", False, _CALL_LISTS, creates=True),
        Endpoint("GET", "Calls", False),
        Endpoint("GET", "Calls", True),
    )
}
GOVERNED = frozenset({"messages", "calls"})
SID_PREFIXES = {"Messages": ("SM", "MM"), "Calls": ("CA",)}


@dataclass(frozen=True)
class Route:
    endpoint: Endpoint | None
    name: str
    account: str | None
    sid: str | None


class TwilioAdapter:
    name = "twilio"
    label = "Twilio"
    colour = "#c2410c"
    default_upstream = "https://api.twilio.com"
    hosts: Mapping[str, str] = MappingProxyType({})  # one API host
    requires_account = True  # the Account SID: in every path, and the Basic username upstream
    prices_later = True  # price is null at creation, filled after sending (tollgate prices reconcile)
    decision_headers: frozenset[str] = frozenset()  # the account is in the path
    # Auth tokens and API-key secrets are 32 hex digits, no underscore: not recognisable by shape.
    secret_patterns: tuple[str, ...] = ()
    quickstart: Quickstart | None = None
    # What twilio-python 9 sends (twilio/base/client_base.py get_headers), minus Authorization.
    forward_request_headers = frozenset({"content-type", "accept", "accept-charset", "user-agent", "x-twilio-client"})
    forward_response_headers = frozenset(
        {"content-type", "twilio-request-id", "twilio-request-duration", "twilio-concurrent-requests",
         "x-home-region", "x-api-domain", "retry-after"}
    )

    def operations(self) -> Iterable[Operation]:
        for e in ENDPOINTS.values():
            kind = "reaches_people" if e.creates else "reads"  # a message sent or a call placed
            yield Operation(e.method, e.name.partition(" ")[2], kind, "request" if e.creates else "free")

    def presented_credentials(self, headers: Mapping[str, str]) -> PresentedCredentials:
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return PresentedCredentials(None)
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):  # ValueError: non-ASCII header text, or bytes that are not UTF-8
            return PresentedCredentials(None)
        user, colon, password = decoded.partition(":")
        if not colon:
            return PresentedCredentials(None)
        return PresentedCredentials(password or None, user or None)

    def parse_request(
        self, method: str, path: str, query: bytes, headers: Mapping[str, str], body: bytes
    ) -> ParsedRequest:
        route = _route(method, path)
        endpoint = route.endpoint
        params = _params(query, headers, body, endpoint.repeatable if endpoint else frozenset())
        facts = Facts()
        if endpoint is not None and endpoint.creates:
            facts = message_facts(params) if endpoint.resource == "Messages" else call_facts(params)
        return ParsedRequest(
            method=method,
            path=path,
            endpoint=route.name,
            params=params,
            object_id=route.sid,
            moves_money=facts.moves_money,
            idempotency_key=None,  # Twilio's REST API has no idempotency header, and twilio-python sends none
            account=route.account,
            summary=facts.summary,
            recipients=facts.recipients,
            recipient_countries=facts.countries,
            senders=facts.senders,
            units=facts.units,
        )

    def price_lookup(self, request: ParsedRequest, referenced: RecordedObject | None) -> Lookup | None:
        return None  # a message or a call is priced from its own body

    def estimate_usd(
        self, request: ParsedRequest, referenced: RecordedObject | None = None, looked_up: LookedUp | None = None
    ) -> Decimal | None:
        if not request.moves_money:
            return Decimal(0)
        table = prices()
        country = request.recipient_countries[0] if request.recipient_countries else UNKNOWN_COUNTRY
        channel = request.summary.get("channel")
        if channel == "voice":
            rate = table.voice_rate(country)
        elif channel == "whatsapp":
            rate = table.whatsapp
        elif channel == "mms":
            rate = table.mms_rate(country) or table.sms_rate(country)
        else:
            rate = table.sms_rate(country)
        return (rate * max(request.units, 1)).quantize(money.MICRO)

    def parse_response(
        self, request: ParsedRequest, status: int, headers: Mapping[str, str], body: bytes
    ) -> ParsedResponse:
        request_id = _header(headers, "twilio-request-id")
        if status >= 400:
            return ParsedResponse(Decimal(0), vendor_request_id=request_id)  # Twilio bills no HTTP error
        obj = json_object(body)
        sid = _text(obj, "sid")
        if not request.moves_money:
            # A fetch costs nothing, whatever price the fetched message carries.
            return ParsedResponse(Decimal(0), object_id=sid or request.object_id, vendor_request_id=request_id)
        kind = "call" if request.endpoint.endswith("/Calls.json") else "message"
        created = RecordedObject(sid, kind) if sid else None
        return ParsedResponse(price_usd(obj), object_id=sid, vendor_request_id=request_id, created=created)

    def upstream_auth_headers(self, credential: UpstreamCredential) -> dict[str, str]:
        user, password = credential.account or "", credential.secret
        key_sid, colon, key_secret = credential.secret.partition(":")
        if colon and key_sid.startswith("SK"):  # API-key auth: the key sid is the username
            user, password = key_sid, key_secret
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        return {"authorization": f"Basic {token}"}

    def render_error(self, error: VendorError) -> RenderedResponse:
        return errors.render(error)

    # -- reconciliation: pure halves; the core does the GET -----------------------------------

    def reconcile_path(self, account: str | None, object_id: str) -> str | None:
        """Where to GET a message (SM/MM) or call (CA) later to learn its final price; None when the
        call recorded no account, since Twilio's path needs one (the estimate then stands)."""
        if account is None:
            return None
        if not ACCOUNT_SID.match(account) or not OBJECT_SID.match(object_id):
            raise ValueError(f"not a Twilio account and message/call sid: {account!r}, {object_id!r}")
        resource = "Calls" if object_id.startswith("CA") else "Messages"
        return f"/{API_VERSION}/Accounts/{account}/{resource}/{object_id}.json"

    def reconcile(self, status: int, body: bytes) -> FinalPrice:
        if status >= 400:
            return FinalPrice(None, None, None, final=False)
        obj = json_object(body)
        state = _text(obj, "status")
        cost = price_usd(obj)
        if cost is not None:
            return FinalPrice(_text(obj, "sid"), state, cost, final=True)
        if state in UNBILLED_FINAL:
            return FinalPrice(_text(obj, "sid"), state, Decimal(0), final=True)
        return FinalPrice(_text(obj, "sid"), state, None, final=False)


def price_usd(obj: Mapping[str, Any]) -> Decimal | None:
    """abs(price) in USD from a Twilio message or call, or None while Twilio has not priced it."""
    price, unit = obj.get("price"), obj.get("price_unit")
    if not isinstance(price, str) or not isinstance(unit, str) or not PRICE.match(price):
        return None
    rate = money.fx_table().usd_per_unit.get(unit.lower())
    if rate is None:
        return None
    return (abs(Decimal(price)) * rate).quantize(money.MICRO)


def _route(method: str, path: str) -> Route:
    segments = path.strip("/").split("/")
    account = None
    if len(segments) >= 3 and segments[0] == API_VERSION and segments[1].lower() == "accounts":
        account = segments[2].removesuffix(".json")
    if account is None or len(segments) < 4 or segments[3].split(".")[0].lower() not in GOVERNED:
        return Route(None, _template(method, segments), account, None)
    resource = _governed_resource(segments)
    if not ACCOUNT_SID.match(segments[2]):
        raise RequestRejected("invalid_path", f"{segments[2][:40]!r} is not a Twilio Account SID.", status=404)
    if len(segments) > 5:  # sub-resources (Media, Feedback, Recordings...): not governed here, policy decides
        return Route(None, _template(method, segments), account, None)
    sid = None
    if len(segments) == 5:
        sid = segments[4].removesuffix(".json")
        if not (segments[4].endswith(".json") and OBJECT_SID.match(sid) and sid[:2] in SID_PREFIXES[resource]):
            raise RequestRejected("invalid_path", f"{segments[4][:40]!r} is not a {resource} Sid ending in .json.",
                                  status=404)
    endpoint = ENDPOINTS.get((method, resource, sid is not None))
    if endpoint is None:  # e.g. POST/DELETE on a message (redact, cancel): named, not governed
        return Route(None, Endpoint(method, resource, sid is not None).name, account, sid)
    return Route(endpoint, endpoint.name, account, sid)


def _template(method: str, segments: list[str]) -> str:
    """``GET /2010-04-01/Accounts/{id}/Messages/{id}/Media.json``: ids replaced, extensions kept."""
    named = []
    for segment in segments:
        stem, dot, extension = segment.partition(".")
        named.append("{id}" + dot + extension if looks_like_id(stem) else segment)
    return f"{method} /" + "/".join(named)


def _governed_resource(segments: list[str]) -> str:
    """"Messages" or "Calls" for a path into them, refusing look-alike spellings.

    Twilio also answers ``Messages`` (XML), ``Messages.xml`` and maybe other cases of the name;
    each would create a message that Tollgate could not parse, so only the canonical JSON form
    (twilio-python's) is accepted.
    """
    stem = segments[3].split(".")[0]
    resource = stem[:1].upper() + stem[1:].lower()
    canonical = ["Accounts", resource + ".json"] if len(segments) == 4 else ["Accounts", resource]
    if [segments[1], segments[3]] != canonical:
        raise RequestRejected(
            "invalid_path",
            f"Tollgate governs Twilio's {resource} only as /{API_VERSION}/Accounts/{{AccountSid}}/{resource}.json "
            f"and /{resource}/{{Sid}}.json.",
            status=404,
        )
    return resource


def _params(query: bytes, headers: Mapping[str, str], body: bytes, repeatable: frozenset[str]) -> dict[str, Any]:
    from_query = flatform.decode(query, where="query string", repeatable=repeatable)
    if not body:
        return from_query
    require_content_type(headers, "application/x-www-form-urlencoded", "Twilio")
    return flatform.merge(from_query, flatform.decode(body, where="body", repeatable=repeatable))


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value if isinstance(value, str) else None


def _text(obj: Mapping[str, Any], name: str) -> str | None:
    value = obj.get(name)
    return value if isinstance(value, str) else None
