"""Every operation stripe-python can send, read from its source with ``ast`` (stripe is never imported).

stripe-python's ``*_service.py`` modules (``StripeClient``'s services, in the package root and in
its subpackages: ``v2/``, ``billing/``, ``issuing/``, ``test_helpers/`` ...) hold one method per
API operation; each calls ``self._request("post", "/v1/charges/{charge}/capture".format(...),
base_address="api", params=params, ...)``. ``read_sdk_operations`` collects those calls (the sync
ones: every ``*_async`` method repeats its sync twin) and ``read_param_names`` the parameter names
of the TypedDict an operation's ``params`` argument is typed with (``stripe/params/...``).

``vendors/stripe/operations.json`` classifies each operation, and ``tests/test_stripe_catalogue.py``
holds the two to each other. The rules the catalogue follows:

* ``kind``: ``moves_money`` when the call can move or commit money (also in test mode and in
  test helpers; when in doubt, this over ``configures``); ``reaches_people`` when Stripe emails or
  texts someone because of it; ``buys`` when the account pays Stripe or a third party, as the
  docstring says; ``issues_credentials`` when the answer grants access to the account's API or
  Dashboard data, to anyone who holds it: API keys, ephemeral keys, account links, account and
  login sessions, customer sessions, billing portal sessions, file links (a public URL to a
  private file). A Checkout or payment-intent client secret is not a credential: it lets a
  payer finish one payment, which the money rules already govern. ``reads`` for GET and for POSTs
  that only compute (previews, tax calculations); ``configures`` for everything else.
* ``objects`` names, in form notation (``transfer_data[destination]``, ``items[][price]`` for
  every element of a list), each parameter holding the id of a Stripe object or account the call
  acts on or links to, path parameters as ``{charge}``. List cursors (``starting_after``,
  ``ending_before``) and ``expand`` are not objects.
* ``money.lookup`` only where the looked-up field is the amount the call will move.

To update for a new stripe-python: install it, update ``"sdk"`` in operations.json and run
``pytest tests/test_stripe_catalogue.py``. The test names each operation the SDK added (with its
service method, docstring and params TypedDict) or removed; classify each added one from its
docstring and TypedDict by the rules above, delete the removed ones, and re-run until it passes.
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


def read_param_names(package_dir: Path, qualified_name: str) -> frozenset[str]:
    """The parameter names of a params TypedDict, nested ones in form notation.

    ``ChargeCreateParams`` gives {"amount", "transfer_data", "transfer_data[destination]", ...};
    a list of dicts gives ``items[]`` and ``items[][price]``.
    """
    module, _, name = qualified_name.rpartition(".")
    return frozenset(_fields(package_dir, module, name, "", 0))


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


def _params_type(func: ast.FunctionDef, imports: dict[str, str]) -> str | None:
    arg = next((a for a in func.args.args + func.args.kwonlyargs if a.arg == "params"), None)
    if arg is None or arg.annotation is None:
        return None
    for node in ast.walk(arg.annotation):  # Optional["XParams"] or "XParams"
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in imports:
            return f"{imports[node.value]}.{node.value}"
    return None


@cache
def _parsed(package_dir: Path, module: str) -> ast.Module:
    parts = module.split(".")
    if parts[0] != "stripe":
        raise ValueError(f"{module} is not part of stripe")
    path = package_dir.joinpath(*parts[1:]).with_suffix(".py")
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _fields(package_dir: Path, module: str, name: str, prefix: str, depth: int) -> list[str]:
    tree = _parsed(package_dir, module)
    imports = _imports(tree)
    classes = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    names: list[str] = []
    for key, annotation in _declared(tree, name, module):
        field = f"{prefix}[{key}]" if prefix else key
        names.append(field)
        if depth >= _MAX_DEPTH:
            continue
        for inner, is_list in _nested_types(annotation):
            where = module if inner in classes else imports.get(inner)
            if where is None or not where.startswith("stripe"):
                continue
            inner_prefix = f"{field}[]" if is_list else field
            if is_list:
                names.append(inner_prefix)
            names.extend(_fields(package_dir, where, inner, inner_prefix, depth + 1))
    return names


def _declared(tree: ast.Module, name: str, module: str) -> list[tuple[str, ast.expr]]:
    """A TypedDict's keys and annotations: its class body's, and those of a functional base.

    Keys that are Python keywords are declared the functional way, as a base:
    ``_XBase = TypedDict("X", {"from": "XFrom"})`` and ``class X(_XBase): ...``.
    """
    cls = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name), None)
    if cls is None:
        raise ValueError(f"{module}.{name}: no such class")
    declared: list[tuple[str, ast.expr]] = []
    bases = {b.id for b in cls.bases if isinstance(b, ast.Name)}
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id in bases for t in node.targets)
            and isinstance(node.value, ast.Call)
            and len(node.value.args) == 2
            and isinstance(node.value.args[1], ast.Dict)
        ):
            for key, value in zip(node.value.args[1].keys, node.value.args[1].values, strict=True):
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    declared.append((key.value, value))
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
