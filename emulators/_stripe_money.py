"""The Stripe emulator's other money-moving operations on /v1: application fee refunds, captures
of charges, Checkout, Climate, customer balance and cash balance, card forwarding, intents'
increments and balance, payment links, payout reversals, top-ups and transfer reversals; and the
helpers every money route shares.

Each answer is Stripe's own example object (``emulators/fixtures/stripe-fixtures3.json``) with the
fields the request or the object's state decides overwritten, as ``_stripe_store`` does for
charges: the amount the call moves sits where Stripe's answer puts it (``amount``,
``amount_captured``, ``amount_paid``, ``amount_total``...), so that whoever reads the answer
learns what moved. An operation on an object (``/v1/invoices/{invoice}/pay``) needs that object
to have been made first, here, as on Stripe: an unknown id is a 404 ``resource_missing``.
Billing (invoices, credit, subscriptions, meter events) is in ``_stripe_billing``; Issuing,
Treasury, Terminal and /v2 money in ``_stripe_treasury``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import _stripe_store as objects
from ._stripe_params import StripeApiError, integer, metadata, require, string
from ._stripe_store import Obj, Store

Params = dict[str, Any]
Handler = Callable[..., Obj]


# -- shared by every money route ---------------------------------------------


def new(store: Store | None, resource: str, params: Params, prefix: str | None = None, **fields: Any) -> Obj:
    """Stripe's example ``resource`` as a new object: a fresh id with the example's prefix, now, test
    mode, the request's metadata, then ``fields``. Stored unless ``store`` is None."""
    obj = objects.fixture(resource)
    obj.update(id=objects.new_id(prefix or str(obj["id"]).rpartition("_")[0]), livemode=False)
    if "created" in obj:
        obj["created"] = objects.now()
    if "metadata" in obj:
        obj["metadata"] = metadata(params)
    obj.update(fields)
    return store.add(obj) if store is not None else obj


def amount(params: Params, name: str = "amount", default: int | None = None) -> int:
    """A positive amount in minor units, or ``default`` when the request names none."""
    value = integer(params, name, positive=True)
    if value is None:
        value = default
    if value is None:
        raise StripeApiError(400, f"Missing required param: {name}.", code="parameter_missing", param=name)
    return value


def currency(params: Params, default: str | None = None) -> str:
    value = string(params, "currency") or default
    if not value:
        raise StripeApiError(400, "Missing required param: currency.", code="parameter_missing", param="currency")
    return value.lower()


def retriever(kind: str) -> Handler:
    def retrieve(store: Store, params: Params, object_id: str) -> Obj:
        return store.get(kind, object_id)
    return retrieve


def changer(kind: str, **fields: Any) -> Handler:
    """A call that updates an object (metadata and ``fields``) and answers it."""
    def change(store: Store, params: Params, object_id: str) -> Obj:
        obj = store.get(kind, object_id)
        if isinstance(obj.get("metadata"), dict):
            obj["metadata"].update(metadata(params))
        obj.update(fields)
        return obj
    return change


def _too_much(asked: int, left: int, what: str) -> StripeApiError:
    return StripeApiError(400, f"Amount ({asked}) is greater than the {what} ({left}).", code="amount_too_large",
                          param="amount")


def price_data_total(items: Any) -> tuple[int, str | None]:
    """What ``line_items`` with ``price_data`` add up to: unit_amount x quantity (a price id alone is
    a price this emulator does not keep: it adds nothing it could know)."""
    total, cur = 0, None
    for item in items if isinstance(items, list) else []:
        data = item.get("price_data") if isinstance(item, dict) else None
        if isinstance(data, dict):
            total += amount(data, "unit_amount") * (integer(item, "quantity", positive=True) or 1)
            cur = string(data, "currency") or cur
    return total, cur


# -- charges, application fees, intents ---------------------------------------


def capture_charge(store: Store, params: Params, object_id: str) -> Obj:
    charge = store.get("charge", object_id)
    if charge["captured"]:
        raise StripeApiError(400, f"Charge {object_id} has already been captured.", code="charge_already_captured")
    captured = amount(params, default=charge["amount"])
    if captured > charge["amount"]:
        raise _too_much(captured, charge["amount"], "amount authorized")
    # The part of the authorisation not captured is released: Stripe reports it as refunded.
    charge.update(captured=True, amount_captured=captured, amount_refunded=charge["amount"] - captured,
                  balance_transaction=objects.new_id("txn"))
    return charge


def refund_application_fee(store: Store, params: Params, object_id: str) -> Obj:
    fee = store.get("application_fee", object_id)
    left = fee["amount"] - fee["amount_refunded"]
    refunded = amount(params, default=left)
    if refunded > left:
        raise _too_much(refunded, left, "application fee's unrefunded amount")
    fee.update(amount_refunded=fee["amount_refunded"] + refunded, refunded=refunded == left)
    return new(store, "fee_refund", params, amount=refunded, currency=fee["currency"], fee=fee["id"],
               balance_transaction=objects.new_id("txn"))


def apply_customer_balance(store: Store, params: Params, object_id: str) -> Obj:
    intent = store.get("payment_intent", object_id)
    left = intent["amount"] - intent["amount_received"]
    applied = amount(params, default=left)
    if applied > left:
        raise _too_much(applied, left, "amount left to pay")
    intent["amount_received"] += applied
    intent["status"] = "succeeded" if intent["amount_received"] == intent["amount"] else intent["status"]
    return intent


def increment_authorization(store: Store, params: Params, object_id: str) -> Obj:
    intent = store.get("payment_intent", object_id)
    if intent["status"] != "requires_capture":
        raise StripeApiError(400, "Only a PaymentIntent with status requires_capture can be incremented.",
                             code="payment_intent_unexpected_state")
    total = amount(params)  # Stripe: the updated total, not the increment
    if total < intent["amount"]:
        raise StripeApiError(400, "The new amount must be greater than the authorized amount.", param="amount")
    intent.update(amount=total, amount_capturable=total)
    return intent


def verify_microdeposits(store: Store, params: Params, object_id: str) -> Obj:
    intent = store.get("payment_intent", object_id)
    if intent["status"] not in ("requires_payment_method", "requires_confirmation", "requires_action"):
        raise StripeApiError(400, f"This PaymentIntent has a status of {intent['status']}.",
                             code="payment_intent_unexpected_state")
    intent.update(status="succeeded", amount_received=intent["amount"], next_action=None)
    return intent


# -- customers, credit ----------------------------------------------------------


def customer_balance_transaction(store: Store, params: Params, object_id: str) -> Obj:
    customer = store.get("customer", object_id)
    value = integer(params, "amount")  # signed: negative credits the customer, positive debits
    if value is None:
        raise StripeApiError(400, "Missing required param: amount.", code="parameter_missing", param="amount")
    balance = int(customer.get("balance") or 0) + value
    customer["balance"] = balance
    return new(store, "customer_balance_transaction", params, amount=value, currency=currency(params),
               customer=customer["id"], ending_balance=balance, type="adjustment", invoice=None, credit_note=None,
               description=string(params, "description"))


def fund_cash_balance(store: Store, params: Params, object_id: str) -> Obj:
    """A test helper: a bank transfer into the customer's cash balance (money in, ``net_amount``)."""
    customer = store.get("customer", object_id)
    funded = amount(params)
    return new(store, "customer_cash_balance_transaction", params, prefix="ccsbtxn", customer=customer["id"],
               currency=currency(params), net_amount=funded, type="funded", ending_balance=funded)


def forward_request(store: Store, params: Params) -> Obj:
    """Stripe sends the card to ``url`` and answers what the endpoint said (here: a 200 with no body)."""
    for name in ("payment_method", "url", "replacements", "request"):
        require(params, name)
    return new(store, "forwarding.request", params, prefix="fwdreq", payment_method=params["payment_method"],
               url=params["url"], replacements=params["replacements"],
               response_details={"body": "", "headers": [], "status": 200})


# -- Checkout, payment links, Climate ----------------------------------------------


def create_checkout_session(store: Store, params: Params) -> Obj:
    require(params, "mode")
    total, cur = price_data_total(params.get("line_items"))
    return new(store, "checkout.session", params, prefix="cs_test", amount_subtotal=total, amount_total=total,
               currency=cur, mode=params["mode"], status="open", payment_status="unpaid",
               customer=string(params, "customer"), url="https://checkout.stripe.com/c/pay/cs_test")


def create_payment_link(store: Store, params: Params) -> Obj:
    require(params, "line_items")
    return new(store, "payment_link", params, active=True, url="https://buy.stripe.com/test_emulator")


def create_climate_order(store: Store, params: Params) -> Obj:
    require(params, "product")
    ordered = integer(params, "amount", positive=True)
    order = new(store, "climate.order", params, product=params["product"], status="open",
                currency=currency(params, "usd"))
    if ordered is not None:  # the removal bought; Stripe's fees come on top (else the example's tons and price)
        order.update(amount_subtotal=ordered, amount_total=ordered + order["amount_fees"])
    return order


# -- subscriptions ------------------------------------------------------------


# -- payouts, top-ups, transfers ----------------------------------------------


def reverse_payout(store: Store, params: Params, object_id: str) -> Obj:
    """Stripe answers with the new payout that reverses it, for the same amount."""
    payout = store.get("payout", object_id)
    if payout.get("reversed_by"):
        raise StripeApiError(400, f"Payout {object_id} has already been reversed.", code="payout_reversed")
    reversal = new(store, "payout", params, amount=payout["amount"], currency=payout["currency"],
                   original_payout=payout["id"], status="pending", balance_transaction=objects.new_id("txn"))
    payout["reversed_by"] = reversal["id"]
    return reversal


def create_topup(store: Store, params: Params) -> Obj:
    return new(store, "topup", params, amount=amount(params), currency=currency(params), status="pending",
               description=string(params, "description"))


def reverse_transfer(store: Store, params: Params, object_id: str) -> Obj:
    transfer = store.get("transfer", object_id)
    left = transfer["amount"] - transfer["amount_reversed"]
    reversed_ = amount(params, default=left)
    if reversed_ > left:
        raise _too_much(reversed_, left, "transfer's unreversed amount")
    transfer.update(amount_reversed=transfer["amount_reversed"] + reversed_, reversed=reversed_ == left)
    return new(store, "transfer_reversal", params, amount=reversed_, currency=transfer["currency"],
               transfer=transfer["id"], balance_transaction=objects.new_id("txn"))


ROUTES: tuple[tuple[str, str, Any, str], ...] = (
    ("GET", "/v1/application_fees/{object_id}", retriever("application_fee"), "ApplicationFeeRetrieveParams"),
    ("POST", "/v1/application_fees/{object_id}/refunds", refund_application_fee, "ApplicationFeeRefundCreateParams"),
    ("POST", "/v1/charges/{object_id}/capture", capture_charge, "ChargeCaptureParams"),
    ("POST", "/v1/checkout/sessions", create_checkout_session, "checkout.SessionCreateParams"),
    ("POST", "/v1/climate/orders", create_climate_order, "climate.OrderCreateParams"),
    ("POST", "/v1/customers/{object_id}/balance_transactions", customer_balance_transaction,
     "CustomerBalanceTransactionCreateParams"),
    ("POST", "/v1/forwarding/requests", forward_request, "forwarding.RequestCreateParams"),
    ("POST", "/v1/payment_intents/{object_id}/apply_customer_balance", apply_customer_balance,
     "PaymentIntentApplyCustomerBalanceParams"),
    ("POST", "/v1/payment_intents/{object_id}/increment_authorization", increment_authorization,
     "PaymentIntentIncrementAuthorizationParams"),
    ("POST", "/v1/payment_intents/{object_id}/verify_microdeposits", verify_microdeposits,
     "PaymentIntentVerifyMicrodepositsParams"),
    ("POST", "/v1/payment_links", create_payment_link, "PaymentLinkCreateParams"),
    ("GET", "/v1/payouts/{object_id}", retriever("payout"), "PayoutRetrieveParams"),
    ("POST", "/v1/payouts/{object_id}/reverse", reverse_payout, "PayoutReverseParams"),
    ("POST", "/v1/test_helpers/customers/{object_id}/fund_cash_balance", fund_cash_balance,
     "test_helpers.CustomerFundCashBalanceParams"),
    ("POST", "/v1/topups", create_topup, "TopupCreateParams"),
    ("GET", "/v1/transfers/{object_id}", retriever("transfer"), "TransferRetrieveParams"),
    ("POST", "/v1/transfers/{object_id}/reversals", reverse_transfer, "TransferReversalCreateParams"),
)
