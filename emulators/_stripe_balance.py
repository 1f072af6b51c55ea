"""Balance transactions of the Stripe emulator: what a charge, refund or payout moved in the account.

Stripe records every movement of an account's balance as a balance transaction, in the account's
settlement currency: a charge in EUR on an account that settles in USD has ``amount`` in US cents,
``exchange_rate`` (USD per EUR, as Stripe converted it) and Stripe's ``fee``. The object's own
``balance_transaction`` field names it; ``GET /v1/balance_transactions/{id}`` or
``expand[]=balance_transaction`` on the object answer it. Each is built from Stripe's example
(``stripe-fixtures3.json``'s ``balance_transaction``) with ``source`` set to the object.

The emulated account settles in USD. Its conversion rates are not the reference's: Stripe converts
at its own rate, which includes its conversion fee (about 1%), so the settled amount is a little
under a mid-market conversion, as on a real account. The rates below are the ECB's reference of
2024-06-28 (the day tests/fixtures/ecb_eurofxref-daily.xml holds), in USD per unit, less 1%. A
currency without one settles as itself (an account that holds that currency), with no rate.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from . import _stripe_store as objects
from ._stripe_store import Obj, Store

SETTLEMENT_CURRENCY = "usd"
SETTLED_KINDS = ("charge", "refund", "payout")
# Stripe's zero-decimal currencies (https://docs.stripe.com/currencies); the rated ones are all two-decimal else.
ZERO_DECIMAL = frozenset({"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "vnd", "vuv", "xaf",
                          "xof", "xpf"})
RATES = {  # USD per unit at which the emulated account converts (reference less 1%)
    "eur": Decimal("1.059795"), "gbp": Decimal("1.252150"), "jpy": Decimal("0.006164"), "cad": Decimal("0.722423"),
    "aud": Decimal("0.659117"), "chf": Decimal("1.100057"), "sek": Decimal("0.093296"), "nok": Decimal("0.092993"),
    "dkk": Decimal("0.142111"), "pln": Decimal("0.245949"), "isk": Decimal("0.007117"), "mxn": Decimal("0.054167"),
    "sgd": Decimal("0.730238"), "hkd": Decimal("0.126779"), "nzd": Decimal("0.602122"),
}
_CARD_PERCENT, _CARD_FIXED = Decimal("0.029"), 30  # Stripe's US card pricing: 2.9% + 30 cents


def settled(amount: int, currency: str) -> tuple[int, str, Decimal | None]:
    """(amount in the settlement currency's minor unit, that currency, the rate used) for ``amount``."""
    rate = RATES.get(currency)
    if currency == SETTLEMENT_CURRENCY or rate is None:
        return amount, currency, None
    major = Decimal(amount).scaleb(0 if currency in ZERO_DECIMAL else -2)
    return int((major * rate * 100).quantize(Decimal(1), ROUND_HALF_EVEN)), SETTLEMENT_CURRENCY, rate


def _moved(obj: Obj) -> int:
    """What the object moved, signed as Stripe signs it: money in positive, money out negative."""
    if obj["object"] == "charge":
        return int(obj["amount_captured"] or obj["amount"])
    return -int(obj["amount"])


def new_balance_transaction(obj: Obj, txn_id: str) -> Obj:
    amount, currency, rate = settled(_moved(obj), obj["currency"])
    fee = int((Decimal(amount) * _CARD_PERCENT).quantize(Decimal(1))) + _CARD_FIXED if obj["object"] == "charge" else 0
    txn = objects.fixture("balance_transaction")
    txn.update(
        id=txn_id, amount=amount, currency=currency, exchange_rate=float(rate) if rate is not None else None,
        fee=fee, net=amount - fee, source=obj["id"], type=obj["object"], reporting_category=obj["object"],
        created=obj.get("created") or objects.now(), available_on=objects.now() + 2 * 86400,
        status="pending" if obj["object"] == "charge" else "available", description=obj.get("description"),
        fee_details=[{"amount": fee, "application": None, "currency": currency, "description": "Stripe processing fees",
                      "type": "stripe_fee"}] if fee else [],
    )
    return txn


def record(store: Store, answer: Any) -> None:
    """Store the balance transaction of what ``answer`` (a handler's object) moved, once."""
    if not isinstance(answer, dict):
        return
    if answer.get("object") == "payment_intent" and isinstance(answer.get("latest_charge"), str):
        answer = store.find(answer["latest_charge"]) or {}  # a confirm or capture moves its charge's money
    txn_id = answer.get("balance_transaction")
    if answer.get("object") in SETTLED_KINDS and isinstance(txn_id, str) and store.find(txn_id) is None:
        store.add(new_balance_transaction(answer, txn_id))


def retrieve_balance_transaction(store: Store, params: dict[str, Any], object_id: str) -> Obj:
    return store.get("balance_transaction", object_id)


def retrieve_refund(store: Store, params: dict[str, Any], object_id: str) -> Obj:
    return store.get("refund", object_id)


def retrieve_payout(store: Store, params: dict[str, Any], object_id: str) -> Obj:
    return store.get("payout", object_id)
