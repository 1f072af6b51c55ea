"""Stripe: form-encoded /v1 requests, JSON /v2 ones, file uploads; JSON responses, money in minor units.

Cost is the money a call moves, in USD: a charge's or refund's amount, converted
with the FX table (for a charge or payout in another currency, an estimate until its
balance transaction says what it settled at: settlement.py). Calls that move no money
cost 0. A 5xx on a call that moves money is uncertain (the estimate stays counted):
Stripe's events later tell what it did (outcomes.py).
The hosts stripe-python sends to besides api.stripe.com (files, meter events; Connect OAuth
is refused) are in routes.py, and how each body is read in bodies.py.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from vendors import money
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
from vendors.endpoints import Endpoint
from vendors.stripe import bodies, catalogue, meters, outcomes, routes, settlement
from vendors.stripe import tools as stripe_tools
from vendors.stripe.catalogue import Facts
from vendors.stripe.facts import (
    MAX_AMOUNT_MINOR,
    currency_of,
    known_price,
    looked_up_price,
    lookup_target,
    money_of,
    named_customer,
    named_objects,
    primary_object,
)
from vendors.tools import Tool, ToolRequest
from vendors.wire import json_object

OPERATIONS = catalogue.load()


class StripeAdapter:
    name = "stripe"
    label = "Stripe"
    colour = "#4f46e5"
    default_upstream = "https://api.stripe.com"
    hosts: Mapping[str, str] = routes.HOSTS  # files and meter_events (vendors/stripe/routes.py)
    requires_account = False
    # A charge, refund or payout in another currency is priced by a conversion at a reference rate;
    # its balance transaction later says what it settled at (settlement.py: tollgate prices reconcile).
    prices_later = True
    # The connected account a call acts on (Stripe-Context supersedes Stripe-Account), and the
    # API version, which changes what parameters mean and what the answer holds.
    decision_headers = frozenset({"stripe-account", "stripe-context", "stripe-version"})
    secret_patterns: tuple[str, ...] = (r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]+",)  # secret and restricted keys
    quickstart: Quickstart | None = Quickstart(
        "STRIPE_SECRET_KEY", "sk_test_...", "policy-schemas/examples/stripe-quickstart.json")
    forward_request_headers = frozenset(
        {
            "content-type",
            "accept",
            "user-agent",
            "idempotency-key",
            "stripe-version",
            "stripe-account",
            "stripe-context",
            "x-stripe-client-user-agent",
            "x-stripe-client-telemetry",
        }
    )
    # retry-after: a 429's back-off must reach the agent, or it retries at once into the same limit.
    forward_response_headers = frozenset(
        {"content-type", "request-id", "idempotency-key", "idempotent-replayed", "stripe-version",
         "stripe-should-retry", "stripe-account", "original-request", "retry-after"}
    )
    # stripe-python sends one on every POST; a hand-written client may not: the core then adds one,
    # so that an uncertain call can be found among Stripe's events (vendors/stripe/outcomes.py).
    idempotency_header: str | None = "idempotency-key"

    def presented_credentials(self, headers: Mapping[str, str]) -> PresentedCredentials:
        auth = headers.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer":
            return PresentedCredentials(value.strip() or None)
        if scheme.lower() == "basic":  # Stripe accepts the key as the Basic username
            try:
                user = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")[0]
            except (binascii.Error, ValueError):  # ValueError: non-ASCII header text (latin-1 from ASGI)
                return PresentedCredentials(None)
            return PresentedCredentials(user or None)
        return PresentedCredentials(None)

    def parse_request(
        self, method: str, path: str, query: bytes, headers: Mapping[str, str], body: bytes
    ) -> ParsedRequest:
        host, on_host = routes.split(path)
        endpoint, path_params, name = OPERATIONS.match(method, on_host)
        if endpoint is None or endpoint.facts.host != "api" or host is not None:
            routes.check(method, host, on_host, endpoint, name)  # raises unless another host serves it
        assert endpoint is not None
        facts = endpoint.facts
        try:
            params = bodies.params(host, on_host, query, headers, body)
            amount_minor, currency, moves = money_of(facts, params)
            if amount_minor is not None and currency is not None:
                param = (facts.money.request_amount if facts.money else None) or "amount"
                money.check_amount(amount_minor, currency, name, param)
            named = named_objects(facts, path_params, params)
            billed = meters.billed(name, params)  # a meter event's customers are in its payload
            customer = billed[0] if billed else named_customer(facts, path_params, params)
        except RequestRejected as exc:
            exc.endpoint = name  # the blocked row names the operation it refused
            raise
        return ParsedRequest(
            method=method,
            path=on_host,
            endpoint=name,
            params=params,
            customer_id=customer,
            object_id=primary_object(facts, path_params, params),
            amount_minor=amount_minor,
            currency=currency,
            moves_money=moves,
            idempotency_key=headers.get("idempotency-key"),
            deduplicated_by="idempotency-key" if method == "POST" else None,  # "all POST requests accept" one
            account=_account(headers),
            summary=bodies.summary(params, host),
            objects=tuple(o for o in named if o.startswith(_SCOPED_PREFIXES)),
            customers=billed,
            host=host,
            unpriced=money.no_rate_note(currency) if moves and currency and not money.has_rate(currency) else None,
        )

    def operations(self) -> Iterable[Operation]:
        return tuple(op for op in catalogue.operations() if f"{op.method} {op.path}" not in routes.NOT_SERVED)

    def tools(self) -> Sequence[Tool]:
        """One tool per served operation, from vendors/stripe/tools.json (read once)."""
        return stripe_tools.tools()

    def tool_request(
        self, tool: Tool, arguments: Mapping[str, Any], vault_key: str, account: str | None
    ) -> ToolRequest:
        """What stripe-python sends for the call; a key bound to a connected account is bound upstream
        (``upstream_auth_headers``), so ``account`` adds nothing here."""
        return stripe_tools.tool_request(tool, arguments, vault_key)

    def after_lookup(self, request: ParsedRequest, looked_up: LookedUp) -> tuple[ParsedRequest, Lookup | None]:
        """One read prices the call. What it told (the amount the request did not name, the currency)
        goes on the request, so the audit row says what the prediction was made of."""
        if meters.is_meter_event(request.endpoint):  # the meters read: whom each event bills
            return meters.naming(request, meters.customers(request.params, meters.customer_keys(looked_up))), None
        amount, currency = looked_up_price(request, looked_up)
        told = dataclasses.replace(request, amount_minor=request.amount_minor if request.amount_minor is not None
                                   else amount, currency=request.currency or currency)
        return told, None

    def price_lookup(self, request: ParsedRequest, referenced: RecordedObject | None) -> Lookup | None:
        headers = {}
        if request.account:  # read the object in the account the call acts on
            headers["stripe-context" if "/" in request.account else "stripe-account"] = request.account
        if meters.is_meter_event(request.endpoint):  # no price to read; whom it bills, maybe (meters.py)
            return dataclasses.replace(meters.METERS, headers=headers) if meters.needs_meters(request.params) else None
        amount, currency = known_price(request, referenced)
        if not request.moves_money or (amount is not None and currency is not None):
            return None
        found = lookup_target(request)
        if found is None:
            return None
        spec, object_id = found
        return Lookup(spec.path_for(object_id), headers)

    def estimate_usd(
        self, request: ParsedRequest, referenced: RecordedObject | None = None, looked_up: LookedUp | None = None
    ) -> Decimal | None:
        if not request.moves_money:
            return Decimal(0)
        # A refund, a confirm or a capture may name no amount or currency: they are the charge's
        # or the payment intent's, from the key's records or read from Stripe before the gate.
        amount, currency = known_price(request, referenced)
        if (amount is None or currency is None) and looked_up is not None:
            read_amount, read_currency = looked_up_price(request, looked_up)
            amount = amount if amount is not None else read_amount
            currency = currency or read_currency
        if amount is None or currency is None or not money.has_rate(currency):
            return None  # not to be guessed: the core refuses it (cost_unknown) unless the policy opts in
        return money.minor_to_usd(amount, currency)

    def parse_response(
        self, request: ParsedRequest, status: int, headers: Mapping[str, str], body: bytes
    ) -> ParsedResponse:
        request_id = headers.get("request-id")
        replayed = headers.get("idempotent-replayed") == "true"
        if status >= 500 and request.moves_money and not replayed:
            # Stripe: "treat the result of a 500 as indeterminate": the money may have moved.
            return ParsedResponse(None, vendor_request_id=request_id, uncertain=True)
        if status >= 400:
            # Stripe moves no money on a 4xx (a declined card's charge is created failed, 402) or a
            # 429, nor again on the replay of a saved answer (the first call's row holds any doubt).
            return ParsedResponse(cost_usd=Decimal(0), vendor_request_id=request_id, replayed=replayed)
        obj = json_object(body)
        revealed = _revealed_customers(obj)
        if replayed:
            return ParsedResponse(Decimal(0), object_id=_text_field(obj, "id"), customer_id=_customer_of(obj),
                                  vendor_request_id=request_id, replayed=True,
                                  revealed_customers=revealed)
        endpoint, _, _ = OPERATIONS.match(request.method, request.path)
        money_facts = endpoint.facts.money if endpoint else None
        object_id = _text_field(obj, "id")
        customer = _customer_of(obj)
        created = _created(request, obj, endpoint)
        if money_facts is None or not request.moves_money:
            return ParsedResponse(Decimal(0), object_id=object_id, customer_id=customer, vendor_request_id=request_id,
                                  created=created, revealed_customers=revealed)
        amount = catalogue.param(obj, money_facts.response_amount) if money_facts.response_amount else None
        if money_facts.signed and type(amount) is int and amount < 0:
            amount = -amount  # a credit: its size is what moved
        # The answer spells the currency where the request does (/v2: amount[currency]), or beside the amount.
        currency = currency_of(obj, money_facts.response_amount or "amount", money_facts.currency)
        if (
            not (type(amount) is int and 0 <= amount <= MAX_AMOUNT_MINOR and isinstance(currency, str))
            or currency.lower() not in money.fx_table().usd_per_unit
        ):  # bool, negative or absurd amounts are not a price; 10**30 would also overflow the Decimal context
            return ParsedResponse(None, object_id=object_id, customer_id=customer, vendor_request_id=request_id,
                                  created=created, revealed_customers=revealed)
        return ParsedResponse(
            cost_usd=money.minor_to_usd(amount, currency),
            currency=currency.lower(),
            amount_minor=amount,
            object_id=object_id,
            customer_id=customer,
            vendor_request_id=request_id,
            created=created,
            revealed_customers=revealed,
            settles_later=settlement.settles_later(request.endpoint, obj, currency),
        )

    def upstream_auth_headers(self, credential: UpstreamCredential) -> dict[str, str]:
        headers = {"authorization": f"Bearer {credential.secret}"}
        if credential.account:  # a key bound to a connected account acts on it, named or not
            headers["stripe-account"] = credential.account
        return headers

    def render_error(self, error: VendorError) -> RenderedResponse:
        kind = "api_error" if error.kind == "unavailable" else "invalid_request_error"
        payload: dict[str, Any] = {"type": kind, "code": error.reason, "message": error.message}
        if error.param:
            payload["param"] = error.param
        if error.approval_id:
            payload["approval_id"] = error.approval_id
        headers = {
            "content-type": "application/json",
            "stripe-should-retry": "true" if error.retryable else "false",
        }
        if error.request_id:
            headers["request-id"] = error.request_id
        return RenderedResponse(error.status, headers, json.dumps({"error": payload}).encode())

    def reconcile_path(self, account: str | None, object_id: str, endpoint: str | None = None) -> str | None:
        return settlement.reconcile_path(object_id, endpoint)

    def reconcile(self, status: int, body: bytes) -> FinalPrice:
        return settlement.settled_price(status, body)

    def outcome_lookup(self, call: UncertainCall, page: str | None) -> Lookup | None:
        return outcomes.lookup(call, page)

    def outcome(self, call: UncertainCall, answer: LookedUp) -> Outcome:
        return outcomes.read(call, answer)


def _account(headers: Mapping[str, str]) -> str | None:
    """The one account the call acts on. Stripe-Context supersedes Stripe-Account: two that
    differ would be judged on one and forwarded with both, so they are refused."""
    context, account = headers.get("stripe-context"), headers.get("stripe-account")
    if context and account and context != account:
        raise RequestRejected("account_mismatch", "Stripe-Context and Stripe-Account name different accounts; "
                                                  "send one.", status=401)
    return context or account


# Ids of the kinds a key records (and so can be scoped to): the rest (tokens, prices, tax rates,
# payment methods) are the account's, checked by the endpoint rules, not by record scope.
_SCOPED_PREFIXES = ("cus_", "ch_", "py_", "pi_", "re_", "pyr_", "po_", "tr_")
_RECORDED_KINDS = frozenset({"customer", "charge", "payment_intent", "refund", "payout", "transfer"})


def _created(request: ParsedRequest, obj: Mapping[str, Any], endpoint: Endpoint[Facts] | None) -> RecordedObject | None:
    """The object a create call (POST to a collection) made, as Stripe returned it."""
    if request.method != "POST" or endpoint is None or "{" in endpoint.template:
        return None
    object_id, kind = _text_field(obj, "id"), _text_field(obj, "object")
    if object_id is None or kind not in _RECORDED_KINDS:
        return None
    amount = obj.get("amount")
    return RecordedObject(
        object_id=object_id,
        kind=kind,
        customer_id=_customer_of(obj),
        amount_minor=amount if type(amount) is int and 0 <= amount <= MAX_AMOUNT_MINOR else None,
        currency=(_text_field(obj, "currency") or "").lower() or None,
    )


def _text_field(obj: Mapping[str, Any], name: str) -> str | None:
    value = obj.get(name)
    return value if isinstance(value, str) else None


def _revealed_customers(obj: Mapping[str, Any]) -> tuple[str, ...]:
    """The customers an answer names: its object's, or each object's of a list or a search."""
    items = obj.get("data") if obj.get("object") in ("list", "search_result") else [obj]
    found = (_customer_of(item) for item in items if isinstance(item, dict)) if isinstance(items, list) else ()
    return tuple(dict.fromkeys(c for c in found if c))


def _customer_of(obj: Mapping[str, Any]) -> str | None:
    if obj.get("object") == "customer":
        return _text_field(obj, "id")
    customer = obj.get("customer")
    if isinstance(customer, dict):  # expanded
        customer = customer.get("id")
    return customer if isinstance(customer, str) else None
