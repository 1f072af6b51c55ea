"""A Stripe API emulator: an ASGI app that answers like api.stripe.com (every operation stripe-python
can send that moves money, on v1 and v2, and the objects they act on), and
like files.stripe.com and meter-events.stripe.com for the routes stripe-python sends there
(``_stripe_bodies``: /v2 JSON bodies, multipart file uploads).

Point a Stripe client (or the Tollgate proxy's upstream) at it::

    app = create_app("sk_test_emulator")
    with serve_asgi(app) as base_url:
        client = stripe.StripeClient("sk_test_emulator", base_addresses={"api": base_url})

Response bodies are built from Stripe's own example objects
(``emulators/fixtures/stripe-fixtures3.json``); see ``_stripe_store``.

Test hooks on ``app.state``:

* ``received``: one :class:`ReceivedRequest` per request, appended before answering.
* ``fail_next``: set to ``(status, error_dict)`` or ``(status, error_dict, headers)``
  and the next request (whatever it is, before authentication) is answered
  ``status`` / ``{"error": error_dict}`` (with ``headers``); the hook is then cleared.
* ``store``: the in-memory objects (:class:`Store`), for white-box assertions.
* ``delay_s``: seconds every request waits after it is recorded (a slow or hanging vendor).
* ``outage``: an :class:`Outage`: every request is answered its ``status`` / ``{"error": error}``
  until it is set back to None. Stripe's 500 is indeterminate, and so is this one: each request
  pops ``carried_out``, and when it pops True the request is carried out first (its objects
  stored, its events recorded, the error saved as its idempotent answer, as Stripe saves a 500
  once the endpoint began executing); otherwise (or once the list is empty) nothing happens.
* ``GET /v1/balance_transactions/{id}`` answers what each charge, refund and payout moved in
  the account's settlement currency (USD), at the emulated account's own rates (``_stripe_balance``);
  a test may edit one in ``store`` (its ``source``, say) to answer about another object.
* ``GET /v1/events`` lists the events successful POSTs recorded (``_stripe_events``), each
  naming its request's ``Request-Id`` and ``Idempotency-Key``.

Modelled on Stripe's behaviour: Bearer or Basic auth with a masked key in the
401 message; ``Request-Id`` on every answer; ``Idempotency-Key`` echoed on
POSTs; a repeated POST with the same key and parameters replays the saved
answer (``Idempotent-Replayed: true``, ``Original-Request``), while the same
key with other parameters or on another endpoint is a 400 ``idempotency_error``.
Like Stripe, only requests that got past validation are saved; this emulator
saves successful answers, and the error of an ``outage`` for a request it carried out,
never answers produced by ``fail_next``.
Top-level params an endpoint does not accept are refused (400
``parameter_unknown``), as Stripe does; ``expand[]`` replaces ids of stored
objects with the objects (``customer``, ``data.customer``, ``latest_charge``...).
"""

from __future__ import annotations

import base64
import binascii
import copy
import importlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as StarletteRoute

from . import _stripe_balance as balance
from . import _stripe_billing as billing
from . import _stripe_bodies as bodies
from . import _stripe_events as events
from . import _stripe_handlers as handlers
from . import _stripe_money as money
from . import _stripe_treasury as treasury
from ._received import ReceivedRequest, record
from ._stripe_params import (
    FormDecodeError,
    StripeApiError,
    decode_query,
    expand_paths,
    reject_unknown,
)
from ._stripe_store import Obj, Store, random_token

__all__ = ["ROUTES", "Outage", "ReceivedRequest", "Store", "create_app", "mask_key"]

_SUPPORT = "Please see https://stripe.com/docs or we can help at https://support.stripe.com/."
_NO_KEY = (
    "You did not provide an API key. You need to provide your API key in the Authorization "
    "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See "
    "https://stripe.com/docs/api#authentication for details, or we can help at "
    "https://support.stripe.com/."
)
_KEY_PREFIX = re.compile(r"^(?:sk|rk|pk)_(?:test|live)_")
_METHODS = ["GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS"]


# -- route table ------------------------------------------------------------


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    handler: Callable[..., Obj]
    accepted: frozenset[str] | None  # top-level params Stripe accepts; None: unchecked


def _accepted_params(sdk_params_class: str) -> frozenset[str] | None:
    """Top-level params of an endpoint, from stripe-python's generated TypedDicts.

    Those are generated from Stripe's OpenAPI spec, so they are what the API
    accepts at the SDK's pinned version (minus the SDK's own request options).
    Without the SDK installed, unknown params are simply not checked.
    """
    module, _, class_name = f"stripe.params.{sdk_params_class}".rpartition(".")  # v2's: stripe.params.v2.<area>
    try:
        sdk_params = importlib.import_module(module)
        from stripe import RequestOptions
    except ImportError:
        return None
    params_class = getattr(sdk_params, class_name, None)
    if params_class is None:
        return None
    declared = params_class.__required_keys__ | params_class.__optional_keys__
    return frozenset(declared - RequestOptions.__optional_keys__)


def _route(method: str, template: str, handler: Callable[..., Obj], sdk_params: str) -> _Route:
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)
    return _Route(method, re.compile(f"^{regex}$"), handler, _accepted_params(sdk_params))


ROUTES: tuple[_Route, ...] = (
    _route("POST", "/v1/customers", handlers.create_customer, "CustomerCreateParams"),
    _route(
        "GET", "/v1/customers/{object_id}", handlers.retrieve_customer, "CustomerRetrieveParams"
    ),
    _route("POST", "/v1/charges", handlers.create_charge, "ChargeCreateParams"),
    _route("GET", "/v1/charges", handlers.list_charges, "ChargeListParams"),
    _route("GET", "/v1/charges/{object_id}", handlers.retrieve_charge, "ChargeRetrieveParams"),
    _route("POST", "/v1/refunds", handlers.create_refund, "RefundCreateParams"),
    _route("GET", "/v1/refunds/{object_id}", balance.retrieve_refund, "RefundRetrieveParams"),
    _route("POST", "/v1/files", bodies.create_file, "FileCreateParams"),
    _route("POST", "/v2/money_management/outbound_payments", bodies.create_outbound_payment,
           "v2.money_management.OutboundPaymentCreateParams"),
    _route("POST", "/v2/billing/meter_event_stream", bodies.create_meter_event_stream,
           "v2.billing.MeterEventStreamCreateParams"),
    _route(
        "POST", "/v1/payment_intents", handlers.create_payment_intent, "PaymentIntentCreateParams"
    ),
    _route(
        "GET",
        "/v1/payment_intents/{object_id}",
        handlers.retrieve_payment_intent,
        "PaymentIntentRetrieveParams",
    ),
    _route(
        "POST",
        "/v1/payment_intents/{object_id}/confirm",
        handlers.confirm_payment_intent,
        "PaymentIntentConfirmParams",
    ),
    _route(
        "POST",
        "/v1/payment_intents/{object_id}/capture",
        handlers.capture_payment_intent,
        "PaymentIntentCaptureParams",
    ),
    _route("POST", "/v1/payouts", handlers.create_payout, "PayoutCreateParams"),
    _route("GET", "/v1/payouts/{object_id}", balance.retrieve_payout, "PayoutRetrieveParams"),
    _route("GET", "/v1/balance_transactions/{object_id}", balance.retrieve_balance_transaction,
           "BalanceTransactionRetrieveParams"),
    _route("POST", "/v1/transfers", handlers.create_transfer, "TransferCreateParams"),
    _route("GET", "/v1/balance", handlers.retrieve_balance, "BalanceRetrieveParams"),
    _route("GET", "/v1/events", events.list_events, "EventListParams"),
    # every other operation that moves money, and the objects they act on
    *(_route(*spec) for spec in (*money.ROUTES, *billing.ROUTES, *treasury.ROUTES)),
)


def _match(request: ReceivedRequest) -> tuple[_Route, dict[str, str]]:
    for route in ROUTES:
        found = route.pattern.match(request.path)
        if route.method == request.method and found:
            return route, found.groupdict()
    raise StripeApiError(
        404, f"Unrecognized request URL ({request.method}: {request.path}). {_SUPPORT}"
    )


# -- authentication ---------------------------------------------------------


def _presented_key(authorization: str | None) -> str | None:
    scheme, _, credentials = (authorization or "").strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer":
        return credentials or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[0] or None
    return None


def mask_key(key: str) -> str:
    """Mask a key the way Stripe's 401 message does: prefix and last four kept."""
    prefix = _KEY_PREFIX.match(key)
    head = prefix.group(0) if prefix else ""
    rest = key[len(head) :]
    if len(rest) <= 4:
        return head + rest
    return head + "*" * (len(rest) - 4) + rest[-4:]


def _authentication_error(request: ReceivedRequest, secret_key: str) -> dict[str, Any] | None:
    key = _presented_key(request.headers.get("authorization"))
    if key == secret_key:
        return None
    if key is None:
        return {"type": "invalid_request_error", "message": _NO_KEY}
    return {
        "type": "invalid_request_error",
        "message": f"Invalid API Key provided: {mask_key(key)}",
    }


# -- parameters and expansion -----------------------------------------------


def _params(request: ReceivedRequest) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    # stripe-python: /v2 bodies are JSON; a file upload is multipart; every other body a form.
    wanted = ("application/json" if request.path.startswith("/v2/")
              else "multipart/form-data" if content_type == "multipart/form-data" and request.path == "/v1/files"
              else "application/x-www-form-urlencoded")
    if request.body and content_type != wanted:
        raise StripeApiError(
            400,
            f"Invalid request: unsupported Content-Type {content_type or '(none)'}. If error "
            "persists and you need assistance, please contact support@stripe.com.",
        )
    try:
        params = decode_query(request.query)
        if request.method == "POST" and wanted == "application/json" and request.body:
            params.update(bodies.json_params(request.body))
        elif request.method == "POST" and wanted == "multipart/form-data":
            params.update(bodies.multipart_params(request.headers["content-type"], request.body))
        elif request.method == "POST":
            params.update(decode_query(request.body))
    except (FormDecodeError, UnicodeDecodeError) as exc:
        raise StripeApiError(400, f"Invalid request: could not parse parameter {exc}") from exc
    return params


def _expand(store: Store, node: Obj, path: list[str]) -> None:
    if not path:
        return
    if node.get("object") == "list" and path[0] == "data":
        for item in node["data"]:
            _expand(store, item, path[1:])
        return
    value = node.get(path[0])
    if isinstance(value, str) and (found := store.find(value)) is not None:
        node[path[0]] = value = copy.deepcopy(found)
    if isinstance(value, dict):
        _expand(store, value, path[1:])


def _run(store: Store, route: _Route, ids: dict[str, str], params: dict[str, Any]) -> Obj:
    reject_unknown(params, route.accepted)
    stored = route.handler(store, params, **ids)
    balance.record(store, stored)  # what it moved, for GET /v1/balance_transactions and expand
    answer = copy.deepcopy(stored)
    for path in expand_paths(params):
        _expand(store, answer, path.split("."))
    return answer


# -- idempotency ------------------------------------------------------------


@dataclass(frozen=True)
class _Saved:
    method: str
    path: str
    params: dict[str, Any]
    status: int
    body: Obj
    request_id: str


def _replay(saved: _Saved, key: str, request: ReceivedRequest, params: dict[str, Any]):
    if (saved.method, saved.path) != (request.method, request.path):
        raise StripeApiError(
            400,
            "Keys for idempotent requests can only be used for the same endpoint they were "
            f"first used for ('{saved.method} {saved.path}' vs '{request.method} "
            f"{request.path}'). Try using a key other than '{key}' if you meant to execute "
            "a different request.",
            error_type="idempotency_error",
        )
    if saved.params != params:
        raise StripeApiError(
            400,
            "Keys for idempotent requests can only be used with the same parameters they were "
            f"first used with. Try using a key other than '{key}' if you meant to execute a "
            "different request.",
            error_type="idempotency_error",
        )
    replay_headers = {"Idempotent-Replayed": "true", "Original-Request": saved.request_id}
    return saved.status, copy.deepcopy(saved.body), replay_headers


# -- request pipeline -------------------------------------------------------


@dataclass
class Outage:
    """Stripe answering every request ``status``; ``carried_out``: which of the next requests
    were carried out all the same (popped one per request)."""

    status: int
    error: dict[str, Any]
    carried_out: list[bool] = field(default_factory=list)


def _answer(app: Starlette, request: ReceivedRequest, request_id: str):
    """(status, body, extra headers) for one request."""
    state = app.state
    if state.fail_next is not None:
        (status, error, *headers), state.fail_next = state.fail_next, None
        return status, {"error": error}, (headers[0] if headers else {})
    outage: Outage | None = state.outage
    carried_out = outage is not None and bool(outage.carried_out) and outage.carried_out.pop(0)
    if outage is not None and not carried_out:
        return outage.status, {"error": outage.error}, {}
    status, body, extra = _carry_out(state, request, request_id)
    if outage is None or status != 200:
        return status, body, extra
    body = {"error": outage.error}
    key = request.headers.get("idempotency-key")
    if request.method == "POST" and key:  # carried out, then failed: the error is what a retry replays
        saved = state.idempotency[key]
        state.idempotency[key] = _Saved(saved.method, saved.path, saved.params, outage.status, body, request_id)
    return outage.status, body, {}


def _carry_out(state: Any, request: ReceivedRequest, request_id: str):
    """(status, body, extra headers) of the request as the API carries it out."""
    if (auth_error := _authentication_error(request, state.secret_key)) is not None:
        return 401, {"error": auth_error}, {"WWW-Authenticate": 'Basic realm="Stripe"'}
    try:
        route, ids = _match(request)
        params = _params(request)
        key = request.headers.get("idempotency-key") if request.method == "POST" else None
        if key and (saved := state.idempotency.get(key)) is not None:
            return _replay(saved, key, request, params)
        body = _run(state.store, route, ids, params)
    except StripeApiError as exc:
        log_url = f"https://dashboard.stripe.com/test/logs/{request_id}?t={int(time.time())}"
        error = {**exc.error, "request_log_url": log_url}
        return exc.status, {"error": dict(sorted(error.items()))}, {}
    events.record(state.store, request.method, request.path, body, request_id, key)
    if key:
        state.idempotency[key] = _Saved(
            request.method, request.path, params, 200, copy.deepcopy(body), request_id
        )
    return 200, body, {}


async def _endpoint(request: Request) -> Response:
    received = await record(request)
    request_id = f"req_{random_token(14)}"
    status, body, extra = _answer(request.app, received, request_id)
    headers = {"Request-Id": request_id, "Cache-Control": "no-cache, no-store"}
    if received.method == "POST" and "idempotency-key" in received.headers:
        headers["Idempotency-Key"] = received.headers["idempotency-key"]
    if "stripe-version" in received.headers:
        headers["Stripe-Version"] = received.headers["stripe-version"]
    payload = json.dumps(body, indent=2, ensure_ascii=False) + "\n"
    return Response(payload, status, {**headers, **extra}, media_type="application/json")


def create_app(secret_key: str = "sk_test_emulator") -> Starlette:
    """A fresh emulator with its own store, accepting ``secret_key`` only."""
    app = Starlette(routes=[StarletteRoute("/{path:path}", _endpoint, methods=_METHODS)])
    app.state.secret_key = secret_key
    app.state.received = []
    app.state.fail_next = None
    app.state.outage = None
    app.state.store = Store()
    app.state.idempotency = {}
    return app


if __name__ == "__main__":  # a stand-in for api.stripe.com when there is no Stripe account or no internet
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(description="Stripe API emulator on loopback")
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--secret-key", default="sk_test_emulator")
    options = parser.parse_args()
    print(f"Stripe emulator on http://127.0.0.1:{options.port} accepting {options.secret_key}", flush=True)
    uvicorn.run(create_app(options.secret_key), host="127.0.0.1", port=options.port, log_level="warning")
