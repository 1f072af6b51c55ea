"""The Stripe emulator's Billing money: credit grants and notes, invoices and invoice items, quotes,
meter events, subscriptions with their items and schedules.

Answers are shaped as in ``_stripe_money`` (Stripe's examples from ``stripe-fixtures3.json``, the
request's amounts where Stripe's answer puts them). An invoice starts empty, as Stripe's do with
``pending_invoice_items_behavior: exclude`` (the default), and its amounts grow by the invoice items
made with ``invoice``: what it will charge is what a reader of it finds.
"""

from __future__ import annotations

from typing import Any

from . import _stripe_store as objects
from ._stripe_money import amount, changer, currency, new, price_data_total, retriever
from ._stripe_params import StripeApiError, boolean, integer, metadata, require, string
from ._stripe_store import Obj, Store

Params = dict[str, Any]


def credit_grant(store: Store, params: Params) -> Obj:
    granted = require(params, "amount")
    monetary = granted.get("monetary") if isinstance(granted, dict) else None
    if not isinstance(monetary, dict):
        raise StripeApiError(400, "Missing required param: amount[monetary].", param="amount")
    require(params, "category")
    value = {"currency": currency(monetary), "value": amount(monetary, "value")}
    return new(store, "billing.credit_grant", params, prefix="credgr", amount={"monetary": value, "type": "monetary"},
               customer=string(params, "customer"), category=params["category"], name=string(params, "name"))


def credit_note(store: Store, params: Params) -> Obj:
    invoice = store.get("invoice", str(require(params, "invoice")), param="invoice")
    credited = amount(params, default=invoice["amount_paid"] or invoice["amount_due"])
    return new(store, "credit_note", params, amount=credited, subtotal=credited, total=credited,
               currency=invoice["currency"], invoice=invoice["id"], customer=invoice["customer"], status="issued",
               lines=objects.empty_list("/v1/credit_notes/lines"), refunds=[], reason=string(params, "reason"))


# -- invoices ----------------------------------------------------------------


def create_invoice(store: Store, params: Params) -> Obj:
    """A draft with nothing on it yet (Stripe's default ``pending_invoice_items_behavior: exclude``);
    invoice items created with ``invoice`` add to it."""
    customer = str(require(params, "customer"))
    return new(store, "invoice", params, customer=customer, currency=currency(params, "usd"), status="draft",
               auto_advance=boolean(params, "auto_advance", False), amount_due=0, amount_paid=0,
               amount_remaining=0, subtotal=0, total=0, lines=objects.empty_list("/v1/invoices/lines"))


def create_invoice_item(store: Store, params: Params) -> Obj:
    customer = str(require(params, "customer"))
    value = integer(params, "amount")
    if value is None:
        raise StripeApiError(400, "Missing required param: amount.", code="parameter_missing", param="amount")
    invoice_id = string(params, "invoice")
    invoice = store.get("invoice", invoice_id, param="invoice") if invoice_id else None
    item = new(store, "invoiceitem", params, amount=value, currency=currency(params), customer=customer,
               invoice=invoice_id, description=string(params, "description"), quantity=1)
    if invoice is not None:
        for name in ("amount_due", "amount_remaining", "subtotal", "total"):
            invoice[name] += value
    return item


def update_invoice(store: Store, params: Params, object_id: str) -> Obj:
    invoice = store.get("invoice", object_id)
    invoice["auto_advance"] = boolean(params, "auto_advance", invoice["auto_advance"])
    invoice["metadata"].update(metadata(params))
    return invoice


def finalize_invoice(store: Store, params: Params, object_id: str) -> Obj:
    invoice = store.get("invoice", object_id)
    if invoice["status"] != "draft":
        raise StripeApiError(400, "This invoice is already finalized, you can't re-finalize a non-draft invoice.",
                             code="invoice_not_editable")
    invoice["status"] = "open"
    return invoice


def pay_invoice(store: Store, params: Params, object_id: str) -> Obj:
    invoice = store.get("invoice", object_id)
    if invoice["status"] not in ("draft", "open"):  # Stripe finalizes a draft it is asked to pay
        raise StripeApiError(400, "Invoice is already paid.", code="invoice_already_paid")
    invoice.update(amount_paid=invoice["amount_paid"] + invoice["amount_remaining"], amount_remaining=0,
                   status="paid", paid=True)
    return invoice


# -- quotes ---------------------------------------------------------------------


def create_quote(store: Store, params: Params) -> Obj:
    total, cur = price_data_total(params.get("line_items"))
    return new(store, "quote", params, customer=string(params, "customer"), status="draft", amount_subtotal=total,
               amount_total=total, currency=cur or "usd")


def accept_quote(store: Store, params: Params, object_id: str) -> Obj:
    quote = store.get("quote", object_id)
    if quote["status"] not in ("draft", "open"):
        raise StripeApiError(400, f"This quote has a status of {quote['status']}.", code="quote_unexpected_state")
    quote["status"] = "accepted"
    return quote


def create_subscription(store: Store, params: Params) -> Obj:
    """``default_tax_rates`` arrives as a list (``default_tax_rates[0]=txr_1``) and is answered expanded."""
    customer = str(require(params, "customer"))
    rates = params.get("default_tax_rates") or []
    if not isinstance(rates, list) or not all(isinstance(rate, str) for rate in rates):
        raise StripeApiError(400, "Invalid array", param="default_tax_rates")
    return new(store, "subscription", params, customer=customer, status="active",
               default_tax_rates=[{**objects.fixture("tax_rate"), "id": rate} for rate in rates])


def create_subscription_item(store: Store, params: Params) -> Obj:
    subscription = store.get("subscription", str(require(params, "subscription")), param="subscription")
    return new(store, "subscription_item", params, subscription=subscription["id"], quantity=1)


def delete_subscription_item(store: Store, params: Params, object_id: str) -> Obj:
    store.get("subscription_item", object_id)
    return {"id": object_id, "object": "subscription_item", "deleted": True}


def create_subscription_schedule(store: Store, params: Params) -> Obj:
    if not (string(params, "customer") or string(params, "from_subscription")):
        raise StripeApiError(400, "Missing required param: customer.", code="parameter_missing", param="customer")
    return new(store, "subscription_schedule", params, customer=string(params, "customer"), status="not_started",
               subscription=string(params, "from_subscription"))


def meter_event(store: Store, params: Params) -> Obj:
    """Not stored: a meter event has no id, Stripe keeps only its aggregates."""
    require(params, "event_name")
    payload = require(params, "payload")
    return {**objects.fixture("billing.meter_event"), "event_name": params["event_name"], "payload": payload,
            "identifier": string(params, "identifier") or objects.random_token(20), "created": objects.now(),
            "timestamp": integer(params, "timestamp") or objects.now(), "livemode": False}


def create_meter(store: Store, params: Params) -> Obj:
    """A meter reads its customer from the event payload key ``customer_mapping`` names
    (``stripe_customer_id`` unless it says otherwise), its value from ``value_settings``'s."""
    for name in ("display_name", "event_name", "default_aggregation"):
        require(params, name)
    mapping = params.get("customer_mapping") or {"event_payload_key": "stripe_customer_id", "type": "by_id"}
    return new(store, "billing.meter", params, prefix="mtr", display_name=params["display_name"],
               event_name=params["event_name"], default_aggregation=params["default_aggregation"],
               customer_mapping=mapping, status="active", updated=objects.now(),
               value_settings=params.get("value_settings") or {"event_payload_key": "value"})


def list_meters(store: Store, params: Params) -> Obj:
    limit = integer(params, "limit") or 10
    meters = [m for m in store.newest_first("billing.meter") if params.get("status") in (None, m["status"])]
    return {"object": "list", "data": meters[:limit], "has_more": len(meters) > limit, "url": "/v1/billing/meters"}


ROUTES: tuple[tuple[str, str, Any, str], ...] = (
    ("POST", "/v1/billing/meters", create_meter, "billing.MeterCreateParams"),
    ("GET", "/v1/billing/meters", list_meters, "billing.MeterListParams"),
    ("POST", "/v1/billing/credit_grants", credit_grant, "billing.CreditGrantCreateParams"),
    ("POST", "/v1/billing/meter_events", meter_event, "billing.MeterEventCreateParams"),
    ("POST", "/v1/credit_notes", credit_note, "CreditNoteCreateParams"),
    ("POST", "/v1/invoiceitems", create_invoice_item, "InvoiceItemCreateParams"),
    ("POST", "/v1/invoices", create_invoice, "InvoiceCreateParams"),
    ("GET", "/v1/invoices/{object_id}", retriever("invoice"), "InvoiceRetrieveParams"),
    ("POST", "/v1/invoices/{object_id}", update_invoice, "InvoiceUpdateParams"),
    ("POST", "/v1/invoices/{object_id}/finalize", finalize_invoice, "InvoiceFinalizeInvoiceParams"),
    ("POST", "/v1/invoices/{object_id}/pay", pay_invoice, "InvoicePayParams"),
    ("POST", "/v1/quotes", create_quote, "QuoteCreateParams"),
    ("POST", "/v1/quotes/{object_id}/accept", accept_quote, "QuoteAcceptParams"),
    ("POST", "/v1/subscription_items", create_subscription_item, "SubscriptionItemCreateParams"),
    ("DELETE", "/v1/subscription_items/{object_id}", delete_subscription_item, "SubscriptionItemDeleteParams"),
    ("POST", "/v1/subscription_items/{object_id}", changer("subscription_item"), "SubscriptionItemUpdateParams"),
    ("POST", "/v1/subscription_schedules", create_subscription_schedule, "SubscriptionScheduleCreateParams"),
    ("POST", "/v1/subscription_schedules/{object_id}", changer("subscription_schedule"),
     "SubscriptionScheduleUpdateParams"),
    ("POST", "/v1/subscription_schedules/{object_id}/cancel", changer("subscription_schedule", status="canceled"),
     "SubscriptionScheduleCancelParams"),
    ("POST", "/v1/subscriptions", create_subscription, "SubscriptionCreateParams"),
    ("DELETE", "/v1/subscriptions/{object_id}", changer("subscription", status="canceled"),
     "SubscriptionCancelParams"),
    ("POST", "/v1/subscriptions/{object_id}", changer("subscription"), "SubscriptionUpdateParams"),
    ("POST", "/v1/subscriptions/{object_id}/pause", changer("subscription", status="paused"),
     "SubscriptionPauseParams"),
    ("POST", "/v1/subscriptions/{object_id}/resume", changer("subscription", status="active"),
     "SubscriptionResumeParams"),
)
