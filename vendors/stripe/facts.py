"""What a Stripe request names and what it would move: its objects, its customer, its amount and
currency, from the request, from the key's records or from a read of the object it acts on.

Pure functions over the catalogue's facts (``catalogue.Facts``) and the decoded parameters;
the adapter (``adapter.py``) puts them together. Nothing here guesses: an amount or a currency
that no source gives stays None, and the core then refuses the call (``cost_unknown``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vendors import money
from vendors.base import LookedUp, ParsedRequest, RecordedObject, RequestRejected
from vendors.endpoints import looks_like_id
from vendors.stripe import catalogue
from vendors.stripe.catalogue import Facts, PriceLookup
from vendors.wire import json_object

MAX_AMOUNT_MINOR = 99_999_999_999  # Stripe's own ceiling is 8 digits for USD; anything past this is nonsense.
OPERATIONS = catalogue.load()


def known_price(request: ParsedRequest, referenced: RecordedObject | None) -> tuple[int | None, str | None]:
    amount, currency = request.amount_minor, request.currency
    if referenced is not None:
        amount = amount if amount is not None else referenced.amount_minor
        currency = currency or referenced.currency
    return amount, currency


def lookup_target(request: ParsedRequest) -> tuple[PriceLookup, str] | None:
    """The first look-up of the operation whose object the request names, with that object's id."""
    endpoint, path_params, _ = OPERATIONS.match(request.method, request.path)
    spec = endpoint.facts.money if endpoint else None
    for lookup in spec.lookups if spec else ():
        object_id = value_of(lookup.param, path_params, request.params)
        if isinstance(object_id, str) and looks_like_id(object_id):
            return lookup, object_id
    return None


def value_of(name: str, path_params: Mapping[str, str], params: Mapping[str, Any]) -> Any:
    """A catalogue name's value: ``{charge}`` is a path parameter, anything else a request one."""
    if name.startswith("{") and name.endswith("}"):
        return path_params.get(name[1:-1])
    return catalogue.param(dict(params), name)


def named_objects(facts: Facts, path_params: Mapping[str, str], params: Mapping[str, Any]) -> tuple[str, ...]:
    """Every object id the call names, path parameters first (the primary object), then parameters;
    ``items[][price]`` names one in each element of a list."""
    found: list[str] = []
    for name in facts.objects:
        for value in values_of(name, path_params, params):
            if not isinstance(value, str):
                raise RequestRejected("invalid_parameter", f"Parameter {name!r} must name an object by its id.",
                                      param=name.split("[")[0])
            if value:
                found.append(value)
    return tuple(dict.fromkeys(found))


def values_of(name: str, path_params: Mapping[str, str], params: Mapping[str, Any]) -> list[Any]:
    """Every value a catalogue name reads: ``default_tax_rates`` (an array of ids) each of its
    elements, ``items[][price]`` each element's price. A form's array is a list
    (vendors/formencoding.py), as a JSON one is; a dict where the name says array is one keyed with
    a gap, a repeated index (``0``, ``00``) or a name: which elements Stripe reads is not certain,
    and an object named in one of them must not escape the scope check, so it is refused."""
    if "[]" not in name:
        value = value_of(name, path_params, params)
        return [] if value is None else value if isinstance(value, list) else [value]
    head, _, rest = name.partition("[]")  # "phases[][items][][price]": each phase's "items[][price]"
    items = catalogue.param(dict(params), head)
    if isinstance(items, dict):
        raise RequestRejected("ambiguous_parameter", f"Parameter {head!r} must be an array indexed 0, 1, 2... "
                              "without a gap.", param=head.split("[")[0])
    if not isinstance(items, list):
        return []
    if not rest:
        return [item for item in items if item is not None]
    tail = rest[1:].replace("]", "", 1)
    return [value for item in items if isinstance(item, dict) for value in values_of(tail, {}, item)]


def primary_object(facts: Facts, path_params: Mapping[str, str], params: Mapping[str, Any]) -> str | None:
    """The object the call acts on: the path's last id, else the one its price would be read from
    (a refund's charge). The audit row's ``object_id``; ``objects`` holds every one it names."""
    if path_params:
        return list(path_params.values())[-1]
    for lookup in facts.money.lookups if facts.money else ():
        value = value_of(lookup.param, path_params, params)
        if isinstance(value, str) and value:
            return value
    return None


def named_customer(facts: Facts, path_params: Mapping[str, str], params: Mapping[str, Any]) -> str | None:
    if facts.customer == "path":
        return path_params.get("customer") or next(iter(path_params.values()), None)
    return text(params.get(facts.customer), facts.customer) if facts.customer else None


def looked_up_price(request: ParsedRequest, looked_up: LookedUp) -> tuple[int | None, str | None]:
    """What the object read says the call would move: its amount (less what already moved) and its
    currency, each None when the read does not tell it. The currency alone prices a call that
    names its amount but not its currency (an increment, a capture); a v2 object keeps both in
    one ``Amount`` (``amount[value]``, ``amount[currency]``)."""
    found = lookup_target(request)
    if found is None or looked_up.status != 200:
        return None, None
    spec = found[0]
    try:
        obj = json_object(looked_up.body)
    except RequestRejected:
        return None, None
    currency = currency_of(obj, spec.amount)
    if currency is None or currency.lower() not in money.fx_table().usd_per_unit:
        return None, None
    amount = minor_amount(catalogue.param(obj, spec.amount))
    already = minor_amount(catalogue.param(obj, spec.minus) if spec.minus else 0)
    left = max(amount - already, 0) if amount is not None and already is not None else None
    return left, currency.lower()


def currency_of(obj: Mapping[str, Any], amount: str, named: str = "currency") -> str | None:
    """The currency of an object's ``amount`` field: where the request names it (``named``), else next
    to the amount (``pending_request[currency]`` beside ``pending_request[amount]``, a v2
    ``amount[currency]`` beside ``amount[value]``), else the object's own ``currency``."""
    head, bracket, _ = amount.rpartition("[")
    for name in (named, f"{head}[currency]" if bracket else "currency", "currency"):
        value = catalogue.param(dict(obj), name)
        if isinstance(value, str):
            return value
    return None


def minor_amount(value: Any) -> int | None:
    """An amount as Stripe returns one (bool, negative or absurd amounts are not a price)."""
    return value if type(value) is int and 0 <= value <= MAX_AMOUNT_MINOR else None


def money_of(facts: Facts, params: Mapping[str, Any]) -> tuple[int | None, str | None, bool]:
    if facts.kind not in catalogue.PRICED_KINDS:
        return None, None, False
    spec = facts.money
    if spec is None:  # it moves money, and nothing says how much: priced after, or refused
        return None, None, True
    moves = spec.moves_when is None or _flag_is(catalogue.param(dict(params), spec.moves_when[0]), spec.moves_when[1])
    amount = (_amount(catalogue.param(dict(params), spec.request_amount), spec.request_amount, spec.signed)
              if spec.request_amount else None)
    currency = catalogue.param(dict(params), spec.currency)
    if currency is not None:
        if not isinstance(currency, str):
            raise RequestRejected("invalid_parameter", f"Parameter {spec.currency!r} must be a string.",
                                  param=spec.currency)
        currency = money.check_currency(currency)
    return amount, currency, moves


def _flag_is(value: Any, wanted: str) -> bool:
    """Err towards "moves money": a spelling of true we did not expect must not skip the caps."""
    if wanted == "true":
        return str(value if value is not None else "").lower() in ("true", "1", "yes", "on")
    return bool(value == wanted)


def _amount(value: Any, name: str = "amount", signed: bool = False) -> int | None:
    """An amount in minor units: digits in a form (or a /v2 int64 string), or a JSON integer in a /v2
    body. Not a bool (``True`` is an int to Python), not ``12.0``, not '²' or '١٢٣'. Negative only where
    Stripe reads the sign as a credit (``signed``): its size is what the call is worth."""
    if value is None:
        return None
    if signed and isinstance(value, str) and value.startswith("-"):
        value = value[1:]  # one sign only: "--5" is still refused below
    elif signed and type(value) is int and value < 0:
        value = -value
    if type(value) is int and value >= 0:
        amount = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 15:
        amount = int(value)
    else:
        wanted = "an integer" if signed else "a non-negative integer"
        raise RequestRejected(
            "invalid_amount", f"Parameter {name!r} must be {wanted} in the currency's minor unit.", param=name,
        )
    if amount > MAX_AMOUNT_MINOR:
        raise RequestRejected("invalid_amount", f"Parameter {name!r} exceeds {MAX_AMOUNT_MINOR}.", param=name)
    return amount


def text(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise RequestRejected("invalid_parameter", f"Parameter {name!r} must be a string.", param=name)
    return value or None
