"""A Resend API emulator: an ASGI app that answers like api.resend.com.

Point resend-python (or the Tollgate proxy's upstream) at it::

    app = create_app("re_test_emulator")
    with serve_asgi(app) as base_url:
        resend.api_key = "re_test_emulator"
        resend.api_url = base_url          # resend 2 reads it on every request

Endpoints: ``POST /emails`` -> ``{"id": <uuid>}``; ``POST /emails/batch`` (a JSON array of
at most 100 emails) -> ``{"data": [{"id"}...]}``, or with ``x-batch-validation: permissive``
``{"data": [...valid...], "errors": [{"index", "message"}]}``; ``GET /emails/{id}`` -> the
email, built from the ``Email`` schema's examples in Resend's OpenAPI description
(``emulators/fixtures/resend-openapi.json``, resend/resend-openapi ``resend.json``);
``GET /emails/receiving`` (inbound mail, ``ListReceivedEmailsResponse``'s examples);
``GET /contacts/{id or percent-encoded email}`` (``app.state.contacts``, by id and address);
``POST /emails/{id}/cancel`` (a scheduled email only: ``{"object": "email", "id"}``);
broadcasts (``POST /broadcasts``, ``GET /broadcasts/{id}``, ``POST /broadcasts/{id}/send``,
shaped from ``CreateBroadcastResponseSuccess`` / ``GetBroadcastResponseSuccess``) to segments made
with ``add_segment``, whose contacts ``GET /contacts?segment_id=`` lists 100 a page;
contacts by id or address (update, remove, their segments and topics) and suppressions by
address, answered with their schemas' examples; ``POST /api-keys`` -> ``{"id", "token"}`` (a new
``re_...`` key, which is why Tollgate classifies it as issuing credentials).

Errors in Resend's shape ``{"statusCode", "name", "message"}``: 401 missing_api_key, 403
invalid_api_key, 422 missing_required_field / validation_error (invalid or more than 50
``to`` addresses, a batch over 100), 404 not_found, 409 invalid_idempotent_request (an
``Idempotency-Key`` reused with another body; reused with the same body it replays the
first answer and sends nothing).

Test hooks on ``app.state``: ``received`` (:class:`ReceivedRequest` per request),
``fail_next`` (``(status, body_dict)`` answers the next request, then clears), ``emails``
(sent emails by id), ``segments``, ``broadcasts``, ``broadcast_emails``, ``api_keys`` (issued).
"""

from __future__ import annotations

import copy
import functools
import json
import re
import secrets
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as StarletteRoute

from ._received import ReceivedRequest, record

__all__ = ["ReceivedRequest", "create_app"]

SPEC_PATH = Path(__file__).resolve().parent / "fixtures" / "resend-openapi.json"
_METHODS = ["GET", "POST", "DELETE", "PUT", "PATCH"]
_ADDRESS = re.compile(r"^(?:[^<>]*<\s*)?([^@\s<>]+@[^@\s<>]+\.[A-Za-z]{2,})\s*>?\s*$")
MAX_TO, MAX_BATCH = 50, 100

Obj = dict[str, Any]


class ResendApiError(Exception):
    def __init__(self, status: int, name: str, message: str):
        super().__init__(message)
        self.status, self.name, self.message = status, name, message

    def body(self) -> Obj:
        return {"statusCode": self.status, "name": self.name, "message": self.message}


@functools.cache
def _schemas() -> Obj:
    schemas: Obj = json.loads(SPEC_PATH.read_text(encoding="utf-8"))["components"]["schemas"]
    return schemas


def _from_examples(schema: Obj) -> Obj:
    """An object built from the examples of a schema's properties."""
    return {name: prop.get("example") for name, prop in schema["properties"].items()}


def _email_example() -> Obj:
    return _from_examples(_schemas()["Email"])


def _as_list(value: Any) -> list[Any]:
    if value is None or isinstance(value, list):
        return list(value or [])
    if isinstance(value, str):
        return [value]
    raise ResendApiError(422, "validation_error", "Invalid address field: expected a string or an array of strings.")


def _validate(email: Any) -> None:
    if not isinstance(email, dict):
        raise ResendApiError(422, "validation_error", "Invalid request body: expected an object.")
    for field in ("from", "to", "subject"):
        if not email.get(field):
            raise ResendApiError(422, "missing_required_field", f"Missing `{field}` field.")
    if not _ADDRESS.match(str(email["from"])):
        raise ResendApiError(
            422, "validation_error",
            "Invalid `from` field. The email address needs to follow the `email@example.com` or "
            "`Name <email@example.com>` format.",
        )
    if len(_as_list(email["to"])) > MAX_TO:
        raise ResendApiError(
            422, "validation_error", f"Too many recipients in the `to` field. The maximum is {MAX_TO}."
        )
    for field in ("to", "cc", "bcc"):
        for address in _as_list(email.get(field)):
            if not isinstance(address, str) or not _ADDRESS.match(address):
                raise ResendApiError(
                    422, "validation_error",
                    f"Invalid `{field}` field. The email address needs to follow the `email@example.com` or "
                    "`Name <email@example.com>` format.",
                )


def _store(app: Starlette, email: Obj) -> str:
    stored = copy.deepcopy(_email_example())
    email_id = str(uuid.uuid4())
    stored.update(
        id=email_id, object="email", to=_as_list(email["to"]), cc=_as_list(email.get("cc")),
        bcc=_as_list(email.get("bcc")), reply_to=_as_list(email.get("reply_to")), subject=email["subject"],
        html=email.get("html"), text=email.get("text"), last_event="queued",
        created_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00"),
        message_id=f"<{email_id}@emulator.resend.dev>", **{"from": email["from"]},
    )
    if email.get("scheduled_at"):
        stored.update(last_event="scheduled", scheduled_at=email["scheduled_at"])
    app.state.emails[email_id] = stored
    return email_id


def _send(app: Starlette, request: ReceivedRequest, payload: Any) -> Obj:
    _validate(payload)
    return {"id": _store(app, payload)}


def _batch(app: Starlette, request: ReceivedRequest, payload: Any) -> Obj:
    if not isinstance(payload, list) or not payload:
        raise ResendApiError(422, "validation_error", "Invalid request body: expected an array of emails.")
    if len(payload) > MAX_BATCH:
        raise ResendApiError(422, "validation_error", f"Too many emails in the batch. The maximum is {MAX_BATCH}.")
    permissive = request.headers.get("x-batch-validation", "strict") == "permissive"
    errors: list[Obj] = []
    valid: list[Obj] = []
    for index, email in enumerate(payload):
        try:
            _validate(email)
            valid.append(email)
        except ResendApiError as exc:
            if not permissive:
                raise
            errors.append({"index": index, "message": exc.message})
    answer: Obj = {"data": [{"id": _store(app, email)} for email in valid]}
    if permissive:
        answer["errors"] = errors
    return answer


def _received_emails(app: Starlette, request: ReceivedRequest) -> Obj:
    schema = _schemas()["ListReceivedEmailsResponse"]
    return {**_from_examples(schema), "data": [_from_examples(schema["properties"]["data"]["items"])]}


def _contact(app: Starlette, identifier: str) -> Obj:
    wanted = unquote(identifier)  # resend-python quotes an address: ana%40acme.example
    for contact in app.state.contacts:
        if wanted in (contact["id"], contact["email"]):
            return copy.deepcopy(contact)
    raise ResendApiError(404, "not_found", "Contact not found")


def _cancel(app: Starlette, email_id: str) -> Obj:
    """``POST /emails/{id}/cancel``: only a scheduled email can be; the answer is its ``Email`` object."""
    email = app.state.emails.get(email_id)
    if email is None:
        raise ResendApiError(404, "not_found", "Email not found")
    if email["last_event"] != "scheduled":
        raise ResendApiError(422, "validation_error", "Only a scheduled email can be canceled.")
    email["last_event"] = "canceled"
    return {"object": "email", "id": email_id}


def _contacts(app: Starlette, request: ReceivedRequest) -> Obj:
    """``GET /contacts[?segment_id=&limit=&after=]``: ``ListContactsResponseSuccess``, a page at a time."""
    query = dict(parse_qsl(request.query))
    segment = query.get("segment_id")
    if segment is not None and segment not in app.state.segments:
        raise ResendApiError(404, "not_found", "Segment not found")
    everyone = app.state.segments[segment] if segment is not None else app.state.contacts
    limit = int(query.get("limit", "10"))
    if not 1 <= limit <= 100:
        raise ResendApiError(422, "validation_error", "The `limit` parameter must be between 1 and 100.")
    ids = [c["id"] for c in everyone]
    start = ids.index(query["after"]) + 1 if query.get("after") in ids else 0
    page = everyone[start:start + limit]
    return {"object": "list", "has_more": start + limit < len(everyone), "data": copy.deepcopy(page)}


def add_segment(app: Starlette, size: int) -> str:
    """A segment of ``size`` contacts (``u<i>@acme.example``); its id."""
    segment_id = str(uuid.uuid4())
    app.state.segments[segment_id] = [
        {**_from_examples(_schemas()["ListContactsResponseSuccess"]["properties"]["data"]["items"]),
         "id": str(uuid.uuid4()), "email": f"u{i}@acme.example"} for i in range(size)]
    return segment_id


def _create_broadcast(app: Starlette, request: ReceivedRequest, payload: Any) -> Obj:
    if not isinstance(payload, dict):
        raise ResendApiError(422, "validation_error", "Invalid request body: expected an object.")
    for field in ("from", "subject"):
        if not payload.get(field):
            raise ResendApiError(422, "missing_required_field", f"Missing `{field}` field.")
    segment = payload.get("segment_id") or payload.get("audience_id")
    if segment not in app.state.segments:
        raise ResendApiError(422, "validation_error", "The `segment_id` does not name a segment.")
    broadcast_id = str(uuid.uuid4())
    app.state.broadcasts[broadcast_id] = {
        **_from_examples(_schemas()["GetBroadcastResponseSuccess"]), "id": broadcast_id, "segment_id": segment,
        "audience_id": segment, "from": payload["from"], "subject": payload["subject"], "status": "draft"}
    if payload.get("send") is True:
        _send_broadcast(app, broadcast_id)
    return {"id": broadcast_id, "object": "broadcast"}


def _broadcast(app: Starlette, broadcast_id: str) -> Obj:
    broadcast = app.state.broadcasts.get(broadcast_id)
    if broadcast is None:
        raise ResendApiError(404, "not_found", "Broadcast not found")
    return broadcast  # type: ignore[no-any-return]


def _send_broadcast(app: Starlette, broadcast_id: str) -> Obj:
    """``POST /broadcasts/{id}/send``: one email to every contact of the broadcast's segment."""
    broadcast = _broadcast(app, broadcast_id)
    if broadcast["status"] != "draft":
        raise ResendApiError(422, "validation_error", "Only a draft broadcast can be sent.")
    broadcast["status"] = "queued"
    app.state.broadcast_emails[broadcast_id] = [c["email"] for c in app.state.segments[broadcast["segment_id"]]]
    return {"id": broadcast_id}


def _new_api_key(app: Starlette, request: ReceivedRequest, payload: Any) -> Obj:
    if not isinstance(payload, dict) or not payload.get("name"):
        raise ResendApiError(422, "missing_required_field", "Missing `name` field.")
    issued = {"id": str(uuid.uuid4()), "token": "re_" + secrets.token_hex(4) + "_" + secrets.token_urlsafe(18)}
    app.state.api_keys.append(issued)
    return issued


# Operations that name a contact by id or address (resend-python quotes the address into the
# path) or a suppressed address, answered with their success schema's examples: what the tests
# need of them is that they reach Resend, and what Tollgate records of the address.
_BY_ADDRESS = (
    ("PATCH", r"/contacts/[^/]+", "UpdateContactResponseSuccess"),
    ("DELETE", r"/contacts/[^/]+", "RemoveContactResponseSuccess"),
    ("GET", r"/contacts/[^/]+/segments", "ListContactSegmentsResponseSuccess"),
    ("POST", r"/contacts/[^/]+/segments/[^/]+", "AddContactToSegmentResponseSuccess"),
    ("DELETE", r"/contacts/[^/]+/segments/[^/]+", "RemoveContactFromSegmentResponseSuccess"),
    ("GET", r"/contacts/[^/]+/topics", "GetContactTopicsResponseSuccess"),
    ("PATCH", r"/contacts/[^/]+/topics", "UpdateContactTopicsResponseSuccess"),
    ("GET", r"/suppressions/[^/]+", "GetSuppressionResponseSuccess"),
    ("DELETE", r"/suppressions/[^/]+", "RemoveSuppressionResponseSuccess"),
)


def _by_address(request: ReceivedRequest) -> Obj | None:
    for method, pattern, schema in _BY_ADDRESS:
        if request.method == method and re.fullmatch(pattern, request.path):
            return _from_examples(_schemas()[schema])
    return None


def _route(app: Starlette, request: ReceivedRequest) -> Obj:
    if (by_address := _by_address(request)) is not None:
        return by_address
    if request.method == "GET" and request.path == "/emails/receiving":
        return _received_emails(app, request)
    if request.method == "GET" and (found := re.fullmatch(r"/contacts/([^/]+)", request.path)):
        return _contact(app, found.group(1))
    if request.method == "GET" and (found := re.fullmatch(r"/emails/([^/]+)", request.path)):
        email = app.state.emails.get(found.group(1))
        if email is None:
            raise ResendApiError(404, "not_found", "Email not found")
        return copy.deepcopy(email)
    if request.method == "POST" and (found := re.fullmatch(r"/emails/([^/]+)/cancel", request.path)):
        return _cancel(app, found.group(1))
    if request.method == "GET" and request.path == "/contacts":
        return _contacts(app, request)
    if request.method == "GET" and (found := re.fullmatch(r"/broadcasts/([^/]+)", request.path)):
        return copy.deepcopy(_broadcast(app, found.group(1)))
    if request.method == "POST" and (found := re.fullmatch(r"/broadcasts/([^/]+)/send", request.path)):
        return _send_broadcast(app, found.group(1))
    handler = {"/emails": _send, "/emails/batch": _batch, "/api-keys": _new_api_key,
               "/broadcasts": _create_broadcast}.get(request.path)
    if request.method != "POST" or handler is None:
        raise ResendApiError(404, "not_found", "The requested endpoint does not exist.")
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise ResendApiError(422, "validation_error", "Invalid request body: expected application/json.")
    try:
        payload = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        raise ResendApiError(422, "validation_error", "Invalid JSON in request body.") from None
    key = request.headers.get("idempotency-key")
    if key is None:
        return handler(app, request, payload)
    saved = app.state.idempotency.get(key)
    if saved is not None:
        if saved[0] != (request.path, request.body):
            raise ResendApiError(409, "invalid_idempotent_request",
                                 "Same idempotency key used with a different request payload.")
        return copy.deepcopy(saved[1])
    answer = handler(app, request, payload)
    app.state.idempotency[key] = ((request.path, request.body), copy.deepcopy(answer))
    return answer


def _answer(app: Starlette, request: ReceivedRequest) -> tuple[int, Obj]:
    state = app.state
    if state.fail_next is not None:
        (status, body), state.fail_next = state.fail_next, None
        return status, body
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return 401, ResendApiError(401, "missing_api_key", "Missing API key in the authorization header").body()
    if not secrets.compare_digest(key.strip().encode(), state.api_key.encode()):
        return 403, ResendApiError(403, "invalid_api_key", "API key is invalid").body()
    try:
        return 200, _route(app, request)
    except ResendApiError as exc:
        return exc.status, exc.body()


async def _endpoint(request: Request) -> Response:
    received = await record(request)
    status, body = _answer(request.app, received)
    limits = {"ratelimit-limit": "2", "ratelimit-remaining": "1", "ratelimit-reset": "1"}
    return Response(json.dumps(body), status, limits, media_type="application/json")


def create_app(api_key: str = "re_test_emulator") -> Starlette:
    """A fresh emulator accepting ``api_key`` only."""
    app = Starlette(routes=[StarletteRoute("/{path:path}", _endpoint, methods=_METHODS)])
    app.state.api_key = api_key
    app.state.received = []
    app.state.fail_next = None
    app.state.emails = {}
    app.state.idempotency = {}
    app.state.segments = {}  # segment id -> its contacts (add_segment)
    app.state.broadcasts = {}
    app.state.broadcast_emails = {}  # broadcast id -> the addresses its send mailed
    app.state.api_keys = []  # every key POST /api-keys issued ({"id", "token"}), for the tests to look for
    app.state.contacts = [{**_from_examples(_schemas()["GetContactResponseSuccess"]), "id": str(uuid.uuid4()),
                           "email": "ana@acme.example"}]
    return app
