"""Object store and object builders for the Stripe emulator.

Every object starts as a deep copy of Stripe's own example from
``emulators/fixtures/stripe-fixtures3.json`` (stripe/openapi ``fixtures3.json``);
builders then overwrite the fields that the request or the object's state
decides (id, amount, currency, customer, metadata, created, status, ...).
Fields that describe a state the new object cannot be in (a fresh
PaymentIntent is not ``canceled_at`` anything, a new customer has no
``discount``) are reset to ``None``; everything else keeps the fixture's value.
"""

from __future__ import annotations

import copy
import functools
import json
import secrets
import string
import time
from pathlib import Path
from typing import Any

from ._stripe_params import StripeApiError

FIXTURES_PATH = Path(__file__).resolve().parent / "fixtures" / "stripe-fixtures3.json"

_ALPHANUMERIC = string.ascii_letters + string.digits

Obj = dict[str, Any]


@functools.cache
def _resources() -> dict[str, Obj]:
    return json.loads(FIXTURES_PATH.read_text(encoding="utf-8"))["resources"]


def fixture(name: str) -> Obj:
    """A private deep copy of Stripe's example ``name`` object."""
    return copy.deepcopy(_resources()[name])


def has_fixture(name: str) -> bool:
    return name in _resources()


def random_token(length: int, alphabet: str = _ALPHANUMERIC) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def new_id(prefix: str) -> str:
    """A Stripe-style id: ``prefix_`` plus 24 random alphanumerics."""
    return f"{prefix}_{random_token(24)}"


def now() -> int:
    return int(time.time())


def empty_list(url: str) -> Obj:
    return {"object": "list", "data": [], "has_more": False, "url": url}


class Store:
    """In-memory objects of one emulator instance, by kind then id (insertion ordered)."""

    KINDS = ("customer", "card", "charge", "refund", "payment_intent", "payout", "transfer", "event",
             "balance_transaction")

    def __init__(self) -> None:
        self._objects: dict[str, dict[str, Obj]] = {kind: {} for kind in self.KINDS}

    def add(self, obj: Obj) -> Obj:
        self._objects.setdefault(obj["object"], {})[obj["id"]] = obj  # v2 and file objects: kinds of their own
        return obj

    def get(self, kind: str, object_id: str, *, param: str = "id") -> Obj:
        found = self._objects.get(kind, {}).get(object_id)
        if found is None:
            raise StripeApiError(
                404, f"No such {kind}: '{object_id}'", code="resource_missing", param=param
            )
        return found

    def find(self, object_id: str) -> Obj | None:
        """Any stored object with this id, whatever its kind (used by ``expand``)."""
        for objects in self._objects.values():
            if object_id in objects:
                return objects[object_id]
        return None

    def newest_first(self, kind: str) -> list[Obj]:
        return list(reversed(self._objects.get(kind, {}).values()))


# -- builders ---------------------------------------------------------------


def new_card(customer_id: str | None) -> Obj:
    card = fixture("card")
    card.update(id=new_id("card"), customer=customer_id, metadata={})
    return card


def new_customer(params: dict[str, Any], meta: dict[str, str], default_source: str | None) -> Obj:
    customer = fixture("customer")
    customer.update(
        id=new_id("cus"),
        created=now(),
        currency=None,
        default_source=default_source,
        discount=None,
        shipping=None,
        invoice_prefix=random_token(8, string.ascii_uppercase + string.digits),
        metadata=meta,
        livemode=False,
    )
    for name in ("email", "name", "description", "phone"):
        customer[name] = params.get(name) or None
    return customer


def new_charge(
    *,
    amount: int,
    currency: str,
    captured: bool,
    customer: str | None = None,
    card: Obj | None = None,
    payment_intent: str | None = None,
    payment_method: str | None = None,
    description: str | None = None,
    meta: dict[str, str] | None = None,
) -> Obj:
    charge = fixture("charge")
    charge_id = new_id("ch")
    charge.update(
        id=charge_id,
        amount=amount,
        amount_captured=amount if captured else 0,
        amount_refunded=0,
        refunded=False,
        captured=captured,
        paid=True,
        status="succeeded",
        created=now(),
        currency=currency,
        customer=customer,
        description=description,
        metadata=meta or {},
        payment_intent=payment_intent,
        payment_method=card["id"] if card else payment_method,
        source=card,
        balance_transaction=new_id("txn") if captured else None,
        refunds=empty_list(f"/v1/charges/{charge_id}/refunds"),
        receipt_url=f"https://pay.stripe.com/receipts/payment/{random_token(60)}",
        shipping=None,
        transfer_data=None,
        livemode=False,
    )
    charge["outcome"].update(
        network_status="approved_by_network", seller_message="Payment complete.", type="authorized"
    )
    card_details = charge["payment_method_details"]["card"]
    card_details["overcapture"]["maximum_amount_capturable"] = amount
    card_details["wallet"] = None
    return charge


def new_refund(charge: Obj, amount: int, meta: dict[str, str], reason: str | None) -> Obj:
    refund = fixture("refund")
    refund.update(
        id=new_id("re"),
        amount=amount,
        charge=charge["id"],
        currency=charge["currency"],
        payment_intent=charge["payment_intent"],
        balance_transaction=new_id("txn"),
        created=now(),
        metadata=meta,
        reason=reason,
        status="succeeded",
    )
    return refund


def new_payment_intent(params: dict[str, Any], *, amount: int, currency: str, meta: dict) -> Obj:
    intent = fixture("payment_intent")
    intent_id = new_id("pi")
    intent.update(
        id=intent_id,
        client_secret=f"{intent_id}_secret_{random_token(25)}",
        amount=amount,
        amount_capturable=0,
        amount_received=0,
        currency=currency,
        created=now(),
        metadata=meta,
        canceled_at=None,
        last_payment_error=None,
        latest_charge=None,
        next_action=None,
        processing=None,
        shipping=None,
        transfer_data=None,
        livemode=False,
    )
    for name in ("customer", "description", "payment_method", "receipt_email"):
        intent[name] = params.get(name) or None
    intent["capture_method"] = params.get("capture_method") or "automatic"
    intent["confirmation_method"] = params.get("confirmation_method") or "automatic"
    if params.get("payment_method_types"):
        intent["payment_method_types"] = list(params["payment_method_types"])
        intent["automatic_payment_methods"] = None
        intent["payment_method_configuration_details"] = None
    intent["status"] = (
        "requires_confirmation" if intent["payment_method"] else "requires_payment_method"
    )
    return intent


def new_payout(params: dict[str, Any], *, amount: int, currency: str, meta: dict) -> Obj:
    payout = fixture("payout")
    created = now()
    payout.update(
        id=new_id("po"),
        amount=amount,
        currency=currency,
        created=created,
        arrival_date=created,
        automatic=False,
        balance_transaction=new_id("txn"),
        metadata=meta,
        status="pending",
        livemode=False,
    )
    for name in ("description", "destination", "method", "source_type", "statement_descriptor"):
        if params.get(name):
            payout[name] = params[name]
    return payout


def new_transfer(params: dict[str, Any], *, amount: int, currency: str, meta: dict) -> Obj:
    transfer = fixture("transfer")
    transfer_id = new_id("tr")
    transfer.update(
        id=transfer_id,
        amount=amount,
        amount_reversed=0,
        currency=currency,
        created=now(),
        destination=params["destination"],
        destination_payment=f"py_{random_token(14)}",
        balance_transaction=new_id("txn"),
        metadata=meta,
        reversals=empty_list(f"/v1/transfers/{transfer_id}/reversals"),
        reversed=False,
        livemode=False,
    )
    for name in ("description", "source_transaction", "transfer_group"):
        transfer[name] = params.get(name) or None
    transfer["source_type"] = params.get("source_type") or transfer["source_type"]
    return transfer


def new_application_fee(charge: Obj, amount: int) -> Obj:
    fee = fixture("application_fee")
    fee.update(id=new_id("fee"), amount=amount, amount_refunded=0, refunded=False, charge=charge["id"],
               currency=charge["currency"], created=now(), livemode=False, balance_transaction=new_id("txn"),
               refunds=empty_list("/v1/application_fees/refunds"))
    return fee
