"""Acme Pay: a made-up vendor, adapted the way a third party would adapt its own API.

It lives outside vendors/ and reaches Tollgate only through the ``tollgate.vendors`` entry
point (tests/test_vendor_plugins.py installs one), to prove that a vendor plugs in with no edit
under proxy/. Its API is small on purpose: ``POST /v1/payments`` with a JSON body
``{"amount_usd": "12.50", "customer": "cus_..."}`` moves money, ``GET /v1/payments/{id}``
reads one back, receipts are uploaded to a host of their own (``POST /v1/receipts`` on
files.acme; ``/acme/files/...`` here), and errors are ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any

from vendors.base import (
    FinalPrice,
    LookedUp,
    Lookup,
    Operation,
    Outcome,
    ParsedRequest,
    ParsedResponse,
    PresentedCredentials,
    RecordedObject,
    RenderedResponse,
    RequestRejected,
    UncertainCall,
    UpstreamCredential,
    VendorAdapter,
    VendorError,
)

SECRET_PATTERN = r"\bacme_(?:live|test)_[A-Za-z0-9]+"


class AcmeAdapter:
    name = "acme"
    label = "Acme Pay"
    colour = "#a21caf"
    default_upstream = "https://api.acme.invalid"
    hosts = MappingProxyType({"files": "https://files.acme.invalid"})
    forward_request_headers = frozenset({"content-type", "accept", "user-agent"})
    forward_response_headers = frozenset({"content-type", "acme-request-id"})
    decision_headers = frozenset({"acme-account"})
    secret_patterns = (SECRET_PATTERN,)
    prices_later = False
    idempotency_header = None
    requires_account = False
    quickstart = None

    def operations(self) -> Iterable[Operation]:
        return (Operation("POST", "/v1/payments", "moves_money", "request"),
                Operation("GET", "/v1/payments/{id}", "reads", "free"),
                Operation("POST", "/files/v1/receipts", "configures", "free"))

    def presented_credentials(self, headers: Mapping[str, str]) -> PresentedCredentials:
        scheme, _, value = headers.get("authorization", "").partition(" ")
        return PresentedCredentials(value.strip() if scheme.lower() == "bearer" and value.strip() else None)

    def parse_request(
        self, method: str, path: str, query: bytes, headers: Mapping[str, str], body: bytes
    ) -> ParsedRequest:
        segments = path.strip("/").split("/")
        if method == "POST" and segments == ["files", "v1", "receipts"]:
            return ParsedRequest(method, "/v1/receipts", "POST /files/v1/receipts", host="files")
        if method == "POST" and segments == ["v1", "payments"]:
            payment = _json(body)
            amount = _amount(payment.get("amount_usd"))
            customer = payment.get("customer")
            return ParsedRequest(method, path, "POST /v1/payments", params=payment, moves_money=True,
                                 amount_minor=int(amount * 100), currency="usd",
                                 customer_id=customer if isinstance(customer, str) else None,
                                 account=headers.get("acme-account"), summary={"amount_usd": str(amount)})
        if method == "GET" and len(segments) == 3 and segments[:2] == ["v1", "payments"]:
            return ParsedRequest(method, path, "GET /v1/payments/{id}", object_id=segments[2])
        return ParsedRequest(method, path, f"{method} {path}")

    def after_lookup(self, request: ParsedRequest, looked_up: LookedUp) -> tuple[ParsedRequest, Lookup | None]:
        return request, None  # one read prices the call; estimate_usd reads its answer

    def price_lookup(self, request: ParsedRequest, referenced: RecordedObject | None) -> Lookup | None:
        return None  # a payment names its amount

    def estimate_usd(
        self, request: ParsedRequest, referenced: RecordedObject | None = None, looked_up: LookedUp | None = None
    ) -> Decimal | None:
        return Decimal(request.amount_minor or 0) / 100 if request.moves_money else Decimal(0)

    def parse_response(
        self, request: ParsedRequest, status: int, headers: Mapping[str, str], body: bytes
    ) -> ParsedResponse:
        request_id = headers.get("acme-request-id")
        if not 200 <= status < 300 or not request.moves_money:
            return ParsedResponse(Decimal(0), vendor_request_id=request_id)
        payment = _json(body)
        amount = _amount(payment.get("amount_usd"))
        created = RecordedObject(str(payment["id"]), "payment", request.customer_id, int(amount * 100), "usd")
        return ParsedResponse(amount, "usd", int(amount * 100), created.object_id, request.customer_id,
                              request_id, created=created)

    def upstream_auth_headers(self, credential: UpstreamCredential) -> dict[str, str]:
        return {"authorization": f"Bearer {credential.secret}"}

    def render_error(self, error: VendorError) -> RenderedResponse:
        body = {"error": {"code": error.reason, "message": error.message, "kind": error.kind}}
        headers = {"content-type": "application/json"}
        if error.request_id:
            headers["acme-request-id"] = error.request_id
        return RenderedResponse(error.status, headers, json.dumps(body).encode())

    def reconcile_path(self, account: str | None, object_id: str, endpoint: str | None = None) -> str | None:
        return None  # Acme prices every payment in its answer

    def reconcile(self, status: int, body: bytes) -> FinalPrice:
        raise NotImplementedError("Acme prices at once; nothing to reconcile")

    def outcome_lookup(self, call: UncertainCall, page: str | None) -> Lookup | None:
        return None  # Acme lists no payment by the call that made it: an uncertain one keeps its estimate

    def outcome(self, call: UncertainCall, answer: LookedUp) -> Outcome:
        raise NotImplementedError("outcome_lookup asks for nothing")


def _json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        raise RequestRejected("invalid_json", "The body is not JSON.") from None
    if not isinstance(value, dict):
        raise RequestRejected("invalid_json", "The body must be a JSON object.")
    return value


def _amount(value: Any) -> Decimal:
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise RequestRejected("invalid_amount", "amount_usd must be a decimal string.", param="amount_usd") from None
    if not amount.is_finite() or amount < 0 or amount.as_tuple().exponent < -2:  # type: ignore[operator]
        raise RequestRejected("invalid_amount", "amount_usd must be a non-negative amount in cents.",
                              param="amount_usd")
    return amount


_conforms: VendorAdapter = AcmeAdapter()  # mypy checks the class against the protocol
