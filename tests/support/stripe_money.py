"""How to call each money-moving Stripe operation for real, under a per-call limit, through the
SDK's own service method (tests/test_stripe_money_catalogue.py).

``service_method`` finds the method stripe-python sends an operation with, from the same reading
of its service modules the catalogue test uses (vendors/stripe/sdk_operations.py): the service
class and function that hold the ``_request(...)`` call, found on a ``StripeClient`` by walking
its ``v1`` and ``v2`` services. ``CALLS`` gives each operation the arguments a caller would send
(10.00 USD where the request names an amount) and makes, through Tollgate with another key, the
object it acts on: Stripe (the emulator) refuses a call on an object that does not exist, and
a call priced by a look-up needs one to read.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

import stripe

from vendors.stripe.sdk_operations import read_sdk_operations

AMOUNT = 1000  # 10.00 USD, under the test's 50.00 USD per-call limit
CARD = "ic_1MvSieLkdIwHu7ixn6uuO0Xu"  # an Issuing card (the emulator takes any id)
Call = tuple[list[str], dict[str, Any]]  # path arguments, params


@functools.cache
def _sdk_methods() -> dict[tuple[str, str, str], tuple[str, str]]:
    spec = importlib.util.find_spec("stripe")
    assert spec is not None and spec.origin is not None
    return {op.key: ("stripe." + op.module.removesuffix(".py").replace("/", "."), op.function)
            for op in read_sdk_operations(Path(spec.origin).parent)}


def _services(service: Any, found: dict[str, Any]) -> dict[str, Any]:
    """Every service reachable from ``service``, by module (class names repeat: checkout's and
    billing_portal's are both ``SessionService``); stripe-python loads them on first use."""
    for name, annotation in getattr(type(service), "__annotations__", {}).items():
        if isinstance(annotation, str) and annotation.endswith("Service"):
            child = getattr(service, name)
            found.setdefault(type(child).__module__, child)
            _services(child, found)
    return found


def service_method(client: stripe.StripeClient, method: str, path: str, host: str) -> Callable[..., Any]:
    """The bound SDK method that sends ``method path`` to ``host``, as an agent would call it."""
    module, function = _sdk_methods()[(method, path, host)]
    services = _services(client.v2, _services(client.v1, {}))
    found: Callable[..., Any] = getattr(services[module], function)
    return found


class Setup:
    """Makes the objects a call acts on, through Tollgate with a key of its own (another run)."""

    def __init__(self, client: stripe.StripeClient) -> None:
        self.c = client.v1
        self.v2 = client.v2

    def customer(self) -> str:
        return str(self.c.customers.create(params={"email": "ana@example.com", "source": "tok_visa"}).id)

    def charge(self, **extra: Any) -> stripe.Charge:
        return self.c.charges.create(params={"amount": 1500, "currency": "usd", "source": "tok_visa", **extra})

    def intent(self, confirm: bool = False, **extra: Any) -> str:
        params = {"amount": AMOUNT, "currency": "usd", "payment_method": "pm_card_visa", **extra}
        intent = self.c.payment_intents.create(params=params)
        if confirm:
            self.c.payment_intents.confirm(intent.id)
        return str(intent.id)

    def invoice(self) -> str:
        """A draft invoice for 10.00 USD: an invoice item put on it."""
        customer = self.customer()
        invoice = self.c.invoices.create(params={"customer": customer, "currency": "usd"})
        self.c.invoice_items.create(params={"customer": customer, "invoice": invoice.id, "amount": AMOUNT,
                                            "currency": "usd"})
        return str(invoice.id)

    def paid_invoice(self) -> str:
        invoice = self.invoice()
        self.c.invoices.pay(invoice)
        return invoice

    def subscription(self) -> str:
        params = {"customer": self.customer(), "items": [{"price": "price_1MoBy5LkdIwHu7ixZhnattbh"}]}
        return str(self.c.subscriptions.create(params=params).id)

    def authorization(self) -> str:
        params = {"card": CARD, "amount": AMOUNT, "currency": "usd"}
        return str(self.c.test_helpers.issuing.authorizations.create(params=params).id)

    def card_capture(self) -> str:
        params = {"amount": AMOUNT, "currency": "usd", "card": CARD}
        return str(self.c.test_helpers.issuing.transactions.create_force_capture(params=params).id)

    def financial_address(self) -> str:
        params = {"financial_account": "fa_test_1", "type": "us_bank_account"}
        return str(self.v2.money_management.financial_addresses.create(params=params).id)

    def financial_account(self) -> str:
        params = {"supported_currencies": ["usd"], "features": {}}
        return str(self.c.treasury.financial_accounts.create(params=params).id)

    def treasury_payment(self) -> str:
        params = {"amount": AMOUNT, "currency": "usd", "financial_account": self.financial_account(),
                  "destination_payment_method": "pm_usBankAccount"}
        return str(self.c.treasury.outbound_payments.create(params=params).id)

    def received(self, kind: str) -> str:
        service = getattr(self.c.test_helpers.treasury, kind)
        params = {"amount": AMOUNT, "currency": "usd", "financial_account": self.financial_account(), "network": "ach"}
        return str(service.create(params=params).id)

    def reader(self) -> str:
        return str(self.c.terminal.readers.create(params={"registration_code": "simulated-wpe"}).id)

    def v2_amount(self) -> dict[str, Any]:
        return {"value": AMOUNT, "currency": "usd"}


def _amounted(name: str = "amount", **more: Any) -> Callable[[Setup], Call]:
    return lambda s: ([], {name: AMOUNT, "currency": "usd", **more})


_PRICE_DATA = {"currency": "usd", "unit_amount": AMOUNT, "product_data": {"name": "T-shirt"}}
_V2_FROM_TO = {"from": {"currency": "usd", "financial_account": "fa_test_1"},
               "to": {"currency": "usd", "payout_method": "usba_test_1", "recipient": "acct_1032D82eZvKYlo2C"}}

CALLS: dict[str, Callable[[Setup], Call]] = {
    "POST /v1/application_fees/{id}/refunds":
        lambda s: ([s.charge(application_fee_amount=AMOUNT).application_fee], {"amount": AMOUNT}),
    "POST /v1/billing/credit_grants": lambda s: ([], {
        "customer": s.customer(), "category": "paid", "applicability_config": {"scope": {"price_type": "metered"}},
        "amount": {"type": "monetary", "monetary": {"value": AMOUNT, "currency": "usd"}}}),
    "POST /v1/billing/meter_events": lambda s: ([], {
        "event_name": "api_calls", "payload": {"stripe_customer_id": s.customer(), "value": "25"}}),
    "POST /v1/charges": _amounted(source="tok_visa"),
    "POST /v1/charges/{charge}/capture": lambda s: ([s.charge(capture=False).id], {"amount": AMOUNT}),
    "POST /v1/checkout/sessions": lambda s: ([], {
        "mode": "payment", "success_url": "https://example.com/done",
        "line_items": [{"price_data": _PRICE_DATA, "quantity": 1}]}),
    "POST /v1/climate/orders": lambda s: ([], {"product": "climsku_frontier_offtake_portfolio_2027",
                                               "amount": AMOUNT, "currency": "usd"}),
    "POST /v1/credit_notes": lambda s: ([], {"invoice": s.paid_invoice(), "amount": AMOUNT}),
    "POST /v1/customers/{customer}/balance_transactions": lambda s: ([s.customer()], {"amount": AMOUNT,
                                                                                       "currency": "usd"}),
    "POST /v1/forwarding/requests": lambda s: ([], {
        "payment_method": "pm_card_visa", "url": "https://endpoint.example/charges", "replacements": ["card_number"],
        "request": {"body": "{}"}}),
    "POST /v1/invoiceitems": lambda s: ([], {"customer": s.customer(), "amount": AMOUNT, "currency": "usd"}),
    "POST /v1/invoices": lambda s: ([], {"customer": s.customer(), "auto_advance": True}),
    "POST /v1/invoices/{invoice}": lambda s: ([s.invoice()], {"auto_advance": True}),
    "POST /v1/invoices/{invoice}/finalize": lambda s: ([s.invoice()], {}),
    "POST /v1/invoices/{invoice}/pay": lambda s: ([s.invoice()], {}),
    "POST /v1/issuing/authorizations/{authorization}/approve": lambda s: ([s.authorization()], {"amount": AMOUNT}),
    "POST /v1/payment_intents": _amounted(payment_method="pm_card_visa", confirm=True),
    "POST /v1/payment_intents/{intent}/apply_customer_balance": lambda s: ([s.intent()], {"amount": AMOUNT}),
    "POST /v1/payment_intents/{intent}/capture":
        lambda s: ([s.intent(confirm=True, capture_method="manual")], {"amount_to_capture": AMOUNT}),
    "POST /v1/payment_intents/{intent}/confirm": lambda s: ([s.intent()], {}),
    "POST /v1/payment_intents/{intent}/increment_authorization":
        lambda s: ([s.intent(confirm=True, capture_method="manual")], {"amount": 1500}),
    "POST /v1/payment_intents/{intent}/verify_microdeposits":
        lambda s: ([s.intent()], {"amounts": [32, 45]}),
    "POST /v1/payment_links": lambda s: ([], {"line_items": [{"price": "price_1MoBy5LkdIwHu7ixZhnattbh",
                                                              "quantity": 1}]}),
    "POST /v1/payouts": _amounted(),
    "POST /v1/payouts/{payout}/reverse":
        lambda s: ([s.c.payouts.create(params={"amount": AMOUNT, "currency": "usd"}).id], {}),
    "POST /v1/quotes/{quote}/accept": lambda s: ([s.c.quotes.create(params={
        "customer": s.customer(), "line_items": [{"price_data": {**_PRICE_DATA, "product": "prod_1"}}]}).id], {}),
    "POST /v1/refunds": lambda s: ([], {"charge": s.charge().id, "amount": AMOUNT}),
    "POST /v1/subscription_items": lambda s: ([], {"subscription": s.subscription(),
                                                   "price": "price_1MoBy5LkdIwHu7ixZhnattbh"}),
    "DELETE /v1/subscription_items/{item}":
        lambda s: ([_item(s)], {"proration_behavior": "always_invoice"}),
    "POST /v1/subscription_items/{item}": lambda s: ([_item(s)], {"quantity": 2}),
    "POST /v1/subscription_schedules": lambda s: ([], {
        "customer": s.customer(), "start_date": "now", "phases": [{"items": [{"price": "price_1"}]}]}),
    "POST /v1/subscription_schedules/{schedule}": lambda s: ([_schedule(s)], {"end_behavior": "release"}),
    "POST /v1/subscription_schedules/{schedule}/cancel": lambda s: ([_schedule(s)], {"invoice_now": True}),
    "POST /v1/subscriptions": lambda s: ([], {"customer": s.customer(), "items": [{"price": "price_1"}]}),
    "DELETE /v1/subscriptions/{subscription_exposed_id}": lambda s: ([s.subscription()], {"invoice_now": True}),
    "POST /v1/subscriptions/{subscription_exposed_id}":
        lambda s: ([s.subscription()], {"proration_behavior": "always_invoice"}),
    "POST /v1/subscriptions/{subscription}/pause": lambda s: ([s.subscription()], {"invoicing_behavior": "invoice"}),
    "POST /v1/subscriptions/{subscription}/resume": lambda s: ([s.subscription()], {"billing_cycle_anchor": "now"}),
    "POST /v1/terminal/readers/{reader}/confirm_payment_intent":
        lambda s: ([s.reader()], {"payment_intent": s.intent()}),
    "POST /v1/terminal/readers/{reader}/process_payment_intent":
        lambda s: ([s.reader()], {"payment_intent": s.intent()}),
    "POST /v1/terminal/readers/{reader}/refund_payment":
        lambda s: ([s.reader()], {"charge": s.charge().id, "amount": AMOUNT}),
    "POST /v1/test_helpers/customers/{customer}/fund_cash_balance":
        lambda s: ([s.customer()], {"amount": AMOUNT, "currency": "usd"}),
    "POST /v1/test_helpers/issuing/authorizations": _amounted(card=CARD),
    "POST /v1/test_helpers/issuing/authorizations/{authorization}/capture":
        lambda s: ([s.authorization()], {"capture_amount": AMOUNT}),
    "POST /v1/test_helpers/issuing/authorizations/{authorization}/finalize_amount":
        lambda s: ([s.authorization()], {"final_amount": AMOUNT}),
    "POST /v1/test_helpers/issuing/authorizations/{authorization}/increment":
        lambda s: ([s.authorization()], {"increment_amount": 500}),
    "POST /v1/test_helpers/issuing/transactions/create_force_capture": _amounted(card=CARD),
    "POST /v1/test_helpers/issuing/transactions/create_unlinked_refund":
        _amounted(card=CARD),
    "POST /v1/test_helpers/issuing/transactions/{transaction}/refund":
        lambda s: ([s.card_capture()], {"refund_amount": AMOUNT}),
    "POST /v1/test_helpers/terminal/readers/{reader}/present_payment_method": lambda s: ([_busy_reader(s)], {}),
    "POST /v1/test_helpers/test_clocks/{test_clock}/advance": lambda s: ([
        s.c.test_helpers.test_clocks.create(params={"frozen_time": 1_700_000_000}).id], {"frozen_time": 1_700_086_400}),
    "POST /v1/test_helpers/treasury/inbound_transfers/{id}/return": lambda s: ([_inbound(s, succeeded=True)], {}),
    "POST /v1/test_helpers/treasury/inbound_transfers/{id}/succeed": lambda s: ([_inbound(s)], {}),
    "POST /v1/test_helpers/treasury/outbound_payments/{id}/post": lambda s: ([s.treasury_payment()], {}),
    "POST /v1/test_helpers/treasury/outbound_payments/{id}/return": lambda s: ([s.treasury_payment()], {}),
    "POST /v1/test_helpers/treasury/outbound_transfers/{outbound_transfer}/post": lambda s: ([_outbound(s)], {}),
    "POST /v1/test_helpers/treasury/outbound_transfers/{outbound_transfer}/return": lambda s: ([_outbound(s)], {}),
    "POST /v1/test_helpers/treasury/received_credits":
        lambda s: ([], {"amount": AMOUNT, "currency": "usd", "financial_account": s.financial_account(),
                        "network": "ach"}),
    "POST /v1/test_helpers/treasury/received_debits":
        lambda s: ([], {"amount": AMOUNT, "currency": "usd", "financial_account": s.financial_account(),
                        "network": "ach"}),
    "POST /v1/topups": _amounted(),
    "POST /v1/transfers": _amounted(destination="acct_1032D82eZvKYlo2C"),
    "POST /v1/transfers/{id}/reversals": lambda s: ([s.c.transfers.create(params={
        "amount": 1500, "currency": "usd", "destination": "acct_1032D82eZvKYlo2C"}).id], {"amount": AMOUNT}),
    "POST /v1/treasury/credit_reversals": lambda s: ([], {"received_credit": s.received("received_credits")}),
    "POST /v1/treasury/debit_reversals": lambda s: ([], {"received_debit": s.received("received_debits")}),
    "POST /v1/treasury/financial_accounts/{financial_account}/close": lambda s: ([s.financial_account()], {}),
    "POST /v1/treasury/inbound_transfers": lambda s: ([], {
        "amount": AMOUNT, "currency": "usd", "financial_account": s.financial_account(),
        "origin_payment_method": "pm_usBankAccount"}),
    "POST /v1/treasury/outbound_payments": lambda s: ([], {
        "amount": AMOUNT, "currency": "usd", "financial_account": s.financial_account(),
        "destination_payment_method": "pm_usBankAccount"}),
    "POST /v1/treasury/outbound_transfers": lambda s: ([], {
        "amount": AMOUNT, "currency": "usd", "financial_account": s.financial_account(),
        "destination_payment_method": "pm_usBankAccount"}),
    "POST /meter_events/v2/billing/meter_event_stream": lambda s: ([], {"events": [{
        "event_name": "api_calls", "payload": {"stripe_customer_id": s.customer(), "value": "25"}}]}),
    "POST /v2/billing/meter_events": lambda s: ([], {
        "event_name": "api_calls", "payload": {"stripe_customer_id": s.customer(), "value": "25"}}),
    "POST /v2/money_management/inbound_transfers": lambda s: ([], {
        "amount": s.v2_amount(), "from": {"currency": "usd", "payment_method": "usba_test_1"},
        "to": {"currency": "usd", "financial_account": "fa_test_1"}}),
    "POST /v2/money_management/outbound_payments": lambda s: ([], {"amount": s.v2_amount(), **_V2_FROM_TO}),
    "POST /v2/money_management/payout_intents": lambda s: ([], {"amount": s.v2_amount(), **_V2_FROM_TO}),
    "POST /v2/money_management/payout_intents/{id}/confirm": lambda s: ([
        s.v2.money_management.payout_intents.create(params={"amount": s.v2_amount(), **_V2_FROM_TO}).id], {}),
    "POST /v2/money_management/test_helpers/financial_addresses/{id}/credit":
        lambda s: ([s.financial_address()], {"amount": s.v2_amount(), "network": "ach"}),
}


def _item(s: Setup) -> str:
    params = {"subscription": s.subscription(), "price": "price_1MoBy5LkdIwHu7ixZhnattbh"}
    return str(s.c.subscription_items.create(params=params).id)


def _schedule(s: Setup) -> str:
    params = {"customer": s.customer(), "start_date": "now", "phases": [{"items": [{"price": "price_1"}]}]}
    return str(s.c.subscription_schedules.create(params=params).id)


def _busy_reader(s: Setup) -> str:
    reader = s.reader()
    s.c.terminal.readers.process_payment_intent(reader, params={"payment_intent": s.intent()})
    return reader


def _inbound(s: Setup, succeeded: bool = False) -> str:
    transfer = s.c.treasury.inbound_transfers.create(params={
        "amount": AMOUNT, "currency": "usd", "financial_account": s.financial_account(),
        "origin_payment_method": "pm_usBankAccount"}).id
    if succeeded:
        s.c.test_helpers.treasury.inbound_transfers.succeed(transfer)
    return str(transfer)


def _outbound(s: Setup) -> str:
    params = {"amount": AMOUNT, "currency": "usd", "financial_account": s.financial_account(),
              "destination_payment_method": "pm_usBankAccount"}
    return str(s.c.treasury.outbound_transfers.create(params=params).id)
