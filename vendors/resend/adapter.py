"""Resend (api.resend.com): strict JSON requests, priced per recipient.

What the core gets from this adapter
------------------------------------
* ``presented_credentials``: ``Authorization: Bearer <vault key>`` (what resend-python sends
  from ``resend.api_key``). ``account`` is always None: a Resend key is its own account.
* ``parse_request`` -> ``ParsedRequest`` for the governed endpoints ``POST /emails``,
  ``POST /emails/batch`` and ``GET /emails/{id}``:

  - sends: ``moves_money=True``; ``recipients`` = every To, Cc and Bcc address of every email,
    bare and lower-cased, in order, duplicates kept; ``senders`` = the distinct From addresses;
    ``units`` = ``len(recipients)`` (Resend bills each recipient as one email);
    ``params`` = ``{"emails": (email objects...), "units_per_email": (n, ...)}``;
    ``idempotency_key`` from the ``Idempotency-Key`` header;
  - fetch: ``object_id`` = the email id from the path;
  - ``summary``: emails, recipients (counts), from and recipient_domains (comma-separated).
    Never subjects, bodies or recipient addresses.

  Reasons it refuses with: ``unsupported_content_type``, ``invalid_utf8``,
  ``invalid_json``, ``duplicate_parameter`` (a JSON key twice) and ``ambiguous_parameter``
  (``to`` and ``To``) with status 400; ``invalid_parameter``, ``invalid_recipient``,
  ``invalid_sender``, ``too_many_to_addresses`` (more than 50 in one email's ``to``; the
  policy's own ``max_recipients`` denial is ``too_many_recipients``), ``batch_too_large`` (more
  than 100 emails), ``invalid_batch`` (not an array, or empty), ``unexpected_body``
  (a GET body other than ``{}``, which resend-python sends) with status 422 like Resend's own
  validation errors; ``malformed_form`` and friends for a bad query string; ``invalid_path``
  (404) for a look-alike of a governed path (``/Emails``, ``/emails/Batch``).
* ``estimate_usd`` = units x ``usd_per_email`` from vendors/pricing/resend.json.
* ``parse_response``: same as the estimate for a 2xx send (Resend's answers carry no price),
  minus the emails a permissive batch reports in ``errors``; 0 for errors and fetches.
  ``object_id`` and ``created`` (kind "email"): the email's id; for a batch, the first id only
  (``ParsedResponse.created`` holds one object).
* ``render_error``: see ``render_error`` below for how statuses and names map onto
  resend-python's exception classes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from vendors import emailaddress, flatform, strictjson
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
from vendors.endpoints import Endpoint, EndpointTable
from vendors.money import MICRO, PRICING_DIR
from vendors.wire import json_object, require_content_type

MAX_TO = 50
MAX_BATCH = 100
SEND, BATCH, FETCH = "send", "batch", "fetch"
ENDPOINTS = EndpointTable(
    [
        Endpoint("POST", "/emails/batch", BATCH),
        Endpoint("POST", "/emails", SEND),
        Endpoint("GET", "/emails/{id}", FETCH),
    ]
)
GOVERNED_SEGMENTS = ("emails", "batch")
ADDRESS_FIELDS = ("to", "cc", "bcc")
INVALID = 422  # Resend answers invalid input with 422 validation_error


@dataclass(frozen=True)
class ResendPrices:
    source: str
    as_of: str
    usd_per_email: Decimal


@lru_cache(maxsize=1)
def prices() -> ResendPrices:
    data = json.loads((PRICING_DIR / "resend.json").read_text())
    return ResendPrices(data["source"], data["as_of"], Decimal(str(data["usd_per_email"])))


class ResendAdapter:
    name = "resend"
    label = "Resend"
    colour = "#047857"
    default_upstream = "https://api.resend.com"
    hosts: Mapping[str, str] = MappingProxyType({})  # one API host
    requires_account = False
    prices_later = False
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
        sends = {SEND, BATCH}  # every recipient of every email is one billed email
        return (Operation(e.method, e.template, "reaches_people" if e.facts in sends else "reads",
                          "request" if e.facts in sends else "free") for e in ENDPOINTS.endpoints())

    def presented_credentials(self, headers: Mapping[str, str]) -> PresentedCredentials:
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return PresentedCredentials(None)
        return PresentedCredentials(value.strip() or None)

    def parse_request(
        self, method: str, path: str, query: bytes, headers: Mapping[str, str], body: bytes
    ) -> ParsedRequest:
        _refuse_lookalikes(path)
        endpoint, path_params, name = ENDPOINTS.match(method, path)
        kind = endpoint.facts if endpoint else None
        flatform.decode(query, where="query string")  # not used by these endpoints, but never ambiguous
        document = _document(headers, body)
        if kind == FETCH:
            if document not in (None, {}):
                raise RequestRejected("unexpected_body", "A GET request carries no body.", status=INVALID)
            return ParsedRequest(method, path, name, object_id=path_params["id"])
        if kind is None:
            return ParsedRequest(method, path, name)
        emails = _emails(document, batch=kind == BATCH)
        per_email = [_addresses(email, index if kind == BATCH else None) for index, email in enumerate(emails)]
        recipients = tuple(address for _, addresses in per_email for address in addresses)
        senders = tuple(dict.fromkeys(sender for sender, _ in per_email))
        domains = sorted({emailaddress.domain(address) for address in recipients})
        return ParsedRequest(
            method=method,
            path=path,
            endpoint=name,
            params={"emails": tuple(emails), "units_per_email": tuple(len(a) for _, a in per_email)},
            moves_money=True,
            idempotency_key=headers.get("idempotency-key"),
            summary={"emails": len(emails), "recipients": len(recipients), "from": ", ".join(senders),
                     "recipient_domains": ", ".join(domains)},
            recipients=recipients,
            senders=senders,
            units=len(recipients),
        )

    def price_lookup(self, request: ParsedRequest, referenced: RecordedObject | None) -> Lookup | None:
        return None  # an email is priced from its recipients

    def estimate_usd(
        self, request: ParsedRequest, referenced: RecordedObject | None = None, looked_up: LookedUp | None = None
    ) -> Decimal | None:
        if not request.moves_money:
            return Decimal(0)
        return (prices().usd_per_email * request.units).quantize(MICRO)

    def parse_response(
        self, request: ParsedRequest, status: int, headers: Mapping[str, str], body: bytes
    ) -> ParsedResponse:
        request_id = headers.get("x-request-id")
        if status >= 400:
            return ParsedResponse(Decimal(0), vendor_request_id=request_id)  # nothing sent, nothing billed
        obj = json_object(body)
        if not request.moves_money:
            return ParsedResponse(Decimal(0), object_id=_id(obj) or request.object_id, vendor_request_id=request_id)
        units = request.units
        object_id = _id(obj)
        if request.endpoint == f"POST /emails/{BATCH}":
            data = obj.get("data")
            ids = [_id(item) for item in data] if isinstance(data, list) else []
            object_id = next((i for i in ids if i), None)
            units -= _refused_units(obj.get("errors"), request.params.get("units_per_email", ()))
        cost = (prices().usd_per_email * max(units, 0)).quantize(MICRO)
        created = RecordedObject(object_id, "email") if object_id else None
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

    def reconcile_path(self, account: str | None, object_id: str) -> str | None:
        return None  # priced from the answer itself: nothing to fetch later

    def reconcile(self, status: int, body: bytes) -> FinalPrice:
        return FinalPrice(None, None, None, final=False)


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


def _refuse_lookalikes(path: str) -> None:
    """``/Emails`` or ``/emails/Batch`` may reach the same handler at Resend; Tollgate would not know it."""
    segments = path.strip("/").split("/")
    for segment, governed in zip(segments[:2], GOVERNED_SEGMENTS, strict=False):  # /emails has one
        if segment.split(".")[0].lower() == governed and segment != governed:
            raise RequestRejected("invalid_path", f"Use /{governed} exactly, not {segment[:40]!r}.", status=404)
        if segment != governed:
            return


def _document(headers: Mapping[str, str], body: bytes) -> Any:
    if not body:
        return None
    require_content_type(headers, "application/json", "Resend")
    return strictjson.loads(body)


def _emails(document: Any, *, batch: bool) -> list[dict[str, Any]]:
    if not batch:
        if not isinstance(document, dict):
            raise RequestRejected("invalid_parameter", "The body must be a JSON object (one email).", status=INVALID)
        return [document]
    if not isinstance(document, list) or not 1 <= len(document) <= MAX_BATCH:
        reason = "batch_too_large" if isinstance(document, list) and document else "invalid_batch"
        raise RequestRejected(reason, f"A batch is a JSON array of 1-{MAX_BATCH} emails.", status=INVALID)
    if not all(isinstance(email, dict) for email in document):
        raise RequestRejected("invalid_parameter", "Every email in a batch must be a JSON object.", status=INVALID)
    return document


def _addresses(email: dict[str, Any], index: int | None) -> tuple[str, list[str]]:
    """(bare From, [bare To..., Cc..., Bcc...]) of one email."""
    where = "" if index is None else f" (email {index})"
    for key in email:
        if key.lower() in ("from", *ADDRESS_FIELDS) and key not in ("from", *ADDRESS_FIELDS):
            raise RequestRejected("ambiguous_parameter", f"Use {key.lower()!r}, not {key!r}{where}.", param=key)
    sender = email.get("from")
    try:
        sender = emailaddress.bare(sender) if isinstance(sender, str) else None
    except ValueError:
        sender = None
    if sender is None:
        raise RequestRejected("invalid_sender", f"'from' must be 'a@b.com' or 'Name <a@b.com>'{where}.",
                              status=INVALID, param="from")
    recipients: list[str] = []
    for field in ADDRESS_FIELDS:
        recipients += _field(email.get(field), field, where, required=field == "to")
    return sender, recipients


def _field(value: Any, field: str, where: str, *, required: bool) -> list[str]:
    if value is None and not required:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or (required and not items) or not all(isinstance(v, str) for v in items):
        raise RequestRejected("invalid_recipient", f"'{field}' must be an address or a non-empty list of them{where}.",
                              status=INVALID, param=field)
    if field == "to" and len(items) > MAX_TO:
        raise RequestRejected("too_many_to_addresses", f"'to' holds at most {MAX_TO} addresses{where}.",
                              status=INVALID, param="to")
    try:
        return [emailaddress.bare(item) for item in items]
    except ValueError as exc:
        raise RequestRejected("invalid_recipient", f"Invalid '{field}'{where}: {exc}.", status=INVALID,
                              param=field) from None


def _refused_units(errors: Any, per_email: Any) -> int:
    """Recipients of the emails a permissive batch did not send (``errors: [{"index": i}]``)."""
    if not isinstance(errors, list) or not isinstance(per_email, tuple):
        return 0
    indexes = {e.get("index") for e in errors if isinstance(e, dict)}
    return sum(per_email[i] for i in indexes if type(i) is int and 0 <= i < len(per_email))


def _id(obj: Any) -> str | None:
    value = obj.get("id") if isinstance(obj, dict) else None
    return value if isinstance(value, str) else None
