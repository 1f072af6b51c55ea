"""vendors/stripe/operations.json against the stripe-python that is installed.

The catalogue must name every operation the SDK can send, no more and no fewer, and every
parameter name it uses must be one the SDK's own params TypedDicts declare: when stripe-python
adds, removes or renames something, these tests fail and say what.
"""

from __future__ import annotations

import importlib.util
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from vendors.stripe.sdk_operations import SdkOperation, read_object_fields, read_params, read_sdk_operations

CATALOGUE = Path(__file__).resolve().parents[1] / "vendors" / "stripe" / "operations.json"
KINDS = {"moves_money", "reaches_people", "buys", "reads", "configures", "issues_credentials"}
MONEY_KEYS = {"amount", "amount_in", "currency", "moves_when", "response", "lookup", "signed"}
LOOKUP_KEYS = {"param", "get", "amount", "minus"}
# A parameter whose last name is one of these and that takes an id (a string, not an enumeration)
# names an object the call acts on or links to: the catalogue must list it.
OBJECT_NAMES = frozenset(
    "account application card cardholder charge confirmation_token coupon customer customer_account default_mandate "
    "default_payment_method default_source default_tax_rates destination destination_payment_method discount "
    "external_account financial_account financial_connections_account invoice issuing_card mandate on_behalf_of "
    "origin_payment_method payment_intent payment_method payment_record payout payout_method plan price product "
    "promotion_code quote received_credit received_debit recipient refund related_customer setup_intent "
    "shipping_rate source source_transaction subscription tax_rates test_clock transfer".split()
)


def _package() -> Path:
    spec = importlib.util.find_spec("stripe")
    assert spec is not None and spec.origin is not None, "stripe-python is not installed"
    return Path(spec.origin).parent


PACKAGE = _package()


@cache
def catalogue() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(CATALOGUE.read_text(encoding="utf-8"))
    return data


def entries() -> list[dict[str, Any]]:
    return list(catalogue()["operations"])


@cache
def sdk() -> dict[tuple[str, str, str], SdkOperation]:
    return {op.key: op for op in read_sdk_operations(PACKAGE)}


def entry(method: str, path: str) -> dict[str, Any]:
    found = [e for e in entries() if e["method"] == method and e["path"] == path]
    assert len(found) == 1, f"{method} {path}: {len(found)} catalogue entries"
    return found[0]


def params_of(e: dict[str, Any]) -> dict[str, str] | None:
    return _params(sdk()[(e["method"], e["path"], e["host"])].params)


@cache
def _params(qualified_name: str | None) -> dict[str, str] | None:
    return read_params(PACKAGE, qualified_name) if qualified_name else None


def path_params(template: str) -> list[str]:
    return re.findall(r"\{(\w+)\}", template)


def names_a_param(e: dict[str, Any], name: str) -> bool:
    """``{x}`` is a path parameter of the template; anything else a parameter of the params TypedDict."""
    if name.startswith("{"):
        return name[1:-1] in path_params(e["path"])
    params = params_of(e)
    return params is None or name in params


def test_catalogue_names_exactly_the_operations_the_sdk_sends() -> None:
    version = re.search(r'VERSION = "([^"]+)"', (PACKAGE / "_version.py").read_text(encoding="utf-8"))
    assert version is not None
    assert catalogue()["sdk"] == f"stripe-python {version.group(1)}", "the catalogue was made for another stripe-python"
    listed = [(e["method"], e["path"], e["host"]) for e in entries()]
    assert len(listed) == len(set(listed)), "an operation is listed twice"
    missing = [sdk()[key] for key in sdk().keys() - set(listed)]
    unknown = set(listed) - sdk().keys()
    assert not missing, "stripe-python sends operations the catalogue does not classify:\n" + "\n".join(
        f"  {op.method} {op.path} [{op.base_address}] {op.service}.{op.function} ({op.params}): {op.summary}"
        for op in sorted(missing, key=lambda op: op.key))
    assert not unknown, "the catalogue lists operations stripe-python no longer sends:\n" + "\n".join(
        f"  {m} {p} [{h}]" for m, p, h in sorted(unknown))


def test_catalogue_is_sorted_by_path_then_method() -> None:
    keys = [(e["path"], e["method"], e["host"]) for e in entries()]
    assert keys == sorted(keys)


@pytest.mark.parametrize("e", entries(), ids=lambda e: f"{e['method']} {e['path']}")
def test_entry_schema(e: dict[str, Any]) -> None:
    where = f"{e['method']} {e['path']}"
    assert set(e) <= {"method", "path", "host", "kind", "money", "objects", "customer", "why"}, where
    assert isinstance(e.get("why", ""), str), f"{where}: why is the reasoning behind a decision, in words"
    assert e["kind"] in KINDS, where
    assert ("money" in e) == (e["kind"] in ("moves_money", "buys")), f"{where}: a money block goes with money only"
    if e["method"] == "GET":
        assert e["kind"] in ("reads", "issues_credentials"), f"{where}: a GET moves nothing"
    assert isinstance(e["objects"], list) and len(e["objects"]) == len(set(e["objects"])), where
    for name in e["objects"]:
        assert names_a_param(e, name), f"{where}: objects names {name!r}, which the SDK does not send"
    assert not {"{customer}", "customer"} & set(e["objects"]), f"{where}: the customer goes in customer"
    if "customer" in path_params(e["path"]):
        assert e["customer"] == "path", where
    elif e["customer"] is not None:
        assert e["customer"] != "path" and names_a_param(e, e["customer"]), where
    if "money" in e:
        check_money(e, where)


def check_money(e: dict[str, Any], where: str) -> None:
    money = e["money"]
    assert set(money) <= MONEY_KEYS and {"amount", "response", "lookup"} <= set(money), where
    params = params_of(e) or {}
    if money["amount"] is not None:
        assert money["amount"] in params, f"{where}: no parameter {money['amount']!r}"
        if money.get("amount_in") is None:
            assert re.fullmatch(r"(NotRequired\[)?int\]?", params[money["amount"]]), (
                f"{where}: {money['amount']} is {params[money['amount']]}, not an integer in minor units")
        else:
            assert money["amount_in"] == "major", where
    if "currency" in money:
        assert money["currency"] != "currency" and money["currency"] in params, where
    if "moves_when" in money:
        assert set(money["moves_when"]) == {"param", "equals"} and money["moves_when"]["param"] in params, where
    returns = sdk()[(e["method"], e["path"], e["host"])].returns
    if money["response"] is not None and returns is not None:
        field = money["response"].split("[")[0]
        assert field in read_object_fields(PACKAGE, returns), f"{where}: {returns} has no field {field!r}"
    lookups = money["lookup"] if isinstance(money["lookup"], list) else [money["lookup"]] if money["lookup"] else []
    assert money.get("signed") in (None, True), where
    for lookup in lookups:
        assert set(lookup) <= LOOKUP_KEYS and {"param", "get", "amount"} <= set(lookup), where
        assert names_a_param(e, lookup["param"]), f"{where}: the look-up's {lookup['param']!r} is no parameter"
        get = sdk().get(("GET", lookup["get"], "api"))
        assert get is not None, f"{where}: the look-up GET {lookup['get']} is no SDK operation"
        assert entry("GET", lookup["get"])["kind"] == "reads", where
        assert len(path_params(lookup["get"])) == 1, f"{where}: the look-up must take exactly the one id"
        assert get.returns is not None, where
        fields = read_object_fields(PACKAGE, get.returns)
        for name in (lookup["amount"], lookup.get("minus")):
            assert name is None or name.split("[")[0] in fields, f"{where}: {get.returns} has no field {name!r}"


@pytest.mark.parametrize("e", entries(), ids=lambda e: f"{e['method']} {e['path']}")
def test_every_parameter_that_takes_an_object_id_is_listed(e: dict[str, Any]) -> None:
    params = params_of(e) or {}
    unlisted = [
        name for name, annotation in params.items()
        if re.sub(r"\[\]$", "", name).rsplit("[", 1)[-1].rstrip("]") in OBJECT_NAMES
        and name != "customer" and takes_an_id(annotation) and name not in e["objects"]
    ]
    assert not unlisted, f"{e['method']} {e['path']}: these name objects and are not in objects: {unlisted}"


def takes_an_id(annotation: str) -> bool:
    if re.search(r"Literal\[\s*'[^']+'", annotation):  # an enumeration; Literal[''] only means "unset"
        return False
    bare = re.sub(r"Literal\[[^\]]*\]", "", annotation)
    return "str" in bare and "Dict[str" not in bare


# The known traps, pinned.


def test_the_legacy_charge_refund_endpoints_are_not_sdk_operations() -> None:
    # POST /v1/charges/{charge}/refund and /refunds still exist at Stripe, but stripe-python 16
    # never sends them: they are unknown operations, which the proxy refuses rather than prices.
    for path in ("/v1/charges/{charge}/refund", "/v1/charges/{charge}/refunds"):
        assert ("POST", path, "api") not in sdk()
        assert not [e for e in entries() if e["method"] == "POST" and e["path"] == path]


@pytest.mark.parametrize(
    ("method", "path", "amount", "response", "lookup"),
    [
        ("POST", "/v1/charges", "amount", "amount", None),
        ("POST", "/v1/charges/{charge}/capture", "amount", "amount_captured",
         {"param": "{charge}", "get": "/v1/charges/{charge}", "amount": "amount"}),
        ("POST", "/v1/refunds", "amount", "amount",
         [{"param": "charge", "get": "/v1/charges/{charge}", "amount": "amount", "minus": "amount_refunded"},
          {"param": "payment_intent", "get": "/v1/payment_intents/{intent}", "amount": "amount_received"}]),
        ("POST", "/v1/invoices/{invoice}/pay", None, "amount_paid",
         {"param": "{invoice}", "get": "/v1/invoices/{invoice}", "amount": "amount_remaining"}),
        ("POST", "/v1/transfers/{id}/reversals", "amount", "amount",
         {"param": "{id}", "get": "/v1/transfers/{transfer}", "amount": "amount", "minus": "amount_reversed"}),
        # A credit note moves at most what the invoice's payer paid and was not credited yet (a refund or a
        # balance credit); on an unpaid invoice it lowers what is due and moves nothing.
        ("POST", "/v1/credit_notes", "amount", "amount",
         {"param": "invoice", "get": "/v1/invoices/{invoice}", "amount": "amount_paid",
          "minus": "post_payment_credit_notes_amount"}),
        ("POST", "/v1/payment_intents/{intent}/confirm", "amount_to_confirm", "amount_received",
         {"param": "{intent}", "get": "/v1/payment_intents/{intent}", "amount": "amount"}),
        ("POST", "/v1/payment_intents/{intent}/capture", "amount_to_capture", "amount_received",
         {"param": "{intent}", "get": "/v1/payment_intents/{intent}", "amount": "amount_capturable"}),
        ("POST", "/v1/payouts", "amount", "amount", None),
        ("POST", "/v1/transfers", "amount", "amount", None),
    ],
)
def test_money_movers(method: str, path: str, amount: str | None, response: str, lookup: Any) -> None:
    e = entry(method, path)
    assert e["kind"] == "moves_money"
    assert (e["money"]["amount"], e["money"]["response"], e["money"]["lookup"]) == (amount, response, lookup)
    assert "moves_when" not in e["money"]


def test_a_payment_intent_moves_money_only_when_confirmed() -> None:
    money = entry("POST", "/v1/payment_intents")["money"]
    assert money["moves_when"] == {"param": "confirm", "equals": "true"}
    assert (money["amount"], money["response"]) == ("amount", "amount_received")


def test_a_refund_and_a_charge_name_what_they_act_on() -> None:
    refund = entry("POST", "/v1/refunds")
    assert {"charge", "payment_intent"} <= set(refund["objects"]) and refund["customer"] == "customer"
    charge = entry("POST", "/v1/charges")
    assert {"source", "on_behalf_of", "transfer_data[destination]"} <= set(charge["objects"])
    assert entry("POST", "/v1/charges/{charge}/capture")["objects"] == ["{charge}"]
    assert entry("GET", "/v1/customers/{customer}")["customer"] == "path"


@pytest.mark.parametrize(
    ("method", "path", "kind"),
    [
        ("GET", "/v1/charges/search", "reads"),
        ("POST", "/v1/invoices/create_preview", "reads"),
        ("POST", "/v1/ephemeral_keys", "issues_credentials"),
        ("POST", "/v1/account_links", "issues_credentials"),
        ("POST", "/v1/billing_portal/sessions", "issues_credentials"),
        ("GET", "/v1/issuing/cards/{card}", "issues_credentials"),  # the only answer with the card's number
        ("POST", "/v1/invoices/{invoice}/send", "reaches_people"),
        ("POST", "/v1/climate/orders", "buys"),
        ("POST", "/v1/customers", "configures"),
        ("POST", "/v1/webhook_endpoints", "issues_credentials"),  # the account's events, sent wherever it says
        ("POST", "/v1/webhook_endpoints/{webhook_endpoint}", "issues_credentials"),
        ("DELETE", "/v1/webhook_endpoints/{webhook_endpoint}", "configures"),
        ("POST", "/v1/checkout/sessions", "moves_money"),
    ],
)
def test_kinds(method: str, path: str, kind: str) -> None:
    assert entry(method, path)["kind"] == kind


def test_the_readme_lists_every_money_operation_as_the_catalogue_prices_it() -> None:
    from pathlib import Path

    from vendors.stripe import catalogue

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    start = "<!-- stripe money operations: generated from vendors/stripe/operations.json -->\n"
    end = "\n<!-- end of stripe money operations -->"
    assert readme.split(start, 1)[1].split(end, 1)[0] == catalogue.money_table()


def _first_binding(method: str, path: str) -> tuple[str | None, dict[str, str]]:
    """The table's rule, read naively: every template of the method and length, literals first."""
    from vendors.stripe import catalogue

    segments = path.strip("/").split("/")
    shaped = [e for e in catalogue.load().endpoints()
              if e.method == method and len(e.template.strip("/").split("/")) == len(segments)]
    shaped.sort(key=lambda e: [s.startswith("{") for s in e.template.strip("/").split("/")])
    for endpoint in shaped:
        wanted = endpoint.template.strip("/").split("/")
        if all(w.startswith("{") or w == g for w, g in zip(wanted, segments, strict=True)):
            return endpoint.template, {w[1:-1]: g for w, g in zip(wanted, segments, strict=True) if w.startswith("{")}
    return None, {}


def test_matching_skips_no_template_that_could_bind() -> None:
    """EndpointTable.match tries only templates with a placeholder after its exact probe: every
    operation's path, with ids, reserved words and one segment more, binds as the naive rule says."""
    from vendors.stripe import catalogue

    table = catalogue.load()
    for endpoint in table.endpoints():
        for fill in ("ch_123", "search"):
            filled = re.sub(r"\{[^}]+\}", fill, endpoint.template)
            for path in (filled, f"{filled}/", f"{filled}/ch_456"):
                found, params, _ = table.match(endpoint.method, path)
                assert ((found.template if found else None), params) == _first_binding(endpoint.method, path), path
