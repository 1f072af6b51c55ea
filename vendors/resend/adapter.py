"""Resend (api.resend.com): strict JSON requests, priced per recipient.

What the core gets from this adapter
------------------------------------
* ``presented_credentials``: ``Authorization: Bearer <vault key>`` (what resend-python sends
  from ``resend.api_key``). ``account`` is always None: a Resend key is its own account.
* ``parse_request`` -> ``ParsedRequest`` for every operation in ``operations.json`` (Resend's
  OpenAPI document, classified: tests/test_operation_catalogues.py holds it to the spec);
  anything else is refused ``unknown_operation`` (404). ``endpoint`` is the spec's path with
  every placeholder as ``{id}`` (``GET /emails/{id}``, ``GET /contacts/{id}``): never an
  address, even for a contact fetched by email. ``/emails/receiving`` is its own operation
  (reading inbound mail), not the email with id "receiving".

  - sends (``POST /emails``, ``POST /emails/batch``): ``moves_money=True``; ``recipients`` =
    every To, Cc and Bcc address of every email, bare and lower-cased, in order, duplicates kept;
    ``senders`` = the distinct From addresses; ``units`` = ``len(recipients)`` (Resend bills each
    recipient as one email); ``params`` = ``{"emails": (email objects...), "units_per_email": (n, ...)}``;
    ``idempotency_key`` from the ``Idempotency-Key`` header, and ``deduplicated_by`` names it (Resend
    replays a send with the same key for 24 h; its docs name no other endpoint that takes one);
  - broadcasts that send (``POST /broadcasts`` with ``send: true``, ``POST /broadcasts/{id}/send``):
    ``moves_money=True``, the From as sender and the segment in ``segments``, or, for a send that
    names only the broadcast, both read before the gate with the segment's size (broadcasts.py;
    ``price_lookup`` / ``after_lookup``);
  - an event that runs automations (``POST /events/send``): ``moves_money=True``, its contact as
    recipient; its cost is unknown (which automation steps run, and how many emails they send,
    is not in the request, and no read tells);
  - ``object_id`` = the id the path ends in, when it is one (a contact's email address is not);
    ``objects`` = the sent email a call acts on (``/emails/{id}...``), for ``objects.created_through_key``;
  - ``summary``: emails, recipients (counts), from and recipient_domains (comma-separated).
    Never subjects, bodies or recipient addresses.

  Reasons it refuses with, each naming the refused ``endpoint``: ``unsupported_content_type``,
  ``invalid_utf8``, ``invalid_json``, ``duplicate_parameter`` (a JSON key twice) and
  ``ambiguous_parameter`` (``to`` and ``To``) with status 400; ``invalid_parameter``,
  ``invalid_recipient``, ``invalid_sender``, ``too_many_to_addresses`` (more than 50 in one
  email's ``to``; the policy's own ``max_recipients`` denial is ``too_many_recipients``),
  ``batch_too_large`` (more than 100 emails), ``invalid_batch`` (not an array, or empty),
  ``unexpected_body`` (a GET body other than ``{}``, which resend-python sends) with status 422
  like Resend's own validation errors; ``malformed_form`` and friends for a bad query string;
  ``invalid_path`` (404) for a look-alike of one of Resend's paths (``/Emails``,
  ``/emails/Batch``, ``/emails/Receiving``); ``unknown_operation`` (404).
* ``estimate_usd`` = units x ``usd_per_email``: the key's or its account's own rate when an
  operator set one (``tollgate prices set resend``, vendors/pricebook.py), else
  vendors/pricing/resend.json's, for sends;
  the segment's contacts x ``usd_per_email`` for a broadcast that sends, once its reads counted
  them; 0 for free operations and draft broadcasts; None (the core refuses ``cost_unknown`` unless
  the policy lists the endpoint in ``endpoints.priced_after``) for an event sent, and for a
  broadcast whose segment could not be read or counted.
* ``parse_response``: same as the estimate for a 2xx send (Resend's answers carry no price),
  minus the emails a permissive batch reports in ``errors``; 0 for 4xx errors and free operations;
  ``uncertain`` for a 5xx on a send (the core keeps the estimate, as for a timeout).
  ``object_id`` and ``created`` (kind "email"): the email's id; for a batch, the first id only
  (``ParsedResponse.created`` holds one object). A scheduled email (``scheduled_at``) is
  settled at its estimate (``cost_usd`` None, ``cost_source = 'estimated'``): Resend bills it
  when it goes, and until then ``POST /emails/{id}/cancel`` may stop it, whose 2xx answer names
  the email in ``releases`` so that the core reprices the email's row to 0.
* ``credentials``: a new API key's ``token`` (``POST /api-keys``), which the core withholds unless
  the policy names the endpoint in ``credentials.hand_out``.
* ``render_error``: see ``render_error`` below for how statuses and names map onto
  resend-python's exception classes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from vendors import flatform, pricebook, strictjson
from vendors.base import (
    FinalPrice,
    LookedUp,
    Lookup,
    Operation,
    Outcome,
    ParsedRequest,
    ParsedResponse,
    PresentedCredentials,
    PriceScope,
    Quickstart,
    RecordedObject,
    RenderedResponse,
    RequestRejected,
    SettablePrice,
    UncertainCall,
    UpstreamCredential,
    VendorError,
)
from vendors.catalogue import Catalogue, Entry, Match, issued_credentials
from vendors.endpoints import looks_like_id
from vendors.money import MICRO, PRICING_DIR
from vendors.resend import broadcasts
from vendors.resend import tools as resend_tools
from vendors.resend.emails import INVALID, address, read_send, refused_units
from vendors.tools import Tool, ToolRequest
from vendors.wire import json_object, require_content_type

BATCH = "POST /emails/batch"
CANCEL = "POST /emails/{id}/cancel"
OPERATIONS = Path(__file__).resolve().parent / "operations.json"
_PLACEHOLDER = re.compile(r"\{[A-Za-z_]+\}")


@lru_cache(maxsize=1)
def catalogue() -> Catalogue:
    """api.resend.com's operations, read once per process."""
    return Catalogue.load(OPERATIONS)


@dataclass(frozen=True)
class ResendPrices:
    source: str
    as_of: str
    usd_per_email: Decimal


@lru_cache(maxsize=1)
def prices() -> ResendPrices:
    data = json.loads((PRICING_DIR / "resend.json").read_text())
    return ResendPrices(data["source"], data["as_of"], Decimal(str(data["usd_per_email"])))


def usd_per_email(scope: PriceScope) -> Decimal:
    """The rate set for the key or its account (``tollgate prices set resend``), else the shipped one."""
    shipped = prices()
    return pricebook.usd("resend", scope, "email", "", shipped.usd_per_email,
                         pricebook.Shipped(shipped.as_of, "vendors/pricing/resend.json"))


class ResendAdapter:
    name = "resend"
    label = "Resend"
    colour = "#047857"
    default_upstream = "https://api.resend.com"
    hosts: Mapping[str, str] = MappingProxyType({})  # one API host
    requires_account = False
    prices_later = False
    # The price an operator sets (``tollgate prices set resend 0.0004``): the plan decides
    # it, and no API of Resend's says it (vendors/pricebook.py).
    settable_prices = (SettablePrice("email", "email (each To, Cc and Bcc recipient)",
                                     "the plan's price per email: its monthly price over the emails it includes, "
                                     "or its overage rate; from https://resend.com/pricing"),)
    # Resend takes an optional Idempotency-Key on email sends (``ParsedRequest.deduplicated_by``) but
    # lists no email by it, so it cannot name an uncertain call: Tollgate adds none of its own.
    idempotency_header: str | None = None
    decision_headers: frozenset[str] = frozenset()
    secret_patterns: tuple[str, ...] = (r"\bre_[A-Za-z0-9]{8,}_[A-Za-z0-9_]+",)  # API keys
    quickstart: Quickstart | None = None
    # What resend-python 2 sends (resend/request.py), minus Authorization.
    forward_request_headers = frozenset(
        {"content-type", "accept", "user-agent", "idempotency-key", "x-batch-validation"}
    )
    forward_response_headers = frozenset(
        {"content-type", "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset", "ratelimit-policy",
         "retry-after", "x-resend-daily-quota", "x-resend-monthly-quota", "x-request-id"}
    )

    def operations(self) -> Iterable[Operation]:
        """Every operation of Resend's spec, as policies name them (``GET /emails/{id}``)."""
        return tuple(entry.described(_name(entry).partition(" ")[2]) for entry in catalogue().operations.values())

    def tools(self) -> Sequence[Tool]:
        """One tool per operation of Resend's document (read once, vendors/resend/tools.py)."""
        return resend_tools.tools()

    def tool_request(
        self, tool: Tool, arguments: Mapping[str, Any], vault_key: str, account: str | None
    ) -> ToolRequest:
        return resend_tools.tool_request(tool, arguments, vault_key)

    def presented_credentials(self, headers: Mapping[str, str]) -> PresentedCredentials:
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return PresentedCredentials(None)
        return PresentedCredentials(value.strip() or None)

    def parse_request(
        self, method: str, path: str, query: bytes, headers: Mapping[str, str], body: bytes
    ) -> ParsedRequest:
        found, name = _route(method, path)
        try:
            return _parsed(method, path, name, found, query, headers, body)
        except RequestRejected as exc:
            exc.endpoint = name  # the blocked row names the operation it refused
            raise

    def price_lookup(self, request: ParsedRequest, referenced: RecordedObject | None) -> Lookup | None:
        if _operation(request).price == "broadcast":  # mails a segment: its size is read (broadcasts.py)
            return broadcasts.first_read(request)
        return None  # an email is priced from its recipients

    def after_lookup(self, request: ParsedRequest, looked_up: LookedUp) -> tuple[ParsedRequest, Lookup | None]:
        if _operation(request).price == "broadcast":
            return broadcasts.after(request, looked_up)
        return request, None

    def estimate_usd(
        self, request: ParsedRequest, referenced: RecordedObject | None = None, looked_up: LookedUp | None = None
    ) -> Decimal | None:
        rule = _operation(request).price
        if rule == "email":
            return (usd_per_email(request.price_scope) * request.units).quantize(MICRO)
        if rule == "free" or (rule == "broadcast" and request.params.get("send") is not True):
            return Decimal(0)  # a draft broadcast sends nothing
        if rule == "broadcast" and "contacts" in request.params:  # its segment's contacts, counted before the gate
            return (usd_per_email(request.price_scope) * int(request.params["contacts"])).quantize(MICRO)
        return None  # how many emails it sends is not in the request: cost_unknown unless priced_after

    def parse_response(
        self, request: ParsedRequest, status: int, headers: Mapping[str, str], body: bytes
    ) -> ParsedResponse:
        request_id = headers.get("x-request-id")
        if status >= 500 and request.moves_money:
            # A 5xx may come after Resend accepted the email: the estimate stands.
            return ParsedResponse(None, vendor_request_id=request_id, uncertain=True)
        if status >= 400:
            return ParsedResponse(Decimal(0), vendor_request_id=request_id)  # nothing sent, nothing billed
        obj = json_object(body)
        if request.endpoint == CANCEL:  # the scheduled email will never go: its own row settles at 0
            return ParsedResponse(Decimal(0), object_id=request.object_id, vendor_request_id=request_id,
                                  releases=request.object_id)
        operation = _operation(request)
        if operation.price != "email":
            cost = Decimal(0) if self.estimate_usd(request) == 0 else None  # unknown before, unknown still
            return ParsedResponse(cost, object_id=_id(obj) or request.object_id, vendor_request_id=request_id,
                                  credentials=issued_credentials(operation, obj))
        units = request.units
        object_id = _id(obj)
        if request.endpoint == BATCH:
            data = obj.get("data")
            ids = [_id(item) for item in data] if isinstance(data, list) else []
            object_id = next((i for i in ids if i), None)
            units -= refused_units(obj.get("errors"), request.params.get("units_per_email", ()))
        cost = (usd_per_email(request.price_scope) * max(units, 0)).quantize(MICRO)
        created = RecordedObject(object_id, "email") if object_id else None
        if _scheduled(request):  # billed when it goes, and a cancel may stop it: its estimate stays open
            cost = None
        return ParsedResponse(cost, object_id=object_id, vendor_request_id=request_id, created=created)

    def upstream_auth_headers(self, credential: UpstreamCredential) -> dict[str, str]:
        return {"authorization": f"Bearer {credential.secret}"}

    def render_error(self, error: VendorError) -> RenderedResponse:
        """Resend's ``{"statusCode", "name", "message"}``, picked for resend-python 2's classes.

        resend-python (resend/exceptions.py) chooses the class by (HTTP status, name):
        401 missing_api_key -> MissingApiKeyError (which replaces our message with its own),
        403 invalid_api_key -> InvalidApiKeyError, 400/422 validation_error -> ValidationError,
        429 rate_limit_exceeded -> RateLimitError, 500 application_error -> ApplicationError;
        anything else -> ResendError, the base class, with our message. So:

        * a missing key: 401 missing_api_key; any other auth failure: **403** invalid_api_key,
          as api.resend.com answers a bad key (the status differs from ``error.status`` here);
        * policy refusals (403): name ``restricted_api_key`` -> ResendError(code=403);
        * bad input (400, 422, and 413/414): ``validation_error`` -> ValidationError for 400/422;
        * 404 ``not_found``; 429 ``rate_limit_exceeded``; 5xx ``application_error``
          (ApplicationError for 500, ResendError for 502/503/504, keeping the retryable status).
        """
        status, name = _status_and_name(error)
        message = f"[tollgate:{error.reason}] {error.message}"
        body: dict[str, Any] = {"statusCode": status, "name": name, "message": message, "tollgate_reason": error.reason}
        if error.approval_id:
            body["approval_id"] = error.approval_id
        headers = {"content-type": "application/json"}
        if error.request_id:
            headers["x-request-id"] = error.request_id
        if error.retryable:
            headers["retry-after"] = "1"
        return RenderedResponse(status, headers, json.dumps(body).encode())

    def reconcile_path(self, account: str | None, object_id: str, endpoint: str | None = None) -> str | None:
        return None  # priced from the answer itself: nothing to fetch later

    def reconcile(self, status: int, body: bytes) -> FinalPrice:
        return FinalPrice(None, None, None, final=False)

    def outcome_lookup(self, call: UncertainCall, page: str | None) -> Lookup | None:
        return None  # no read names an email by the call that sent it: its estimate stands

    def outcome(self, call: UncertainCall, answer: LookedUp) -> Outcome:
        return Outcome(None)


def _status_and_name(error: VendorError) -> tuple[int, str]:
    if error.kind == "auth" or error.status == 401:
        return (401, "missing_api_key") if error.reason == "missing_key" else (403, "invalid_api_key")
    if error.status == 403:
        return 403, "restricted_api_key"
    if error.status == 404:
        return 404, "not_found"
    if error.status == 429:
        return 429, "rate_limit_exceeded"
    if error.status >= 500 or error.kind == "unavailable":
        return max(error.status, 500), "application_error"
    return error.status, "validation_error"


def _route(method: str, path: str) -> tuple[Match, str]:
    """The operation and its name (``GET /emails/{id}``), or a refusal that names what was refused."""
    try:
        found = catalogue().match(method, path)
    except RequestRejected as exc:
        exc.endpoint = catalogue().generic_template(method, path)
        raise
    if found is None:
        name = catalogue().generic_template(method, path)
        raise RequestRejected("unknown_operation", f"{name} is not in Resend's API description, so what it does and "
                              "costs is unknown: refused.", status=404, endpoint=name)
    return found, _name(found.operation)


def _name(entry: Entry) -> str:
    """How the audit row and policies name an operation: every placeholder ``{id}`` (``GET /contacts/{id}``)."""
    return f"{entry.method} {_PLACEHOLDER.sub('{id}', entry.template)}"


def _operation(request: ParsedRequest) -> Entry:
    return catalogue().operation_of(request.method, request.path)


def _parsed(method: str, path: str, name: str, found: Match, query: bytes, headers: Mapping[str, str],
            body: bytes) -> ParsedRequest:
    operation = found.operation
    flatform.decode(query, where="query string", repeatable=operation.lists)  # never ambiguous
    document = _document(headers, body, operation)
    if operation.price == "email":
        send = read_send(document, batch=name == BATCH)
        return ParsedRequest(
            method=method, path=path, endpoint=name, moves_money=True,
            params={"emails": send.emails, "units_per_email": send.units_per_email},
            idempotency_key=headers.get("idempotency-key"), deduplicated_by="idempotency-key",
            summary=send.summary,
            recipients=send.recipients, senders=send.senders, units=len(send.recipients),
        )
    if method == "GET" and document not in (None, {}):
        raise RequestRejected("unexpected_body", "A GET request carries no body.", status=INVALID)
    fields = document if isinstance(document, dict) else {}
    sender = address(fields.get("from"), "from") if operation.kind == "sends" else None
    recipient = address(fields.get(operation.to), operation.to) if operation.to else None
    params = broadcasts.params(name, fields) if operation.price == "broadcast" else {}
    return ParsedRequest(method, path, name, params=params, object_id=_object_id(found), objects=_sent_email(found),
                         moves_money=operation.kind == "sends", idempotency_key=headers.get("idempotency-key"),
                         recipients=(recipient,) if recipient else (), senders=(sender,) if sender else (),
                         segments=broadcasts.segments(params))


def _object_id(found: Match) -> str | None:
    """The id the path ends in, or the one object an action on it names (``/emails/{id}/cancel``),
    when it is an id (a contact's email address is not one)."""
    target = found.target
    if target is None and len(found.params) == 1:
        target = next(iter(found.params.values()))
    return target if target is not None and looks_like_id(target) else None


def _sent_email(found: Match) -> tuple[str, ...]:
    """The sent email a call acts on (``/emails/{email_id}...``; not an inbound one): the kind of object
    keys record, which objects.created_through_key holds to the key's own."""
    email = found.params.get("email_id") if found.operation.template.startswith("/emails/{email_id}") else None
    return (email,) if email is not None and looks_like_id(email) else ()


def _document(headers: Mapping[str, str], body: bytes, operation: Entry) -> Any:
    if not body:
        return None
    if operation.body == "multipart":  # a contact import's CSV file: forwarded, not read
        require_content_type(headers, "multipart/form-data", "Resend")
        return None
    require_content_type(headers, "application/json", "Resend")
    return strictjson.loads(body)


def _scheduled(request: ParsedRequest) -> bool:
    """An email sent later (``scheduled_at``), which ``POST /emails/{id}/cancel`` can still stop."""
    emails = request.params.get("emails", ())
    return any(isinstance(e, dict) and e.get("scheduled_at") for e in emails)


def _id(obj: Any) -> str | None:
    value = obj.get("id") if isinstance(obj, dict) else None
    return value if isinstance(value, str) else None
