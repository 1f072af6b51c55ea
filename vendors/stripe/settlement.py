"""What a Stripe charge, refund or payout settled at: its balance transaction, in the account's currency.

A call in another currency is priced before and after it is sent by converting its amount at a
reference rate (vendors/money.py): an estimate, since Stripe converts at its own rate, which
includes its conversion fee. What actually moved in the account is the object's balance
transaction (``amount``, ``currency``, ``exchange_rate``, ``fee``). So such a row is recorded as an
estimate (``ParsedResponse.settles_later``) and ``tollgate prices reconcile`` reads the object with
``expand[]=balance_transaction``; where the balance transaction is in USD (the account settles in
USD) its ``amount`` replaces the estimate, the prediction staying as it was. On an account that
settles in another currency the estimate stands: converting Stripe's figure at a reference rate
again would be no truer than the first conversion.

The cost is the gross amount (``amount``, not ``net``): what the call moved, as the estimate was;
Stripe's fee is the account's cost of taking it, not money the agent moved. A payout's balance
transaction is negative (money out): its size is the cost, as a refund's is.

A refund's row names the charge it refunds (its ``object_id``), whose balance transaction is the
charge's, not the refund's. So a refund's endpoint reads only refund ids: for the charge it reads
nothing, and the repricer (proxy/prices.py) asks again with the object the call created, which the
settle recorded in ``key_objects`` with the row's id: the refund, read at ``/v1/refunds/{id}`` and
settled at its own balance transaction. Each endpoint reads only ids of the kind it makes.

Identity: a price is taken only from a balance transaction whose ``source`` is the object the
row names, and only from an answer about that object (a proxy, a cache or a vendor bug answering
for another object must not reprice the row).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from vendors.base import FinalPrice

SETTLES_IN = "usd"  # a balance transaction in this currency is a USD price as it stands
# The calls whose own object moved the money (the charge created or captured, the refund created,
# the payout), and where each reads it, by its id's prefix (py_: a charge made with a non-card
# payment method; pyr_: a refund of one).
_CHARGE = {"ch_": "/v1/charges/", "py_": "/v1/charges/"}
_READ_AT: dict[str, dict[str, str]] = {
    "POST /v1/charges": _CHARGE,
    "POST /v1/charges/{id}/capture": _CHARGE,
    "POST /v1/refunds": {"re_": "/v1/refunds/", "pyr_": "/v1/refunds/"},
    "POST /v1/payouts": {"po_": "/v1/payouts/"},
}
SETTLED_ENDPOINTS = frozenset(_READ_AT)
SETTLED_OBJECTS = frozenset({"charge", "refund", "payout"})
_EXPAND = "expand[]=balance_transaction"
_ID_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def settles_later(endpoint: str, obj: Mapping[str, Any], currency: str) -> bool:
    """True when the answer's USD figure is a conversion that the object's balance transaction will
    replace: a charge, refund or payout in a currency other than USD, made or captured by this call."""
    return endpoint in SETTLED_ENDPOINTS and obj.get("object") in SETTLED_OBJECTS and currency.lower() != SETTLES_IN


def reconcile_path(object_id: str, endpoint: str | None) -> str | None:
    """The read of the call's own object (for a refund, the refund it created) with its balance
    transaction expanded; None for calls it does not price, or an id of another kind than the call makes."""
    reads = _READ_AT.get(endpoint or "")
    if reads is None or not object_id or not set(object_id) <= _ID_CHARACTERS:
        return None  # another call's object, or text that is not an id: nothing is read
    base = next((path for prefix, path in reads.items() if object_id.startswith(prefix)), None)
    return f"{base}{object_id}?{_EXPAND}" if base else None


def settled_price(status: int, body: bytes) -> FinalPrice:
    """The object's settled USD amount, when its balance transaction is about it and in USD."""
    waiting = FinalPrice(None, None, None, final=False)
    if status != 200:
        return waiting
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return waiting
    if not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
        return waiting
    object_id: str = obj["id"]
    txn = obj.get("balance_transaction")
    if not isinstance(txn, dict):  # not settled yet (null), or not expanded: ask again later
        return FinalPrice(object_id, "unsettled", None, final=False)
    if txn.get("source") != object_id or txn.get("object") != "balance_transaction":
        # About another object: nothing of this row's. None never equals the row's object id.
        return FinalPrice(None, f"balance transaction of {str(txn.get('source'))[:64]}", None, final=False)
    amount, currency = txn.get("amount"), txn.get("currency")
    if type(amount) is not int or not isinstance(currency, str):
        return FinalPrice(object_id, "unreadable", None, final=False)
    if currency != SETTLES_IN:  # the account settles in another currency: the estimate stands
        return FinalPrice(object_id, f"settles in {currency[:8]}", None, final=False)
    return FinalPrice(object_id, "settled", Decimal(abs(amount)).scaleb(-2), final=True)
