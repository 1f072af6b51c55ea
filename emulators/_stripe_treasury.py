"""The Stripe emulator's money on Issuing, Treasury, Terminal, test clocks and /v2 money management.

Shaped as ``_stripe_money`` shapes its answers: /v1 objects from Stripe's examples in
``stripe-fixtures3.json``; /v2 ones (the fixtures hold none) from the attributes of
stripe-python's ``stripe.v2`` classes, amounts as ``stripe.v2.Amount`` (``{"value", "currency"}``)
and times in RFC 3339. Test helpers move an object from one state to the next as Stripe's do
(an inbound transfer ``succeeded`` or ``returned``, an outbound payment ``posted``...).
"""

from __future__ import annotations

from typing import Any

from . import _stripe_bodies as bodies
from . import _stripe_store as objects
from ._stripe_money import Handler, amount, changer, currency, new, retriever
from ._stripe_params import StripeApiError, integer, require, string
from ._stripe_store import Obj, Store

Params = dict[str, Any]


def _state(store: Store, kind: str, object_id: str, allowed: tuple[str, ...], status: str) -> Obj:
    """A test helper's move of an object from one of ``allowed`` to ``status``."""
    obj = store.get(kind, object_id)
    if obj["status"] not in allowed:
        raise StripeApiError(400, f"This {kind} has a status of {obj['status']}; only {', '.join(allowed)} "
                                  f"can become {status}.", code="invalid_state")
    obj["status"] = status
    return obj


def stepper(kind: str, allowed: tuple[str, ...], status: str) -> Handler:
    def step(store: Store, params: Params, object_id: str) -> Obj:
        return _state(store, kind, object_id, allowed, status)
    return step


# -- Issuing (test helpers) ---------------------------------------------------


def create_authorization(store: Store, params: Params) -> Obj:
    card = str(require(params, "card"))
    authorized = amount(params)
    return new(store, "issuing.authorization", params, amount=authorized, merchant_amount=authorized,
               currency=currency(params, "usd"), status="pending", approved=True, pending_request=None,
               card={**objects.fixture("issuing.card"), "id": card}, transactions=[], balance_transactions=[])


def approve_authorization(store: Store, params: Params, object_id: str) -> Obj:
    authorization = store.get("issuing.authorization", object_id)
    if authorization["status"] != "pending":
        raise StripeApiError(400, "This authorization is not pending.", code="authorization_not_pending")
    authorization.update(amount=amount(params, default=authorization["amount"]), approved=True)
    return authorization


def capture_authorization(store: Store, params: Params, object_id: str) -> Obj:
    authorization = store.get("issuing.authorization", object_id)
    captured = amount(params, "capture_amount", default=authorization["amount"])
    authorization.update(amount=0, status="closed")  # the captured amount is now the transaction's
    authorization["transactions"] = [new(store, "issuing.transaction", {}, amount=-captured, type="capture",
                                         authorization=object_id, currency=authorization["currency"])]
    return authorization


def finalize_authorization_amount(store: Store, params: Params, object_id: str) -> Obj:
    authorization = store.get("issuing.authorization", object_id)
    authorization["amount"] = amount(params, "final_amount")
    return authorization


def increment_authorization(store: Store, params: Params, object_id: str) -> Obj:
    authorization = store.get("issuing.authorization", object_id)
    authorization["amount"] += amount(params, "increment_amount")
    return authorization


def force_capture(store: Store, params: Params) -> Obj:
    require(params, "card")
    return new(store, "issuing.transaction", params, amount=-amount(params), currency=currency(params, "usd"),
               card=params["card"], type="capture", authorization=None)


def unlinked_refund(store: Store, params: Params) -> Obj:
    require(params, "card")
    return new(store, "issuing.transaction", params, amount=amount(params), currency=currency(params, "usd"),
               card=params["card"], type="refund", authorization=None)


def refund_transaction(store: Store, params: Params, object_id: str) -> Obj:
    """Stripe answers with the refund's own transaction: money back to the card, a positive amount."""
    captured = store.get("issuing.transaction", object_id)
    refunded = amount(params, "refund_amount", default=abs(captured["amount"]))
    return new(store, "issuing.transaction", params, amount=refunded, currency=captured["currency"],
               card=captured["card"], type="refund", authorization=captured.get("authorization"))


# -- Terminal, test clocks --------------------------------------------------------


def create_reader(store: Store, params: Params) -> Obj:
    require(params, "registration_code")
    return new(store, "terminal.reader", params, label=string(params, "label") or "Emulated reader",
               location=string(params, "location"), action=None, status="online")


def reader_action(kind: str) -> Handler:
    """A reader told to take (or refund) a payment: Stripe answers the reader, its action in progress."""
    def act(store: Store, params: Params, object_id: str) -> Obj:
        reader = store.get("terminal.reader", object_id)
        detail: dict[str, Any] = {}
        if kind != "refund_payment":
            detail["payment_intent"] = store.get("payment_intent", str(require(params, "payment_intent")),
                                                 param="payment_intent")["id"]
        else:
            detail.update(charge=string(params, "charge"), payment_intent=string(params, "payment_intent"),
                          amount=integer(params, "amount", positive=True))
        reader["action"] = {"type": kind, "status": "in_progress", kind: detail, "failure_code": None,
                            "failure_message": None}
        return reader
    return act


def present_payment_method(store: Store, params: Params, object_id: str) -> Obj:
    reader = store.get("terminal.reader", object_id)
    if not reader.get("action"):
        raise StripeApiError(400, "This reader has no action in progress.", code="terminal_reader_busy")
    reader["action"]["status"] = "succeeded"
    return reader


def create_test_clock(store: Store, params: Params) -> Obj:
    frozen = integer(params, "frozen_time")
    if frozen is None:
        raise StripeApiError(400, "Missing required param: frozen_time.", code="parameter_missing")
    return new(store, "test_helpers.test_clock", params, frozen_time=frozen, status="ready",
               name=string(params, "name"))


def advance_test_clock(store: Store, params: Params, object_id: str) -> Obj:
    clock = store.get("test_helpers.test_clock", object_id)
    frozen = integer(params, "frozen_time")
    if frozen is None or frozen < clock["frozen_time"]:
        raise StripeApiError(400, "frozen_time must be after the clock's current time.", param="frozen_time")
    clock.update(frozen_time=frozen, status="advancing")
    return clock


# -- Treasury ---------------------------------------------------------------------


def create_financial_account(store: Store, params: Params) -> Obj:
    currencies = require(params, "supported_currencies")
    return new(store, "treasury.financial_account", params, supported_currencies=currencies, status="open")


def close_financial_account(store: Store, params: Params, object_id: str) -> Obj:
    return _state(store, "treasury.financial_account", object_id, ("open",), "closed")


def treasury_money(resource: str, status: str) -> Handler:
    """A Treasury movement from a financial account (or into it) for the request's amount."""
    def create(store: Store, params: Params) -> Obj:
        require(params, "financial_account")
        return new(store, resource, params, amount=amount(params), currency=currency(params), status=status,
                   financial_account=params["financial_account"], description=string(params, "description"))
    return create


def reversal(resource: str, of: str, param: str) -> Handler:
    """A reversal of a received credit or debit: always for its whole amount."""
    def create(store: Store, params: Params) -> Obj:
        received = store.get(of, str(require(params, param)), param=param)
        return new(store, resource, params, amount=received["amount"], currency=received["currency"],
                   financial_account=received["financial_account"], status="processing", **{param: received["id"]})
    return create


# -- /v2 money management -----------------------------------------------------------


def _v2(store: Store, kind: str, prefix: str, params: Params, **fields: Any) -> Obj:
    moment = bodies.rfc3339(objects.now())
    obj = {"id": objects.new_id(prefix), "object": f"v2.{kind}", "created": moment, "livemode": False,
           "metadata": params.get("metadata") or {}, **fields}
    return store.add(obj)


def v2_meter_event(store: Store, params: Params) -> Obj:
    require(params, "event_name")
    moment = bodies.rfc3339(objects.now())
    return {"object": "v2.billing.meter_event", "created": moment, "event_name": params["event_name"],
            "identifier": params.get("identifier") or objects.random_token(20), "livemode": False,
            "payload": require(params, "payload"), "timestamp": params.get("timestamp") or moment}


def v2_inbound_transfer(store: Store, params: Params) -> Obj:
    moved = bodies.amount(params, "amount")
    source, destination = bodies.required_object(params, "from"), bodies.required_object(params, "to")
    return _v2(store, "money_management.inbound_transfer", "ibt", params, amount=moved,
               description=params.get("description"), transfer_history=[],
               **{"from": {"debited": dict(moved), "payment_method": source.get("payment_method")},
                  "to": {"credited": dict(moved), "financial_account": destination.get("financial_account")}})


def v2_payout_intent(store: Store, params: Params) -> Obj:
    moved = bodies.amount(params, "amount")
    source, destination = bodies.required_object(params, "from"), bodies.required_object(params, "to")
    return _v2(store, "money_management.payout_intent", "poi", params, amount=moved, status="requires_confirmation",
               description=params.get("description"), latest_payout=None,
               **{"from": {"currency": moved["currency"], "debited": dict(moved),
                           "financial_account": source.get("financial_account")},
                  "to": {"currency": moved["currency"], "payout_method": destination.get("payout_method"),
                         "recipient": destination.get("recipient")}})


def v2_financial_address(store: Store, params: Params) -> Obj:
    return _v2(store, "money_management.financial_address", "finaddr", params,
               financial_account=require(params, "financial_account"), type=require(params, "type"),
               status="active")


def v2_credit(store: Store, params: Params, object_id: str) -> Obj:
    store.get("v2.money_management.financial_address", object_id)
    bodies.amount(params, "amount")
    require(params, "network")
    return {"object": "v2.money_management.financial_address_credit_simulation", "livemode": False,
            "status": "accepted"}


_V2 = "v2.money_management."
ROUTES: tuple[tuple[str, str, Any, str], ...] = (
    ("GET", "/v1/issuing/authorizations/{object_id}", retriever("issuing.authorization"),
     "issuing.AuthorizationRetrieveParams"),
    ("POST", "/v1/issuing/authorizations/{object_id}/approve", approve_authorization,
     "issuing.AuthorizationApproveParams"),
    ("GET", "/v1/issuing/transactions/{object_id}", retriever("issuing.transaction"),
     "issuing.TransactionRetrieveParams"),
    ("POST", "/v1/terminal/readers", create_reader, "terminal.ReaderCreateParams"),
    ("POST", "/v1/terminal/readers/{object_id}/confirm_payment_intent", reader_action("confirm_payment_intent"),
     "terminal.ReaderConfirmPaymentIntentParams"),
    ("POST", "/v1/terminal/readers/{object_id}/process_payment_intent", reader_action("process_payment_intent"),
     "terminal.ReaderProcessPaymentIntentParams"),
    ("POST", "/v1/terminal/readers/{object_id}/refund_payment", reader_action("refund_payment"),
     "terminal.ReaderRefundPaymentParams"),
    ("POST", "/v1/test_helpers/issuing/authorizations", create_authorization,
     "test_helpers.issuing.AuthorizationCreateParams"),
    ("POST", "/v1/test_helpers/issuing/authorizations/{object_id}/capture", capture_authorization,
     "test_helpers.issuing.AuthorizationCaptureParams"),
    ("POST", "/v1/test_helpers/issuing/authorizations/{object_id}/finalize_amount", finalize_authorization_amount,
     "test_helpers.issuing.AuthorizationFinalizeAmountParams"),
    ("POST", "/v1/test_helpers/issuing/authorizations/{object_id}/increment", increment_authorization,
     "test_helpers.issuing.AuthorizationIncrementParams"),
    ("POST", "/v1/test_helpers/issuing/transactions/create_force_capture", force_capture,
     "test_helpers.issuing.TransactionCreateForceCaptureParams"),
    ("POST", "/v1/test_helpers/issuing/transactions/create_unlinked_refund", unlinked_refund,
     "test_helpers.issuing.TransactionCreateUnlinkedRefundParams"),
    ("POST", "/v1/test_helpers/issuing/transactions/{object_id}/refund", refund_transaction,
     "test_helpers.issuing.TransactionRefundParams"),
    ("POST", "/v1/test_helpers/terminal/readers/{object_id}/present_payment_method", present_payment_method,
     "test_helpers.terminal.ReaderPresentPaymentMethodParams"),
    ("POST", "/v1/test_helpers/test_clocks", create_test_clock, "test_helpers.TestClockCreateParams"),
    ("POST", "/v1/test_helpers/test_clocks/{object_id}/advance", advance_test_clock,
     "test_helpers.TestClockAdvanceParams"),
    ("POST", "/v1/test_helpers/treasury/inbound_transfers/{object_id}/return",
     stepper("treasury.inbound_transfer", ("succeeded",), "returned"),
     "test_helpers.treasury.InboundTransferReturnInboundTransferParams"),
    ("POST", "/v1/test_helpers/treasury/inbound_transfers/{object_id}/succeed",
     stepper("treasury.inbound_transfer", ("processing",), "succeeded"),
     "test_helpers.treasury.InboundTransferSucceedParams"),
    ("POST", "/v1/test_helpers/treasury/outbound_payments/{object_id}/post",
     stepper("treasury.outbound_payment", ("processing",), "posted"),
     "test_helpers.treasury.OutboundPaymentPostParams"),
    ("POST", "/v1/test_helpers/treasury/outbound_payments/{object_id}/return",
     stepper("treasury.outbound_payment", ("processing", "posted"), "returned"),
     "test_helpers.treasury.OutboundPaymentReturnOutboundPaymentParams"),
    ("POST", "/v1/test_helpers/treasury/outbound_transfers/{object_id}/post",
     stepper("treasury.outbound_transfer", ("processing",), "posted"),
     "test_helpers.treasury.OutboundTransferPostParams"),
    ("POST", "/v1/test_helpers/treasury/outbound_transfers/{object_id}/return",
     stepper("treasury.outbound_transfer", ("processing", "posted"), "returned"),
     "test_helpers.treasury.OutboundTransferReturnOutboundTransferParams"),
    ("POST", "/v1/test_helpers/treasury/received_credits", treasury_money("treasury.received_credit", "succeeded"),
     "test_helpers.treasury.ReceivedCreditCreateParams"),
    ("POST", "/v1/test_helpers/treasury/received_debits", treasury_money("treasury.received_debit", "succeeded"),
     "test_helpers.treasury.ReceivedDebitCreateParams"),
    ("POST", "/v1/treasury/credit_reversals",
     reversal("treasury.credit_reversal", "treasury.received_credit", "received_credit"),
     "treasury.CreditReversalCreateParams"),
    ("POST", "/v1/treasury/debit_reversals",
     reversal("treasury.debit_reversal", "treasury.received_debit", "received_debit"),
     "treasury.DebitReversalCreateParams"),
    ("POST", "/v1/treasury/financial_accounts", create_financial_account, "treasury.FinancialAccountCreateParams"),
    ("POST", "/v1/treasury/financial_accounts/{object_id}/close", close_financial_account,
     "treasury.FinancialAccountCloseParams"),
    ("POST", "/v1/treasury/inbound_transfers", treasury_money("treasury.inbound_transfer", "processing"),
     "treasury.InboundTransferCreateParams"),
    ("GET", "/v1/treasury/inbound_transfers/{object_id}", retriever("treasury.inbound_transfer"),
     "treasury.InboundTransferRetrieveParams"),
    ("POST", "/v1/treasury/outbound_payments", treasury_money("treasury.outbound_payment", "processing"),
     "treasury.OutboundPaymentCreateParams"),
    ("GET", "/v1/treasury/outbound_payments/{object_id}", retriever("treasury.outbound_payment"),
     "treasury.OutboundPaymentRetrieveParams"),
    ("POST", "/v1/treasury/outbound_transfers", treasury_money("treasury.outbound_transfer", "processing"),
     "treasury.OutboundTransferCreateParams"),
    ("GET", "/v1/treasury/outbound_transfers/{object_id}", retriever("treasury.outbound_transfer"),
     "treasury.OutboundTransferRetrieveParams"),
    ("GET", "/v1/treasury/received_credits/{object_id}", retriever("treasury.received_credit"),
     "treasury.ReceivedCreditRetrieveParams"),
    ("GET", "/v1/treasury/received_debits/{object_id}", retriever("treasury.received_debit"),
     "treasury.ReceivedDebitRetrieveParams"),
    ("POST", "/v2/billing/meter_events", v2_meter_event, "v2.billing.MeterEventCreateParams"),
    ("POST", "/v2/money_management/financial_addresses", v2_financial_address,
     f"{_V2}FinancialAddressCreateParams"),
    ("POST", "/v2/money_management/inbound_transfers", v2_inbound_transfer, f"{_V2}InboundTransferCreateParams"),
    ("POST", "/v2/money_management/payout_intents", v2_payout_intent, f"{_V2}PayoutIntentCreateParams"),
    ("GET", "/v2/money_management/payout_intents/{object_id}", retriever("v2.money_management.payout_intent"),
     f"{_V2}PayoutIntentRetrieveParams"),
    ("POST", "/v2/money_management/payout_intents/{object_id}/confirm",
     changer("v2.money_management.payout_intent", status="processing"), f"{_V2}PayoutIntentConfirmParams"),
    ("POST", "/v2/money_management/test_helpers/financial_addresses/{object_id}/credit", v2_credit,
     f"{_V2}test_helpers.FinancialAddressCreditParams"),
)
