"""Twilio (api.twilio.com and the product hosts): flat form requests, JSON responses, prices per segment.

What the core gets from this adapter
------------------------------------
* ``hosts``: Lookups, Verify, Messaging and Pricing by route prefix (``/twilio/lookups/...`` ->
  https://lookups.twilio.com/...); the REST API stays at ``/twilio/2010-04-01/...``. See
  vendors.twilio.routes, which knows every operation of every host from its catalogue
  (``operations/*.json``, Twilio's own OpenAPI documents classified): anything else is refused
  ``unknown_operation`` (404), never forwarded at $0.
* ``presented_credentials``: Basic auth as twilio-python sends it,
  ``Client("AC...", "tg_...")`` -> ``PresentedCredentials(vault_key="tg_...", account="AC...")``.
  The username is returned as given (an ``SK...`` username too): the core compares it with the
  key's upstream account and refuses a mismatch. One vault key serves every host.
* ``parse_request`` -> ``ParsedRequest`` with:

  - ``endpoint``: the catalogue's template with its host prefix, e.g.
    ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``, ``GET /lookups/v2/PhoneNumbers/{PhoneNumber}``:
    never a number, an address or a Sid;
  - ``host``: the route prefix of a product host (None: api.twilio.com); ``path``: the path on it;
  - ``account``: the AccountSid from an api-host path (**the core refuses a request whose
    ``account`` differs from the key's upstream account**: the path decides whose money Twilio
    spends); on a product host, whose paths name none, the Basic username when it is an Account SID;
  - sends (the catalogue's ``sends``): ``moves_money=True``; ``recipients`` = the destination in
    E.164 (or an email address for a Verify email); ``recipient_countries`` its ISO country ("ZZ"
    when unknown, see vendors.twilio.pricing); ``senders`` = ``From`` (channel prefix removed)
    and/or ``MessagingServiceSid``, or the Verify service; ``units`` = SMS segments (1 for MMS and
    WhatsApp, estimated minutes for calls). Buys: ``moves_money=True``;
  - Lookups: the looked-up number as ``recipients`` (so recipient rules scope lookups too);
  - ``object_id`` = the Sid the path ends in; ``objects`` = every Sid the path names of a kind keys
    record (SM/MM message, CA call, PN number), for ``objects.created_through_key``;
  - ``summary`` (redacted, for the audit row): to, from, messaging_service_sid, channel
    (sms | mms | whatsapp | voice), country, segments, encoding, body_length, media_count, units,
    minutes. Never the Body text.

  Reasons it refuses with (all status 400 unless noted), each naming the refused ``endpoint``:
  ``malformed_form``, ``invalid_utf8``, ``duplicate_parameter`` (a repeated key the operation
  does not take as a list, or a key in both query and body), ``ambiguous_parameter`` (``To`` and
  ``to``), ``too_many_parameters``, ``unsupported_content_type``, ``invalid_json``,
  ``invalid_parameter``, ``invalid_recipient`` (``To`` missing, not E.164, or a channel Tollgate
  does not govern: sip:, client:, messenger:...), ``invalid_sender``, ``unknown_operation`` (404),
  ``invalid_path`` (404: a malformed Account, Message or Call Sid, or a look-alike of one of
  Twilio's paths such as ``messages.json``, ``Messages.xml`` or ``Messages`` without extension,
  which Twilio would also act on but which Tollgate would not otherwise recognise).
* ``estimate_usd`` by the operation's price rule: ``sms`` and ``voice``: units x the country's rate,
  the account's own when ``tollgate prices sync`` read it from the Pricing API (``price_sync``,
  vendors/twilio/pricesync.py), else vendors/pricing/twilio_sms.json's; ``free``: 0; ``lookup``: 0
  without ``Fields`` (no data package), else the sum of its packages' prices, and ``verify``: the
  price of its ``Channel``, as the operator set them (``settable_prices``, vendors/twilio/setprices.py;
  a kind not set: None, and ``unpriced_note`` says which and the command that sets it);
  ``unknown`` (push challenges, add-ons...: Tollgate ships no
  price): None, which the core refuses as ``cost_unknown`` unless the policy names the endpoint
  in ``endpoints.priced_after``; ``number`` (number purchases): the monthly price of the number's
  country and type, read before the gate from the Pricing host (``price_lookup``, see
  vendors.twilio.numbers); the number bought is its ``recipients`` with its country, so recipient
  rules judge it.
* ``parse_response``: ``cost_usd`` = abs(price) for message and call creates when Twilio already
  priced the object, else None (Twilio prices messages after sending: the core records the
  estimate with ``cost_source='estimated'``); None too for calls whose cost was unknown before;
  HTTP 4xx errors cost 0; a 5xx on a send or a buy is ``uncertain`` (the core keeps the
  estimate, as for a timeout: nothing tells later what Twilio did); free operations cost 0. Creates also report
  ``created=RecordedObject(sid, "message" | "call" | "phone_number")`` for record-level scope; an
  answer that issues a credential (an API key's ``secret``: the catalogue's ``secret`` paths) names
  it in ``credentials``, which the core withholds unless the policy hands it out.
* Reconciliation (for the core's reconcile command): ``reconcile_path(account, sid)`` gives the
  path to GET later (through the same upstream, with the same auth headers), and
  ``reconcile(status, body)`` reads the final price from that answer (``FinalPrice``).
* ``render_error``: see vendors.twilio.errors (Tollgate's 99xxxx integer codes).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from vendors import flatform, money, strictjson
from vendors.base import (
    FinalPrice,
    LookedUp,
    Lookup,
    Operation,
    Outcome,
    ParsedRequest,
    ParsedResponse,
    PresentedCredentials,
    Quickstart,
    RecordedObject,
    RenderedResponse,
    RequestRejected,
    UncertainCall,
    UpstreamCredential,
    VendorError,
)
from vendors.catalogue import Entry, issued_credentials
from vendors.tools import Tool, ToolRequest
from vendors.twilio import calls, errors, numbers, pricing, routes, setprices
from vendors.twilio import tools as twilio_tools
from vendors.twilio.messages import Facts, lookup_facts, message_facts, send_facts
from vendors.twilio.pricesync import TwilioPriceSync
from vendors.twilio.pricing import UNKNOWN_COUNTRY
from vendors.twilio.routes import ACCOUNT_SID, API_VERSION, HOSTS
from vendors.wire import json_object, require_content_type

OBJECT_SID = re.compile(r"(?:SM|MM|CA)[0-9a-fA-F]{32}\Z")
NUMBER_SID = re.compile(r"PN[0-9a-fA-F]{32}\Z")
PRICE = re.compile(r"-?[0-9]{1,9}(?:\.[0-9]{1,12})?\Z")
PRICED_CREATES = frozenset({"sms", "voice"})  # price rules of the creates priced from their own body

# Twilio statuses after which an unpriced object will never be billed.
UNBILLED_FINAL = frozenset({"failed", "canceled", "busy", "no-answer"})


class TwilioAdapter:
    name = "twilio"
    label = "Twilio"
    colour = "#c2410c"
    default_upstream = "https://api.twilio.com"
    hosts: Mapping[str, str] = HOSTS  # lookups, verify, messaging, pricing (vendors.twilio.routes)
    requires_account = True  # the Account SID: in every path, and the Basic username upstream
    prices_later = True  # price is null at creation, filled after sending (tollgate prices reconcile)
    idempotency_header: str | None = None  # Twilio's REST API de-duplicates no POST
    decision_headers: frozenset[str] = frozenset()  # the account is in the path
    # Auth tokens and API-key secrets are 32 hex digits, no underscore: not recognisable by shape.
    secret_patterns: tuple[str, ...] = ()
    quickstart: Quickstart | None = None
    price_sync = TwilioPriceSync()  # the account's own prices from the Pricing API (tollgate prices sync)
    settable_prices = setprices.SETTABLE  # Verify and Lookups: no API lists them (tollgate prices set twilio KIND)
    # What twilio-python 9 sends (twilio/base/client_base.py get_headers), minus Authorization.
    forward_request_headers = frozenset({"content-type", "accept", "accept-charset", "user-agent", "x-twilio-client"})
    forward_response_headers = frozenset(
        {"content-type", "twilio-request-id", "twilio-request-duration", "twilio-concurrent-requests",
         "x-home-region", "x-api-domain", "retry-after"}
    )

    def operations(self) -> Iterable[Operation]:
        """Every operation of every Twilio host, as policies name them (the product hosts' with their prefix)."""
        return routes.operations()

    def tools(self) -> Sequence[Tool]:
        """One tool per operation of Twilio's documents (read once, vendors/twilio/tools.py)."""
        return twilio_tools.tools()

    def tool_request(
        self, tool: Tool, arguments: Mapping[str, Any], vault_key: str, account: str | None
    ) -> ToolRequest:
        return twilio_tools.tool_request(tool, arguments, vault_key, account)

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
        found = routes.route(method, path)
        try:
            params = _params(query, headers, body, found.operation)
            facts = _facts(found, params)
        except RequestRejected as exc:
            exc.endpoint = found.endpoint  # the blocked row names the operation it refused
            raise
        account = found.account
        if found.host is not None:  # product hosts' paths name no account: the Basic username does
            user = self.presented_credentials(headers).account
            account = user if user and ACCOUNT_SID.match(user) else None
        return ParsedRequest(
            method=method,
            path=found.path,
            endpoint=found.endpoint,
            params=params,
            object_id=found.object_id,
            objects=_recorded(found.params.values()),
            moves_money=facts.moves_money,
            idempotency_key=None,  # Twilio's REST API has no idempotency header, and twilio-python sends none
            account=account,
            summary=facts.summary,
            recipients=facts.recipients,
            recipient_countries=facts.countries,
            senders=facts.senders,
            units=facts.units,
            host=found.host,
            instruction_sources=facts.instruction_sources,
        )

    def after_lookup(self, request: ParsedRequest, looked_up: LookedUp) -> tuple[ParsedRequest, Lookup | None]:
        return request, None  # one read prices the call; estimate_usd reads its answer

    def price_lookup(self, request: ParsedRequest, referenced: RecordedObject | None) -> Lookup | None:
        if _operation(request).price == numbers.RULE:  # the number's monthly price, from the Pricing host
            return numbers.price_lookup(request)
        return None  # a message or a call is priced from its own body; nothing else has a price to read

    def estimate_usd(
        self, request: ParsedRequest, referenced: RecordedObject | None = None, looked_up: LookedUp | None = None
    ) -> Decimal | None:
        rule = _operation(request).price
        if rule == "free" or (rule == setprices.LOOKUP_RULE and not request.params.get("Fields")):
            return Decimal(0)
        if rule in (setprices.VERIFY_RULE, setprices.LOOKUP_RULE):
            return setprices.usd(request, rule)  # the operator's set prices (tollgate prices set twilio)
        if rule == numbers.RULE:
            return numbers.monthly_usd(request, looked_up)
        if rule in ("voice", calls.UPDATE_RULE):
            return calls.estimate_usd(request)  # every leg, and TwiML by URL
        if rule not in PRICED_CREATES:
            return None  # no price Tollgate ships: cost_unknown unless the policy opted in (priced_after)
        country = request.recipient_countries[0] if request.recipient_countries else UNKNOWN_COUNTRY
        channel, scope = request.summary.get("channel"), request.price_scope
        if channel == "whatsapp":
            rate = pricing.whatsapp_usd(scope)
        elif channel == "mms":
            rate = pricing.mms_usd(scope, country)
        else:
            rate = pricing.sms_usd(scope, country)  # the account's synced price, else the shipped one
        return (rate * max(request.units, 1)).quantize(money.MICRO)

    def unpriced_note(self, request: ParsedRequest) -> tuple[str, str] | None:
        """Why a call ``estimate_usd`` left unpriced has no price, and what would give it one."""
        rule = _operation(request).price
        return setprices.unpriced(request, rule) if rule in (setprices.VERIFY_RULE, setprices.LOOKUP_RULE) else None

    def parse_response(
        self, request: ParsedRequest, status: int, headers: Mapping[str, str], body: bytes
    ) -> ParsedResponse:
        request_id = _header(headers, "twilio-request-id")
        if status >= 500 and request.moves_money:
            # A 5xx may come after Twilio queued the message or bought the number: the estimate stands.
            return ParsedResponse(None, vendor_request_id=request_id, uncertain=True)
        if status >= 400:
            return ParsedResponse(Decimal(0), vendor_request_id=request_id)  # Twilio bills no HTTP error
        obj = json_object(body)
        sid = _text(obj, "sid")
        operation = _operation(request)
        rule = operation.price
        if rule in PRICED_CREATES:
            sid = _text(obj, "call_sid") if rule == "voice" and "call_sid" in obj else sid  # a conference participant
            kind = "call" if rule == "voice" else "message"
            created = RecordedObject(sid, kind) if sid else None
            return ParsedResponse(price_usd(obj), object_id=sid, vendor_request_id=request_id, created=created)
        # A fetch costs nothing, whatever price the fetched message carries; a call whose cost was
        # unknown before is not known from this answer either (the estimate the policy accepted stands).
        cost = Decimal(0) if self.estimate_usd(request) == 0 else None
        created = numbers.bought(status, obj) if rule == numbers.RULE else None
        return ParsedResponse(cost, object_id=sid or request.object_id, vendor_request_id=request_id, created=created,
                              credentials=issued_credentials(operation, obj))

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

    def reconcile_path(self, account: str | None, object_id: str, endpoint: str | None = None) -> str | None:
        """Where to GET a message (SM/MM) or call (CA) later to learn its final price; None when the
        call recorded no account, since Twilio's path needs one, or for a bought number (PN), whose
        answer never says what it cost (the estimate then stands)."""
        if account is None or NUMBER_SID.match(object_id):
            return None  # a bought number (PN) carries no price: its pre-gate estimate stands
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

    def outcome_lookup(self, call: UncertainCall, page: str | None) -> Lookup | None:
        return None  # without an idempotency key nothing names the call: its estimate stands

    def outcome(self, call: UncertainCall, answer: LookedUp) -> Outcome:
        return Outcome(None)


def price_usd(obj: Mapping[str, Any]) -> Decimal | None:
    """abs(price) in USD from a Twilio message or call, or None while Twilio has not priced it."""
    price, unit = obj.get("price"), obj.get("price_unit")
    if not isinstance(price, str) or not isinstance(unit, str) or not PRICE.match(price):
        return None
    rate = money.fx_table().usd_per_unit.get(unit.lower())
    if rate is None:
        return None
    return (abs(Decimal(price)) * rate).quantize(money.MICRO)


def _recorded(values: Iterable[str]) -> tuple[str, ...]:
    """The objects a call's path names that are of a kind keys record (a message, a call, a bought
    number; ``Calls/CA.../Recordings.json`` names its call): what objects.created_through_key holds to
    the key's own. Other Sids (services, the account) are not."""
    sids = (v.removesuffix(".json") for v in values)
    return tuple(dict.fromkeys(s for s in sids if OBJECT_SID.match(s) or NUMBER_SID.match(s)))


def _operation(request: ParsedRequest) -> Entry:
    """The catalogue's operation for a request this adapter parsed."""
    return routes.catalogues()[request.host].operation_of(request.method, request.path)


def _facts(found: routes.Route, params: Mapping[str, Any]) -> Facts:
    operation = found.operation
    if operation.price == "sms":
        return message_facts(params)
    if operation.price == "voice":
        return calls.create_facts(params)
    if operation.price == calls.UPDATE_RULE:
        return calls.update_facts(params)
    if operation.price == "lookup":
        return lookup_facts(found.params["PhoneNumber"], params)
    if operation.price == numbers.RULE:
        return numbers.purchase_facts(operation, params)
    if operation.kind == "sends" or operation.sender:
        return send_facts(operation, params, found.params)
    return Facts(moves_money=operation.kind == "buys")


def _params(query: bytes, headers: Mapping[str, str], body: bytes, operation: Entry) -> dict[str, Any]:
    from_query = flatform.decode(query, where="query string", repeatable=operation.lists)
    if not body:
        return from_query
    if operation.body == "json":  # Lookups' bulk query and overrides, Verify's passkeys
        require_content_type(headers, "application/json", "Twilio")
        document = strictjson.loads(body)
        return {**from_query, **document} if isinstance(document, dict) else {**from_query, "body": document}
    require_content_type(headers, "application/x-www-form-urlencoded", "Twilio")
    return flatform.merge(from_query, flatform.decode(body, where="body", repeatable=operation.lists))


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value if isinstance(value, str) else None


def _text(obj: Mapping[str, Any], name: str) -> str | None:
    value = obj.get(name)
    return value if isinstance(value, str) else None
