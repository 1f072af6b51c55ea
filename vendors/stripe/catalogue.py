"""The adapter's view of ``operations.json``: every operation stripe-python can send, as an
endpoint table the adapter matches requests against (DESIGN.md guarantee 8).

The catalogue is data (one entry per operation, classified from the SDK's own source; see
``sdk_operations.py`` for the rules and tests/test_stripe_catalogue.py for the drift test), so the
adapter holds no per-endpoint ``if``. An operation the table does not hold is refused
(``unknown_operation``), never forwarded at $0. Templates keep the SDK's parameter names
(``/v1/charges/{charge}/capture``) for binding; the audit table's ``endpoint`` names every path
parameter ``{id}`` (``POST /v1/charges/{id}/capture``), as it always has. One table holds every
host's operations (no method and path is on two hosts): an operation of another host than
api.stripe.com is named with its route prefix (``POST /files/v1/files``), and ``Facts.host`` says
which host the SDK sends it to (vendors/stripe/routes.py routes by it).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from vendors.base import Operation
from vendors.endpoints import Endpoint, EndpointTable

CATALOGUE = Path(__file__).with_name("operations.json")
PRICED_KINDS = frozenset({"moves_money", "buys"})  # what the caps count; reaching people costs nothing on Stripe
PLACEHOLDER = re.compile(r"\{[^}]+\}")


@dataclass(frozen=True)
class PriceLookup:
    """How to price a call that names no amount: read the object it acts on. ``param`` is the
    path (``{charge}``) or request parameter naming it, ``get`` the GET template to fill in."""

    param: str
    get: str
    amount: str  # the object's field holding the amount the call would move
    minus: str | None = None  # a field already moved (amount_refunded): the call moves the rest

    def path_for(self, object_id: str) -> str:
        return PLACEHOLDER.sub(object_id, self.get, count=1)


@dataclass(frozen=True)
class Money:
    """Where a money-moving operation keeps its amount: in the request, the answer, or an object."""

    request_amount: str | None  # request parameter with the amount in minor units (form notation)
    response_amount: str | None  # field of the answer with the amount moved; None: the answer does not say
    currency: str = "currency"  # request parameter with its currency
    moves_when: tuple[str, str] | None = None  # (parameter, value): money moves only then
    lookups: tuple[PriceLookup, ...] = ()  # the first whose object the request names prices it
    signed: bool = False  # a negative amount is a credit, worth as much as a debit of its size


@dataclass(frozen=True)
class Facts:
    kind: str = "reads"
    money: Money | None = None
    objects: tuple[str, ...] = ()  # parameters naming objects the call acts on or links to
    customer: str | None = None  # "path", or the parameter naming the customer
    host: str = "api"  # the host stripe-python sends it to: api, files, meter_events or connect


def _money(entry: dict[str, Any]) -> Money | None:
    money = entry.get("money")
    if not money:
        return None
    lookup = money.get("lookup")
    lookups = lookup if isinstance(lookup, list) else [lookup] if lookup else []  # a refund: by charge or intent
    moves_when = money.get("moves_when")
    return Money(
        request_amount=money.get("amount"),
        response_amount=money.get("response"),
        currency=money.get("currency", "currency"),
        moves_when=(moves_when["param"], moves_when["equals"]) if moves_when else None,
        lookups=tuple(PriceLookup(one["param"], one["get"], one["amount"], one.get("minus")) for one in lookups),
        signed=bool(money.get("signed")),
    )


def _endpoint(entry: dict[str, Any]) -> Endpoint[Facts]:
    facts = Facts(entry["kind"], _money(entry), tuple(entry.get("objects", ())), entry.get("customer"),
                  entry["host"])
    label = f"{entry['method']} {prefix_of(entry['host'])}{PLACEHOLDER.sub('{id}', entry['path'])}"
    return Endpoint(entry["method"], entry["path"], facts, label)


def prefix_of(host: str) -> str:
    """The route prefix of a host's operations: "" for api.stripe.com, ``/files`` for files.stripe.com."""
    return "" if host == "api" else f"/{host}"


@lru_cache(maxsize=1)
def load() -> EndpointTable[Facts]:
    """Every operation of every host, matched by its path on its host."""
    operations = json.loads(CATALOGUE.read_text())["operations"]
    return EndpointTable(_endpoint(entry) for entry in operations)


def param(params: dict[str, Any], name: str) -> Any:
    """A parameter by its form-notation name (``amount[monetary][value]``); None when absent.
    Path parameters (``{charge}``) are not request parameters."""
    if "[" not in name:  # most are flat: one dict look-up, on every request
        return params.get(name) if isinstance(params, dict) else None
    value: Any = params
    for part in name.replace("]", "").split("["):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def operations() -> tuple[Operation, ...]:
    """Every host's operations as policies see them, with how each is priced before it leaves."""
    return tuple(Operation(e.method, e.name.partition(" ")[2], e.facts.kind, _priced(e.facts))
                 for e in load().endpoints())


def _priced(facts: Facts) -> str:
    if facts.kind not in PRICED_KINDS:
        return "free"
    if facts.money is not None and facts.money.lookups:
        return "lookup"
    return "request" if facts.money is not None and facts.money.request_amount else "after"


def money_table() -> str:
    """The README's table of the operations that move money, and how each is priced before it leaves
    (``python -c "from vendors.stripe import catalogue; print(catalogue.money_table())"``)."""
    lines = ["| operation | priced before it leaves from | money moves |", "|---|---|---|"]
    for e in sorted(load().endpoints(), key=lambda e: (e.template, e.method)):
        money = e.facts.money
        if e.facts.kind not in PRICED_KINDS:
            continue
        sources = []
        if money is not None and money.request_amount:
            signed = " (a credit, negative, as much as a debit)" if money.signed else ""
            sources.append(f"the request's `{money.request_amount}`{signed}")
        sources += [_read(lookup) for lookup in (money.lookups if money else ())]
        how = ", or ".join(sources) if sources else _after(money)
        when = f"when `{money.moves_when[0]}={money.moves_when[1]}`" if money and money.moves_when else "always"
        lines.append(f"| `{e.name}` | {how} | {when} |")
    return "\n".join(lines)


def _after(money: Money | None) -> str:
    then = (f"then from the answer's `{money.response_amount}`" if money is not None and money.response_amount
            else "then not at all: the answer does not say what moved (`cost_source` `none`)")
    return f"nothing: refused (`cost_unknown`) unless `priced_after` lists it, {then}"


def _read(lookup: PriceLookup) -> str:
    less = f" less `{lookup.minus}`" if lookup.minus else ""
    return f"a read of `{PLACEHOLDER.sub('{id}', lookup.get)}` (`{lookup.amount}`{less})"
