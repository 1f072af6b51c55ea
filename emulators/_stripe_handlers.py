"""Endpoint handlers of the Stripe emulator.

Each handler takes the app's :class:`Store`, the decoded request params and
the ids captured from the path, and returns the object Stripe would answer
with (HTTP 200), or raises :class:`StripeApiError`.  Messages and codes follow
what api.stripe.com answers for the same situation.
"""

from __future__ import annotations

import copy
from typing import Any

from . import _stripe_store as objects
from ._stripe_params import (
    StripeApiError,
    boolean,
    currency,
    integer,
    metadata,
    require,
    required_amount,
    string,
)
from ._stripe_store import Obj, Store

Params = dict[str, Any]

_CAPTURE_METHODS = ("automatic", "automatic_async", "manual")
_CONFIRMABLE = ("requires_payment_method", "requires_confirmation", "requires_action")
_CURRENCY_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£"}


def _money(amount: int, cur: str) -> str:
    symbol = _CURRENCY_SYMBOLS.get(cur)
    value = f"{amount / 100:.2f}"
    return f"{symbol}{value}" if symbol else f"{value} {cur.upper()}"


def _check_minimum(amount: int, cur: str) -> None:
    # Stripe's minimum charge amount differs per currency; only USD is modelled.
    if cur == "usd" and amount < 50:
        raise StripeApiError(
            400, "Amount must be at least $0.50 usd", code="amount_too_small", param="amount"
        )


# -- customers --------------------------------------------------------------


def create_customer(store: Store, params: Params) -> Obj:
    card = objects.new_card(None) if string(params, "source") else None
    customer = objects.new_customer(params, metadata(params), card["id"] if card else None)
    if card is not None:
        card["customer"] = customer["id"]
        store.add(card)
    return store.add(customer)


def retrieve_customer(store: Store, params: Params, object_id: str) -> Obj:
    return store.get("customer", object_id)


# -- charges ----------------------------------------------------------------


def create_charge(store: Store, params: Params) -> Obj:
    amount = required_amount(params)
    cur = currency(params)
    _check_minimum(amount, cur)
    customer_id = string(params, "customer")
    card = _card_to_charge(store, customer_id, string(params, "source"))
    charge = objects.new_charge(
        amount=amount,
        currency=cur,
        captured=boolean(params, "capture", True),
        customer=customer_id,
        card=card,
        description=string(params, "description"),
        meta=metadata(params),
    )
    if (fee := integer(params, "application_fee_amount")) is not None:  # the platform's cut, refundable on its own
        charge["application_fee_amount"] = fee
        charge["application_fee"] = store.add(objects.new_application_fee(charge, fee))["id"]
    return store.add(charge)


def _card_to_charge(store: Store, customer_id: str | None, source: str | None) -> Obj:
    """The card a charge is made on, as Stripe resolves ``customer`` and ``source``."""
    if customer_id is None:
        if source is None:
            raise StripeApiError(400, "Must provide source or customer.")
        return store.add(objects.new_card(None))  # a token is turned into a new card
    customer = store.get("customer", customer_id, param="customer")
    if source is None:
        if customer["default_source"] is None:
            raise StripeApiError(
                402,
                "Cannot charge a customer that has no active card",
                error_type="card_error",
                code="missing",
                param="card",
            )
        return store.get("card", customer["default_source"])
    card = store.find(source)
    if card is None or card.get("object") != "card" or card.get("customer") != customer_id:
        raise StripeApiError(
            400,
            f"Customer {customer_id} does not have a linked source with ID {source}.",
            code="missing",
            param="source",
        )
    return card


def retrieve_charge(store: Store, params: Params, object_id: str) -> Obj:
    return store.get("charge", object_id)


def list_charges(store: Store, params: Params) -> Obj:
    limit = integer(params, "limit")
    limit = 10 if limit is None else limit
    if not 1 <= limit <= 100:
        raise StripeApiError(400, "Limit must be between 1 and 100.", param="limit")
    charges = [c for c in store.newest_first("charge") if _matches(c, params)]
    charges = _page_window(store, charges, params)
    return {
        "object": "list",
        "data": charges[:limit],
        "has_more": len(charges) > limit,
        "url": "/v1/charges",
    }


def _matches(charge: Obj, params: Params) -> bool:
    return all(
        charge.get(name) == params[name]
        for name in ("customer", "payment_intent", "transfer_group")
        if params.get(name)
    )


def _page_window(store: Store, charges: list[Obj], params: Params) -> list[Obj]:
    ids = [charge["id"] for charge in charges]
    if after := string(params, "starting_after"):
        store.get("charge", after, param="starting_after")
        return charges[ids.index(after) + 1 :] if after in ids else []
    if before := string(params, "ending_before"):
        store.get("charge", before, param="ending_before")
        return charges[: ids.index(before)] if before in ids else []
    return charges


# -- refunds ----------------------------------------------------------------


def create_refund(store: Store, params: Params) -> Obj:
    charge = _charge_to_refund(store, params)
    remaining = charge["amount"] - charge["amount_refunded"]
    if remaining <= 0:
        raise StripeApiError(
            400, f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded"
        )
    amount = integer(params, "amount", positive=True) or remaining
    if amount > remaining:
        message = (
            f"Refund amount ({_money(amount, charge['currency'])}) is greater than "
            f"unrefunded amount on charge ({_money(remaining, charge['currency'])})"
        )
        raise StripeApiError(400, message, param="amount")
    refund = store.add(
        objects.new_refund(charge, amount, metadata(params), string(params, "reason"))
    )
    charge["amount_refunded"] += amount
    charge["refunded"] = charge["amount_refunded"] == charge["amount"]
    charge["refunds"]["data"].insert(0, refund)
    return refund


def _charge_to_refund(store: Store, params: Params) -> Obj:
    if charge_id := string(params, "charge"):
        return store.get("charge", charge_id, param="charge")
    if intent_id := string(params, "payment_intent"):
        intent = store.get("payment_intent", intent_id, param="payment_intent")
        if intent["latest_charge"] is None:
            raise StripeApiError(
                400,
                "This PaymentIntent does not have a successful charge to refund.",
                param="payment_intent",
            )
        return store.get("charge", intent["latest_charge"])
    raise StripeApiError(
        400,
        "One of the following params should be provided for this request: "
        "payment_intent or charge.",
        code="parameter_missing",
    )


# -- payment intents --------------------------------------------------------


def create_payment_intent(store: Store, params: Params) -> Obj:
    amount = required_amount(params)
    cur = currency(params)
    _check_minimum(amount, cur)
    if customer_id := string(params, "customer"):
        store.get("customer", customer_id, param="customer")
    _check_capture_method(params)
    intent = objects.new_payment_intent(params, amount=amount, currency=cur, meta=metadata(params))
    intent["payment_method"] = _payment_method(intent["payment_method"])
    store.add(intent)
    if boolean(params, "confirm", False):
        _confirm(store, intent)
    return intent


def _check_capture_method(params: Params) -> None:
    method = params.get("capture_method")
    if method is not None and method not in _CAPTURE_METHODS:
        raise StripeApiError(
            400,
            f"Invalid capture_method: must be one of {', '.join(_CAPTURE_METHODS)}",
            param="capture_method",
        )


def _payment_method(value: str | None) -> str | None:
    """Test shortcuts such as ``pm_card_visa`` become a new PaymentMethod id, as on Stripe."""
    if value and value.startswith("pm_card_"):
        return objects.new_id("pm")
    return value


def retrieve_payment_intent(store: Store, params: Params, object_id: str) -> Obj:
    return store.get("payment_intent", object_id)


def confirm_payment_intent(store: Store, params: Params, object_id: str) -> Obj:
    intent = store.get("payment_intent", object_id)
    if intent["status"] not in _CONFIRMABLE:
        raise _unexpected_state(intent, _confirm_refusal(intent["status"]))
    _check_capture_method(params)
    if payment_method := string(params, "payment_method"):
        intent["payment_method"] = _payment_method(payment_method)
    for name in ("capture_method", "receipt_email"):
        if value := string(params, name):
            intent[name] = value
    _confirm(store, intent)
    return intent


def _confirm_refusal(status: str) -> str:
    if status == "succeeded":
        return (
            "You cannot confirm this PaymentIntent because it has already succeeded "
            "after being previously confirmed."
        )
    return (
        f"You cannot confirm this PaymentIntent because it has a status of {status}. "
        "Only a PaymentIntent with one of the following statuses may be confirmed: "
        "requires_confirmation, requires_action, requires_payment_method."
    )


def _confirm(store: Store, intent: Obj) -> None:
    if intent["payment_method"] is None:
        raise _unexpected_state(
            intent,
            "You cannot confirm this PaymentIntent because it's missing a payment method. "
            "You can either update the PaymentIntent with a payment method and then confirm "
            "it again, or confirm it again directly with a payment method.",
        )
    manual = intent["capture_method"] == "manual"
    charge = objects.new_charge(
        amount=intent["amount"],
        currency=intent["currency"],
        captured=not manual,
        customer=intent["customer"],
        payment_intent=intent["id"],
        payment_method=intent["payment_method"],
        description=intent["description"],
        meta=dict(intent["metadata"]),
    )
    store.add(charge)
    intent.update(
        latest_charge=charge["id"],
        status="requires_capture" if manual else "succeeded",
        amount_capturable=intent["amount"] if manual else 0,
        amount_received=0 if manual else intent["amount"],
    )


def capture_payment_intent(store: Store, params: Params, object_id: str) -> Obj:
    intent = store.get("payment_intent", object_id)
    if intent["status"] != "requires_capture":
        raise _unexpected_state(
            intent,
            f"This PaymentIntent could not be captured because it has a status of "
            f"{intent['status']}. Only a PaymentIntent with one of the following statuses "
            "may be captured: requires_capture.",
        )
    capturable = intent["amount_capturable"]
    amount = integer(params, "amount_to_capture", positive=True) or capturable
    if amount > capturable:
        raise StripeApiError(
            400,
            f"The amount to capture ({amount}) must be less than or equal to the "
            f"amount capturable ({capturable}).",
            code="amount_too_large",
            param="amount_to_capture",
        )
    charge = store.get("charge", intent["latest_charge"])
    # The part of the authorisation that is not captured is released, which
    # Stripe reports as refunded on the charge.
    charge.update(
        captured=True,
        amount_captured=amount,
        amount_refunded=charge["amount"] - amount,
        balance_transaction=objects.new_id("txn"),
    )
    intent.update(status="succeeded", amount_received=amount, amount_capturable=0)
    intent["metadata"].update(metadata(params))
    return intent


def _unexpected_state(intent: Obj, message: str) -> StripeApiError:
    return StripeApiError(
        400,
        message,
        code="payment_intent_unexpected_state",
        payment_intent=copy.deepcopy(intent),
    )


# -- payouts, transfers, balance --------------------------------------------


def create_payout(store: Store, params: Params) -> Obj:
    amount = required_amount(params)
    payout = objects.new_payout(
        params, amount=amount, currency=currency(params), meta=metadata(params)
    )
    return store.add(payout)


def create_transfer(store: Store, params: Params) -> Obj:
    amount = required_amount(params)
    cur = currency(params)
    require(params, "destination")
    transfer = objects.new_transfer(params, amount=amount, currency=cur, meta=metadata(params))
    return store.add(transfer)


def retrieve_balance(store: Store, params: Params) -> Obj:
    if not objects.has_fixture("balance"):
        raise StripeApiError(404, "Unrecognized request URL (GET: /v1/balance).")
    return objects.fixture("balance")
