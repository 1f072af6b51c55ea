"""Every operation stripe-python can send, read from its source with ``ast`` (stripe is never imported).

stripe-python's ``*_service.py`` modules (``StripeClient``'s services, in the package root and in
its subpackages: ``v2/``, ``billing/``, ``issuing/``, ``test_helpers/`` ...) hold one method per
API operation; each calls ``self._request("post", "/v1/charges/{charge}/capture".format(...),
base_address="api", params=params, ...)``. ``read_sdk_operations`` collects those calls (the sync
ones: every ``*_async`` method repeats its sync twin), ``read_params`` the parameters of the
TypedDict an operation's ``params`` argument is typed with (``stripe/params/...``) and
``read_object_fields`` the fields of the object class it answers with.

``vendors/stripe/operations.json`` classifies each operation (one entry per line: method, path,
host, kind, money, objects, customer) and ``tests/test_stripe_catalogue.py`` holds the two to each
other. Names follow one notation throughout: a path parameter is ``{charge}``; a nested parameter
or field is written in form notation, ``transfer_data[destination]``, with ``[]`` for every element
of a list (``items[][price]``); a v2 amount ``amount[value]`` has its currency in ``amount[currency]``.
The rules the catalogue follows:

* ``kind`` (one per operation; a call that does two things takes the first of moves_money,
  reaches_people, buys, issues_credentials, configures, reads):
  ``moves_money`` when the call moves money or commits it, also in test mode and in test helpers:
  charges, captures, confirmations, refunds, payouts, transfers, reversals, top-ups, Treasury and
  v2 money movement, customer credit (balance transactions, credit notes, credit grants), and the
  calls after which Stripe charges someone with no further call through the proxy: invoices that
  advance automatically, subscriptions and their items and schedules, usage (meter events), pending
  invoice items, Checkout Sessions and Payment Links, test clocks. Undoing money that has not
  settled (a cancel, a decline, an expiry, a failure) moves none, nor does editing an object whose
  money moves on a later call (a PaymentIntent, a Checkout Session, a Payment Link);
  ``reaches_people`` when Stripe emails or texts someone because of the call, as its docstring or
  params say (an invoice sent, a receipt re-sent on a charge update, a source's mandate notice);
  ``buys`` when the docstring says the account pays for something (Climate orders);
  ``issues_credentials`` when the answer is a secret or a link that grants access to the account,
  its API or its data to whoever holds it: OAuth tokens, ephemeral keys, account links and
  sessions, login links, customer and billing-portal sessions, file links, terminal connection
  tokens and onboarding links, meter-event sessions, webhook endpoints made or pointed elsewhere (the
  account's events, objects and all, sent to whoever holds the URL; the answer holds the signing
  secret), app installs (they grant an app access and
  answer with an OAuth code), the app secret store's reads, and an Issuing card's retrieval (the
  only answer that carries its number and CVC). A Checkout, SetupIntent or PaymentIntent client
  secret is not one: it lets a payer finish one payment, which the money rules govern;
  ``reads`` for GETs and POSTs that only compute (invoice previews, tax calculations, Radar
  scores); ``configures`` for everything else.
* ``money`` (moves_money and buys): ``amount``, the request parameter with the amount in minor units
  (null when none names it), ``amount_in: "major"`` when that is not in minor units, ``currency``
  when its currency parameter is not ``currency``, ``moves_when`` when money moves only if a flag
  has that value, ``response``, the field of the answer that says how much moved (null if none
  does), ``lookup``, how to price the call from the object it acts on (``param`` names it, ``get``
  is the catalogue's GET for it, ``amount`` minus ``minus`` is what the call will move): only where
  that field is that amount, else null (a list when the call may name one of several objects: a
  refund's charge or PaymentIntent, the first named is read). ``signed: true`` where Stripe reads a
  negative amount as a credit (a customer balance transaction's or an invoice item's ``amount``):
  it counts at its size. An entry may say ``why`` a decision was taken, in words, with Stripe's.
* ``objects`` names each parameter holding the id of a Stripe object or account the call acts on or
  links to, path parameters included, files (evidence, documents) too; ``customer`` is ``"path"``
  when a path parameter is the customer's id, ``"customer"`` when that parameter is, else null, and
  the customer is not repeated in objects. List cursors (``starting_after``, ``ending_before``),
  ``expand``, ids chosen by the caller for a new object and Stripe's global codes (countries,
  currencies, tax codes, report types, capability names) are not objects.

To update for a new stripe-python: install it, update ``"sdk"`` in operations.json and run
``pytest tests/test_stripe_catalogue.py``. The test names each operation the SDK added (with its
service method, docstring and params TypedDict) or removed; classify each added one from its
docstring and TypedDict by the rules above, delete the removed ones, and re-run until it passes.
It also fails where a parameter or field the catalogue names is gone, and where an existing
operation gained a parameter that names an object (a ``customer``, a ``payment_method`` ...) that
``objects`` does not list yet.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

# StripeService's helpers, and the requestor's methods OAuthService calls directly; their *_async twins
# send the same operations.
_REQUEST_CALLS = frozenset({"_request", "_request_stream", "request", "request_stream"})
_MAX_DEPTH = 6  # nested params TypedDicts go 5 deep at most in stripe-python 16


@dataclass(frozen=True)
class SdkOperation:
    method: str  # "POST"
    path: str  # "/v1/charges/{charge}/capture"
    base_address: str  # "api", "files", "connect", "meter_events"
    service: str  # "ChargeService"
    function: str  # "capture"
    summary: str  # the first line of the method's docstring
    params: str | None  # the params TypedDict, "stripe.params._charge_capture_params.ChargeCaptureParams"
    returns: str | None  # the object class it answers with, "stripe._charge.Charge" (None for lists and the like)
    module: str  # "_charge_service.py", relative to the package

    @property
    def key(self) -> tuple[str, str, str]:
        return self.method, self.path, self.base_address


def read_sdk_operations(package_dir: Path) -> list[SdkOperation]:
    """Every operation the service modules under ``package_dir`` (the ``stripe`` package) send, each once."""
    found: dict[tuple[str, str, str], SdkOperation] = {}
    for module in sorted(package_dir.rglob("*_service.py")):
        for op in _module_operations(package_dir, module):
            found.setdefault(op.key, op)
    return sorted(found.values(), key=lambda op: (op.path, op.method, op.base_address))


def read_params(package_dir: Path, qualified_name: str) -> dict[str, str]:
    """The parameters of a params TypedDict, nested ones in form notation, each with its annotation.

    ``ChargeCreateParams`` gives {"amount": "NotRequired[int]", "transfer_data": ...,
    "transfer_data[destination]": "str", ...}; a list of dicts gives ``items[]`` and ``items[][price]``.
    """
    module, _, name = qualified_name.rpartition(".")
    return dict(_fields(package_dir, module, name, "", 0))


def read_object_fields(package_dir: Path, qualified_name: str) -> frozenset[str]:
    """The top-level fields of an API object class (``stripe._charge.Charge``: "amount", "amount_refunded" ...)."""
    module, _, name = qualified_name.rpartition(".")
    return frozenset(key for key, _ in _declared(_module(package_dir, module), name, module))


def _module_operations(package_dir: Path, module: Path) -> list[SdkOperation]:
    tree = ast.parse(module.read_text(encoding="utf-8"), filename=str(module))
    imports = _imports(tree)
    relative = module.relative_to(package_dir).as_posix()
    ops: list[SdkOperation] = []
    for cls in (node for node in tree.body if isinstance(node, ast.ClassDef)):
        for func in (node for node in cls.body if isinstance(node, ast.FunctionDef)):
            for call in ast.walk(func):
                if not (
                    isinstance(call, ast.Call)
                    and isinstance(call.func, ast.Attribute)
                    and call.func.attr in _REQUEST_CALLS
                ):
                    continue
                if call.args and isinstance(call.args[0], ast.Name):
                    continue  # StripeService._request handing its own arguments on to the requestor
                where = f"{relative}:{call.lineno}"
                ops.append(
                    SdkOperation(
                        method=_string(call.args[0], where).upper(),
                        path=_template(call.args[1], where),
                        base_address=_base_address(call, where),
                        service=cls.name,
                        function=func.name,
                        summary=_summary(func),
                        params=_params_type(func, imports),
                        returns=_return_type(func, imports),
                        module=relative,
                    )
                )
    return ops


def _string(node: ast.expr, where: str) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    raise ValueError(f"{where}: expected a string literal, found {ast.dump(node)}")


def _template(node: ast.expr, where: str) -> str:
    """``"/v1/charges/{charge}".format(charge=...)`` or a plain literal: the template string."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        return _string(node.func.value, where)
    return _string(node, where)


def _base_address(call: ast.Call, where: str) -> str:
    for keyword in call.keywords:
        if keyword.arg == "base_address":
            return _string(keyword.value, where)
    raise ValueError(f"{where}: a request without base_address=")


def _summary(func: ast.FunctionDef) -> str:
    doc = ast.get_docstring(func) or ""
    return next((line.strip() for line in doc.splitlines() if line.strip()), "")


def _imports(tree: ast.Module) -> dict[str, str]:
    """Every ``from x import Y`` in the module, also under ``if TYPE_CHECKING:``: {"Y": "x"}."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                names[alias.asname or alias.name] = node.module
    return names


def _return_type(func: ast.FunctionDef, imports: dict[str, str]) -> str | None:
    returns = func.returns
    if isinstance(returns, ast.Constant) and isinstance(returns.value, str) and returns.value in imports:
        return f"{imports[returns.value]}.{returns.value}"
    return None


def _params_type(func: ast.FunctionDef, imports: dict[str, str]) -> str | None:
    arg = next((a for a in func.args.args + func.args.kwonlyargs if a.arg == "params"), None)
    if arg is None or arg.annotation is None:
        return None
    for node in ast.walk(arg.annotation):  # Optional["XParams"] or "XParams"
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in imports:
            return f"{imports[node.value]}.{node.value}"
    return None


@dataclass(frozen=True)
class _Module:
    imports: dict[str, str]  # {"Y": "x"} for every ``from x import Y``
    classes: dict[str, ast.ClassDef]
    functional: dict[str, list[tuple[str, ast.expr]]]  # ``_XBase = TypedDict("X", {"from": ...})``


@cache
def _module(package_dir: Path, module: str) -> _Module:
    parts = module.split(".")
    if parts[0] != "stripe":
        raise ValueError(f"{module} is not part of stripe")
    path = package_dir.joinpath(*parts[1:]).with_suffix(".py")
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    functional: dict[str, list[tuple[str, ast.expr]]] = {}
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call)
            and len(node.value.args) == 2
            and isinstance(node.value.args[1], ast.Dict)
        ):
            pairs = [
                (key.value, value)
                for key, value in zip(node.value.args[1].keys, node.value.args[1].values, strict=True)
                if isinstance(key, ast.Constant) and isinstance(key.value, str)
            ]
            functional.update({t.id: pairs for t in node.targets if isinstance(t, ast.Name)})
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    return _Module(_imports(tree), classes, functional)


def _fields(package_dir: Path, module: str, name: str, prefix: str, depth: int) -> list[tuple[str, str]]:
    index = _module(package_dir, module)
    fields: list[tuple[str, str]] = []
    for key, annotation in _declared(index, name, module):
        field = f"{prefix}[{key}]" if prefix else key
        fields.append((field, ast.unparse(annotation)))
        if depth >= _MAX_DEPTH:
            continue
        for inner, is_list in _nested_types(annotation):
            where = module if inner in index.classes else index.imports.get(inner)
            if where is None or not where.startswith("stripe"):
                continue
            inner_prefix = f"{field}[]" if is_list else field
            if is_list:
                fields.append((inner_prefix, inner))
            fields.extend(_fields(package_dir, where, inner, inner_prefix, depth + 1))
    return fields


def _declared(index: _Module, name: str, module: str) -> list[tuple[str, ast.expr]]:
    """A TypedDict's keys and annotations: those of a functional base, then its class body's.

    Keys that are Python keywords are declared the functional way, as a base:
    ``_XBase = TypedDict("X", {"from": "XFrom"})`` and ``class X(_XBase): ...``.
    """
    cls = index.classes.get(name)
    if cls is None:
        raise ValueError(f"{module}.{name}: no such class")
    declared = [pair for b in cls.bases if isinstance(b, ast.Name) for pair in index.functional.get(b.id, [])]
    for stmt in cls.body:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            declared.append((stmt.target.id, stmt.annotation))
    return declared


def _nested_types(annotation: ast.expr) -> list[tuple[str, bool]]:
    """The class names an annotation mentions, each with whether it sits inside ``List[...]``.

    Annotations are partly strings (``NotRequired["Literal['']|List[XItem]"]``): those are parsed too.
    """
    found: list[tuple[str, bool]] = []

    def visit(node: ast.expr, in_list: bool) -> None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            visit(ast.parse(node.value, mode="eval").body, in_list)
        elif isinstance(node, ast.Name):
            if node.id[:1].isupper() and node.id not in _TYPING_NAMES:
                found.append((node.id, in_list))
        elif isinstance(node, ast.Subscript):
            if isinstance(node.value, ast.Name) and node.value.id == "Literal":
                return
            inner_list = in_list or (isinstance(node.value, ast.Name) and node.value.id == "List")
            visit(node.slice, inner_list)
        elif isinstance(node, ast.BinOp):
            visit(node.left, in_list)
            visit(node.right, in_list)
        elif isinstance(node, ast.Tuple):
            for element in node.elts:
                visit(element, in_list)

    visit(annotation, False)
    return found


_TYPING_NAMES = frozenset({"List", "Dict", "Literal", "NotRequired", "Optional", "Union", "Any", "UntypedStripeObject"})
