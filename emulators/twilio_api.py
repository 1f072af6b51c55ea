"""A Twilio API emulator: an ASGI app that answers like api.twilio.com (2010-04-01).

Point twilio-python (or the Tollgate proxy's upstream) at it::

    app = create_app("AC" + "0" * 32, "auth_token")
    with serve_asgi(app) as base_url:
        client = twilio.rest.Client("AC" + "0" * 32, "auth_token")
        client.api.base_url = base_url   # twilio 9: the Api domain keeps its base URL here

Endpoints: Messages create (201), fetch, list; Calls create (201), fetch, list, update (200); buying a phone
number (``IncomingPhoneNumbers.json`` and its Local, Mobile and TollFree variants, 201), updating (200) and
releasing it (204); creating an API key (``Keys.json``, 201, its ``secret`` in the answer).
Bodies come from Twilio's published examples (see ``_twilio_store``): a new message
is ``status: "queued"`` with ``price: null``, as at Twilio.

Test hooks on ``app.state``:

* ``received``: one :class:`ReceivedRequest` per request, appended before answering.
* ``fail_next``: ``(status, body_dict)``; the next request (before authentication) is
  answered with it, then the hook is cleared.
* ``store``: the messages and calls (:class:`Store`); ``store.set_price(sid, "-0.00790")``
  plays Twilio pricing a message after delivery, so a later fetch returns the price.

Modelled on Twilio's behaviour: Basic auth with the Account SID and auth token, or an
API key (``SK...``) and its secret when given in ``api_keys``; 401 code 20003 otherwise;
the AccountSid in the path must be the authenticated account (else 404 20404, as
Twilio answers for resources of other accounts); ``Twilio-Request-Id`` on every answer;
validation errors with Twilio's codes (21604 missing To, 21211 invalid To, 21603 missing
From, 21602 missing Body, 21617 body over 1600 characters, 21201/21213/21205 for calls).
``MediaUrl`` (and the list params of calls) may repeat; other repeated keys keep the
last value, which is what many form parsers do and why Tollgate refuses them.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as StarletteRoute

from ._received import ReceivedRequest, record
from ._twilio_store import Obj, Store, TwilioApiError, example, new_call, new_message, new_number, new_sid, now, page

__all__ = ["ReceivedRequest", "Store", "create_app"]

_METHODS = ["GET", "POST", "DELETE", "PUT", "PATCH"]
_LISTS = frozenset({"MediaUrl", "PersistentAction", "StatusCallbackEvent", "RecordingStatusCallbackEvent"})
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_INVALID_NUMBERS = frozenset({"+15005550001"})  # Twilio's magic test number for "invalid"
_MAX_BODY = 1600


# -- handlers -----------------------------------------------------------------


def _address(params: dict[str, Any], name: str) -> str:
    value = params.get(name, "")
    channel, _, number = value.rpartition(":")
    return number if channel in ("", "whatsapp") else value


def _create_message(store: Store, account: str, params: dict[str, Any], path: str) -> tuple[int, Obj]:
    if not params.get("To"):
        raise TwilioApiError(400, 21604, "A 'To' phone number is required.")
    to = _address(params, "To")
    if not _E164.match(to) or to in _INVALID_NUMBERS:
        raise TwilioApiError(400, 21211, f"Invalid 'To' Phone Number: {params['To']}")
    if not params.get("From") and not params.get("MessagingServiceSid"):
        raise TwilioApiError(400, 21603, "A 'From' phone number is required.")
    if not params.get("Body") and not params.get("MediaUrl") and not params.get("ContentSid"):
        raise TwilioApiError(400, 21602, "Message body is required.")
    if len(params.get("Body", "")) > _MAX_BODY:
        raise TwilioApiError(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
    message = new_message(account, params)
    store.messages[message["sid"]] = message
    return 201, message


def _create_call(store: Store, account: str, params: dict[str, Any], path: str) -> tuple[int, Obj]:
    if not params.get("To"):
        raise TwilioApiError(400, 21201, "No 'To' number is specified")
    if not params.get("From"):
        raise TwilioApiError(400, 21213, "No 'From' number is specified")
    if not _E164.match(params["To"]) or params["To"] in _INVALID_NUMBERS:
        raise TwilioApiError(400, 21211, f"Invalid 'To' Phone Number: {params['To']}")
    if not (params.get("Url") or params.get("Twiml") or params.get("ApplicationSid")):
        raise TwilioApiError(400, 21205, "Url parameter is required.")
    call = new_call(account, params)
    store.calls[call["sid"]] = call
    return 201, call


def _update_call(store: Store, account: str, params: dict[str, Any], path: str, sid: str) -> tuple[int, Obj]:
    """Twilio's Call update: new TwiML (Url or Twiml, mutually exclusive, as its API description says)
    or a Status of canceled/completed for the live call."""
    call = store.get("calls", sid, path)
    if params.get("Url") and params.get("Twiml"):
        raise TwilioApiError(400, 21220, "Url and Twiml are mutually exclusive.")
    if params.get("Status") in ("canceled", "completed"):
        call["status"] = params["Status"]
    call["date_updated"] = now()
    return 200, call


def _buy_number(variant: str) -> Callable[..., tuple[int, Obj]]:
    def buy(store: Store, account: str, params: dict[str, Any], path: str) -> tuple[int, Obj]:
        number, area = params.get("PhoneNumber"), params.get("AreaCode")
        if variant and not number:
            raise TwilioApiError(400, 21421, "PhoneNumber is required.")
        if not (number or area):
            raise TwilioApiError(400, 21421, "You must provide an AreaCode or a PhoneNumber.")
        if number and not _E164.match(number):
            raise TwilioApiError(400, 21421, f"PhoneNumber {number} is invalid.")
        bought = new_number(account, params, variant)
        store.numbers[bought["sid"]] = bought
        return 201, bought

    return buy


def _update_number(store: Store, account: str, params: dict[str, Any], path: str, sid: str) -> tuple[int, Obj]:
    number = store.get("numbers", sid, path)
    fields = {"FriendlyName": "friendly_name", "SmsUrl": "sms_url", "VoiceUrl": "voice_url"}
    number.update({fields[k]: v for k, v in params.items() if k in fields})
    return 200, number


def _release_number(store: Store, account: str, params: dict[str, Any], path: str, sid: str) -> tuple[int, Obj]:
    store.get("numbers", sid, path)
    del store.numbers[sid]
    return 204, {}


def _new_api_key(store: Store, account: str, params: dict[str, Any], path: str) -> tuple[int, Obj]:
    """An API key (``SK...``) and its secret, shown in this answer only, as Twilio does."""
    key = example("/Accounts/{AccountSid}/Keys.json", "post", "201", "create")
    key.update(sid=new_sid("SK"), friendly_name=params.get("FriendlyName", ""), secret=secrets.token_hex(16))
    store.keys[key["sid"]] = key
    return 201, key


def _fetcher(kind: str) -> Callable[..., tuple[int, Obj]]:
    def fetch(store: Store, account: str, params: dict[str, Any], path: str, sid: str) -> tuple[int, Obj]:
        return 200, store.get(kind, sid, path)

    return fetch


def _lister(kind: str) -> Callable[..., tuple[int, Obj]]:
    def list_(store: Store, account: str, params: dict[str, Any], path: str) -> tuple[int, Obj]:
        items = list(reversed(getattr(store, kind).values()))  # newest first, as Twilio lists
        for name in ("To", "From"):
            if params.get(name):
                items = [item for item in items if item.get(name.lower()) == params[name]]
        return 200, page(kind, items, path, int(params.get("PageSize") or 50))

    return list_


_ACCOUNT = r"/2010-04-01/Accounts/(?P<account>AC[0-9a-f]{32})"
ROUTES: tuple[tuple[str, re.Pattern[str], Callable[..., tuple[int, Obj]]], ...] = tuple(
    (method, re.compile(_ACCOUNT + tail + r"\Z"), handler)
    for method, tail, handler in (
        ("POST", "/Messages.json", _create_message),
        ("GET", "/Messages.json", _lister("messages")),
        ("GET", r"/Messages/(?P<sid>(?:SM|MM)[0-9a-f]{32})\.json", _fetcher("messages")),
        ("POST", "/Calls.json", _create_call),
        ("GET", "/Calls.json", _lister("calls")),
        ("GET", r"/Calls/(?P<sid>CA[0-9a-f]{32})\.json", _fetcher("calls")),
        ("POST", r"/Calls/(?P<sid>CA[0-9a-f]{32})\.json", _update_call),
        *(("POST", rf"/IncomingPhoneNumbers{variant}\.json", _buy_number(variant))
          for variant in ("", "/Local", "/Mobile", "/TollFree")),
        ("POST", r"/IncomingPhoneNumbers/(?P<sid>PN[0-9a-f]{32})\.json", _update_number),
        ("DELETE", r"/IncomingPhoneNumbers/(?P<sid>PN[0-9a-f]{32})\.json", _release_number),
        ("POST", "/Keys.json", _new_api_key),
    )
)


# -- request pipeline ------------------------------------------------------------


def _authenticated_account(app: Starlette, authorization: str | None) -> str | None:
    scheme, _, credentials = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(credentials.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    state = app.state
    if user == state.account_sid and secrets.compare_digest(password, state.auth_token):
        return user
    if user in state.api_keys and secrets.compare_digest(password, state.api_keys[user]):
        return state.account_sid
    return None


def _params(request: ReceivedRequest) -> dict[str, Any]:
    params: dict[str, Any] = {}
    sources = [request.query.encode()]
    if request.method == "POST":
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if request.body and content_type != "application/x-www-form-urlencoded":
            raise TwilioApiError(400, 20001, f"Unsupported Content-Type: {content_type or '(none)'}")
        sources.append(request.body)
    for source in sources:
        try:
            pairs = parse_qsl(source.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError as exc:
            raise TwilioApiError(400, 20001, "Invalid request body encoding") from exc
        for key, value in pairs:
            if key in _LISTS:
                params.setdefault(key, []).append(value)
            else:
                params[key] = value
    return params


def _answer(app: Starlette, request: ReceivedRequest) -> tuple[int, Obj]:
    state = app.state
    if state.fail_next is not None:
        (status, body), state.fail_next = state.fail_next, None
        return status, body
    account = _authenticated_account(app, request.headers.get("authorization"))
    if account is None:
        return 401, TwilioApiError(401, 20003, "Authenticate").body()
    try:
        for method, pattern, handler in ROUTES:
            found = pattern.match(request.path)
            if found and method == request.method:
                ids = found.groupdict()
                if ids.pop("account") != account:
                    break  # another account's resources: Twilio says "not found"
                return handler(state.store, account, _params(request), request.path, **ids)
        raise TwilioApiError(404, 20404, f"The requested resource {request.path} was not found")
    except TwilioApiError as exc:
        return exc.status, exc.body()


async def _endpoint(request: Request) -> Response:
    received = await record(request)
    status, body = _answer(request.app, received)
    headers = {"Twilio-Request-Id": "RQ" + secrets.token_hex(16), "Twilio-Concurrent-Requests": "1"}
    if status == 204:  # a delete: no content
        return Response(None, status, headers)
    return Response(json.dumps(body), status, headers, media_type="application/json; charset=utf-8")


def create_app(
    account_sid: str = "AC" + "0" * 32, auth_token: str = "emulator_auth_token", api_keys: dict[str, str] | None = None
) -> Starlette:
    """A fresh emulator for one account, accepting its auth token and the given ``{SK...: secret}`` API keys."""
    app = Starlette(routes=[StarletteRoute("/{path:path}", _endpoint, methods=_METHODS)])
    app.state.account_sid = account_sid
    app.state.auth_token = auth_token
    app.state.api_keys = dict(api_keys or {})
    app.state.received = []
    app.state.fail_next = None
    app.state.store = Store()
    return app
