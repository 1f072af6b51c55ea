"""stripe-python's operations as tools, read from its source with ``ast`` (a dev-time generator).

Why generated and committed, not built at load time: stripe-python is a dev dependency, not there
at runtime, so ``vendors/stripe/tools.json`` holds what this reads and tests/test_vendor_tools.py
regenerates it from the installed SDK and fails when the two differ. For each operation of
``operations.json``:

* the name is the ``StripeClient`` path of the service method (``client.v1.charges.capture`` ->
  ``charges_capture``, ``client.v2.billing.meter_events.create`` -> ``v2_billing_meter_events_create``,
  ``client.oauth.token`` -> ``oauth_token``), the services' ``_subservices`` tables followed from
  ``StripeClient``'s ``v1``, ``v2`` and ``oauth``; a name longer than 64 characters keeps its first 55
  and a hash of the whole (``vendors.tools.short_name``);
* the description is the method's docstring, the title its first sentence;
* the input schema is the params TypedDict's, each field's attribute docstring its description:
  ``NotRequired`` decides ``required``, ``List[X]`` is an array, ``Literal[...]`` an enum (with
  ``|str`` an open one: a string with the known values as ``examples``), ``Dict[str, X]`` an object
  of X, ``Literal['']|X`` (Stripe's "send '' to unset") ``anyOf`` X and the empty string, a nested
  TypedDict a nested object, down to ``MAX_NESTING`` levels; deeper ones become an object that takes
  anything, described by its docstring.

Sizes, stripe-python 16.1.0 (650 operations; ``python -m vendors.stripe.toolgen --sizes``), each field's
description cut at 500 characters: every level kept, tools.json would be 3.0 MB and the largest tool
(``payment_intents_create``, with its ``payment_method_options`` for some fifty payment methods)
132 kB of schema; cut at MAX_NESTING = 2 (``line_items[][price_data]`` typed, its ``recurring`` an
object that takes anything) 2.5 MB and 111 kB; at 1, 1.8 MB and 45 kB; the median tool is 0.85 kB
at every depth. 2 is kept: the file is no burden (read once, lazily), the common nested calls keep
their shape, and what the cut drops is the breadth of a few payment-method options, not the calls'.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from vendors.stripe import catalogue, sdk_operations
from vendors.stripe.sdk_operations import SdkOperation, _declared, _module
from vendors.stripe.tools import TOOLS
from vendors.tools import MAX_DESCRIPTION, object_schema, short_name, trimmed

MAX_NESTING = 2  # levels of nested objects typed below a top-level parameter (measured above)
_ROOTS = (("oauth", "stripe._oauth_service", "OAuthService"), ("", "stripe._v1_services", "V1Services"),
          ("v2", "stripe._v2_services", "V2Services"))
_SCALARS: dict[str, dict[str, Any]] = {
    "str": {"type": "string"}, "int": {"type": "integer"}, "bool": {"type": "boolean"}, "float": {"type": "number"},
    # Stripe's decimal_string: a string on the wire, and a JSON float would round the money
    "Decimal": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$"},
    "Any": {}, "object": {},
}


def service_paths(package_dir: Path) -> dict[tuple[str, str], tuple[str, ...]]:
    """Every service class reachable from StripeClient: (module, class) -> its attribute path."""
    found: dict[tuple[str, str], tuple[str, ...]] = {}
    queue = [((name,) if name else (), module, cls) for name, module, cls in _ROOTS]
    while queue:
        path, module, cls = queue.pop(0)
        if (module, cls) in found:
            continue
        found[(module, cls)] = path
        queue.extend(((*path, attr), child_module, child) for attr, child_module, child in _subservices(package_dir,
                                                                                                         module))
    return found


def _subservices(package_dir: Path, module: str) -> list[tuple[str, str, str]]:
    source = package_dir.joinpath(*module.split(".")[1:]).with_suffix(".py")
    tree = ast.parse(source.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_subservices"
                                                for t in node.targets):
            table = ast.literal_eval(node.value)
            return sorted((attr, where, cls) for attr, (where, cls) in table.items())
    return []


def tool_name(service_path: tuple[str, ...], function: str) -> str:
    return short_name("_".join((*service_path, function)))


def operations_by_key(package_dir: Path) -> dict[tuple[str, str, str], list[SdkOperation]]:
    """Every (method, path, base_address) with each service method that sends it, reachable ones first."""
    reachable = service_paths(package_dir)
    found: dict[tuple[str, str, str], list[SdkOperation]] = {}
    for module in sorted(package_dir.rglob("*_service.py")):
        for op in sdk_operations._module_operations(package_dir, module):
            found.setdefault(op.key, []).append(op)
    for ops in found.values():
        ops.sort(key=lambda op: ((_module_name(op), op.service) not in reachable, op.module, op.function))
    return found


def _module_name(op: SdkOperation) -> str:
    return "stripe." + op.module.removesuffix(".py").replace("/", ".")


def generated(package_dir: Path, entries: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """One tool per catalogue entry, in the catalogue's order (``tools.json``'s ``tools``)."""
    by_key = operations_by_key(package_dir)
    reachable = service_paths(package_dir)
    for entry in entries:
        op = by_key[(entry["method"], entry["path"], entry["host"])][0]
        path = reachable.get((_module_name(op), op.service))
        if path is None:
            raise ValueError(f"{op.service}.{op.function} is not reachable from StripeClient")
        doc = _docstring(package_dir, op)
        yield {
            "name": tool_name(path, op.function),
            "method": entry["method"],
            "template": entry["path"],
            "host": entry["host"],
            "title": trimmed(_first_sentence(doc) or f"{op.service}.{op.function}", 120),
            "description": trimmed(doc or op.summary, MAX_DESCRIPTION),
            "input_schema": input_schema(package_dir, entry["path"], op.params),
        }


def _docstring(package_dir: Path, op: SdkOperation) -> str:
    tree = ast.parse((package_dir / op.module).read_text(encoding="utf-8"))
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == op.service):
        for func in (n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == op.function):
            return ast.get_docstring(func) or ""
    return ""


def _first_sentence(text: str) -> str:
    first = text.strip().split("\n\n", 1)[0].replace("\n", " ")
    return re.split(r"(?<=[a-z)])\.\s", first, maxsplit=1)[0].rstrip(".")


def input_schema(package_dir: Path, template: str, params: str | None) -> dict[str, Any]:
    """The tool's schema: the path's parameters (required strings), then the params TypedDict's."""
    properties: dict[str, Any] = {
        name: {"type": "string", "description": f"The id in the path ({template})."}
        for name in re.findall(r"\{(\w+)\}", template)}
    required = list(properties)
    if params:
        module, _, name = params.rpartition(".")
        body = _object(package_dir, module, name, 0)
        properties.update(body.get("properties", {}))
        required += body.get("required", [])
    return object_schema(properties, required)


def _object(package_dir: Path, module: str, name: str, depth: int) -> dict[str, Any]:
    index = _module(package_dir, module)
    docs = _field_docs(index.classes[name]) if name in index.classes else {}
    total = not any(k.arg == "total" and isinstance(k.value, ast.Constant) and k.value.value is False
                    for k in index.classes[name].keywords) if name in index.classes else True
    properties: dict[str, Any] = {}
    required: list[str] = []
    for key, annotation in _declared(index, name, module):
        optional, inner = _unwrap_not_required(annotation)
        schema = _schema(package_dir, module, inner, depth)
        if key in docs:
            schema = {**schema, "description": trimmed(docs[key], 500)}
        properties[key] = schema
        if total and not optional:
            required.append(key)
    found: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        found["required"] = required
    return found


def _field_docs(cls: ast.ClassDef) -> dict[str, str]:
    """Each field's attribute docstring: the string statement right after its annotation."""
    docs: dict[str, str] = {}
    for stmt, after in zip(cls.body, cls.body[1:], strict=False):
        if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
            docs[stmt.target.id] = " ".join(after.value.value.split())
    return docs


def _parsed(node: ast.expr) -> ast.expr:
    while isinstance(node, ast.Constant) and isinstance(node.value, str):
        node = ast.parse(node.value, mode="eval").body
    return node


def _unwrap_not_required(annotation: ast.expr) -> tuple[bool, ast.expr]:
    node = _parsed(annotation)
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "NotRequired":
        return True, node.slice
    return False, node


def _schema(package_dir: Path, module: str, annotation: ast.expr, depth: int) -> dict[str, Any]:
    node = _parsed(annotation)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _union([_schema(package_dir, module, side, depth) for side in (node.left, node.right)])
    if isinstance(node, ast.Name):
        return _named(package_dir, module, node.id, depth)
    if isinstance(node, ast.Constant) and node.value is None:
        return {"type": "null"}
    if not (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name)):
        raise ValueError(f"{module}: an annotation the generator does not know: {ast.unparse(node)}")
    args = list(node.slice.elts) if isinstance(node.slice, ast.Tuple) else [node.slice]
    outer = node.value.id
    if outer == "Literal":
        values = [a.value for a in args if isinstance(a, ast.Constant)]
        return {"const": values[0]} if values == [""] else {"enum": values}
    if outer in ("Union", "Optional"):
        return _union([_schema(package_dir, module, a, depth) for a in args])
    if outer == "List":
        return {"type": "array", "items": _schema(package_dir, module, args[0], depth)}
    if outer in ("Dict", "UntypedStripeObject"):
        return {"type": "object", "additionalProperties": _schema(package_dir, module, args[-1], depth)}
    if outer == "NotRequired":
        return _schema(package_dir, module, args[0], depth)
    raise ValueError(f"{module}: an annotation the generator does not know: {ast.unparse(node)}")


def _named(package_dir: Path, module: str, name: str, depth: int) -> dict[str, Any]:
    if name in _SCALARS:
        return dict(_SCALARS[name])
    index = _module(package_dir, module)
    where = module if name in index.classes else index.imports.get(name)
    if where is None or not where.startswith("stripe"):
        raise ValueError(f"{module}: {name} is neither a known type nor a stripe TypedDict")
    if depth >= MAX_NESTING:
        return {"type": "object", "description": "An object: see the Stripe API reference for its fields."}
    return _object(package_dir, where, name, depth + 1)


def _union(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Flattened, duplicates dropped; string enums beside ``str`` become the string's examples."""
    flat: list[dict[str, Any]] = []
    for part in parts:
        for one in part.get("anyOf", [part]) if set(part) == {"anyOf"} else [part]:
            if one not in flat:
                flat.append(one)
    if {"type": "string"} in flat:
        known = [v for p in flat if set(p) == {"enum"} for v in p["enum"] if isinstance(v, str)]
        flat = [p for p in flat if set(p) != {"enum"}]
        if known:
            flat[flat.index({"type": "string"})] = {"type": "string", "examples": known}
    enums = [p for p in flat if set(p) == {"enum"}]
    if len(enums) > 1:  # Literal['a']|Literal['b']: one enum
        merged = {"enum": [v for p in enums for v in p["enum"]]}
        flat = [merged if p is enums[0] else p for p in flat if p is enums[0] or p not in enums]
    return flat[0] if len(flat) == 1 else {"anyOf": flat}


def generate() -> dict[str, Any]:
    """tools.json's content, from the installed stripe-python (a dev dependency)."""
    spec = importlib.util.find_spec("stripe")
    if spec is None or spec.origin is None:
        raise SystemExit("stripe-python is not installed: pip install the dev dependencies first")
    document = json.loads(catalogue.CATALOGUE.read_text(encoding="utf-8"))
    tools = list(generated(Path(spec.origin).parent, document["operations"]))
    return {"sdk": document["sdk"], "max_nesting": MAX_NESTING, "tools": tools}


def dumps(document: Mapping[str, Any]) -> str:
    """One tool a line, so that a regenerated file's diff names the tools that changed."""
    lines = ",\n".join("  " + json.dumps(tool, ensure_ascii=False, sort_keys=True) for tool in document["tools"])
    head = json.dumps({k: v for k, v in document.items() if k != "tools"})[:-1]
    return f'{head}, "tools": [\n{lines}\n]}}\n'


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vendors.stripe.toolgen", description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help="regenerate vendors/stripe/tools.json")
    parser.add_argument("--sizes", action="store_true", help="print the file's size and the largest tools'")
    args = parser.parse_args(argv)
    document = generate()
    text = dumps(document)
    if args.write:
        TOOLS.write_text(text, encoding="utf-8")
    if args.sizes or not args.write:
        largest = sorted((len(json.dumps(t["input_schema"])), t["name"]) for t in document["tools"])[-3:]
        print(f"{len(document['tools'])} tools, {len(text.encode()) / 1e6:.2f} MB; largest schemas: {largest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
