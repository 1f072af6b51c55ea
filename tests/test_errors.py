"""One error tree (proxy/errors.py) and one reason catalogue (proxy/reasons.py).

Reason codes are a public interface (audit_events.reason, error bodies), so every code the
code base can give must be in the catalogue: these tests find each reason literal in proxy/,
vendors/ and the SQL functions' texts, and each error class, and hold them to it."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import proxy
import vendors
from proxy import errors, reasons
from vendors.twilio.errors import REASON_CODES as TWILIO_REASON_CODES

REPO = Path(__file__).resolve().parents[1]
# Whatever is raised, returned or rendered with a reason: its first argument is the code
# (VendorError's second: its first is the status).
ERROR_CALLS = {name for name, value in vars(errors).items() if isinstance(value, type)} | {"PolicyInvalid"}
SQL_REASONS = [re.compile(r"reason\s*:=\s*'([a-z_]+)'"), re.compile(r"coalesce\(a\.reason,\s*'([a-z_]+)'\)"),
               re.compile(r"'stale'::text,\s*'([a-z_]+)'::text")]


def _called(func: ast.expr) -> str | None:
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def _strings(node: ast.expr | None) -> list[str]:
    """The string constants an expression can be: a literal, either arm of ``x if c else y``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _strings(node.body) + _strings(node.orelse)
    return []


def _literals_in(tree: ast.AST) -> list[tuple[str, int]]:
    found = []
    for node in ast.walk(tree):
        candidates: list[ast.expr | None] = []
        if isinstance(node, ast.Call):
            name = _called(node.func)
            if name in ERROR_CALLS and node.args:
                candidates.append(node.args[0])
            if name == "VendorError" and len(node.args) > 1:
                candidates.append(node.args[1])
            candidates += [k.value for k in node.keywords if k.arg == "reason"]
            # A code built at run time (invalid_{name}) escapes the catalogue: always a finding.
            found += [("<an f-string>", node.lineno) for c in candidates if isinstance(c, ast.JoinedStr)]
        elif isinstance(node, ast.Dict):  # {"reason": ...} and the error bodies' {"code": ...}
            candidates += [v for k, v in zip(node.keys, node.values, strict=True)
                           if _strings(k) in (["reason"], ["code"])]
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id.endswith("reason")
                                                  for t in node.targets):
            candidates.append(node.value)
        elif isinstance(node, ast.Compare) and _called(node.left) in ("reason",):
            candidates += node.comparators
        found += [(code, node.lineno) for c in candidates for code in _strings(c)]  # type: ignore[attr-defined]
    return found


def reason_literals() -> dict[str, list[str]]:
    """Each reason code written in the code base, with where."""
    found: dict[str, list[str]] = {}
    for root in ("proxy", "vendors"):
        for path in sorted((REPO / root).rglob("*.py")):
            for code, line in _literals_in(ast.parse(path.read_text())):
                found.setdefault(code, []).append(f"{path.relative_to(REPO)}:{line}")
    for path in sorted((REPO / "migrations" / "sql").glob("*.py")):
        text = path.read_text()
        for pattern in SQL_REASONS:
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                found.setdefault(match.group(1), []).append(f"{path.relative_to(REPO)}:{line}")
    return found


def test_the_finder_sees_every_shape_of_literal() -> None:
    tree = ast.parse('raise Unavailable("a_down", "m")\nVendorError(503, "b_code", "m")\n'
                     'x = {"reason": "c_one" if ok else "d_other"}\nreason = "e_code"\nf(reason="f_code")\n'
                     'raise InvalidInput(f"invalid_{name}", "m")\n')
    found = sorted(code for code, _ in _literals_in(tree))
    assert found == ["<an f-string>", "a_down", "b_code", "c_one", "d_other", "e_code", "f_code"]


def test_every_reason_in_the_code_is_in_the_catalogue() -> None:
    literals = reason_literals()
    assert len(literals) > 70  # the finder finds them (it once found none for a renamed class)
    missing = {code: where for code, where in literals.items() if code not in reasons.CATALOGUE}
    assert not missing, f"reason codes missing from proxy/reasons.py: {missing}"


def test_every_reason_a_vendor_renders_is_in_the_catalogue() -> None:
    assert set(TWILIO_REASON_CODES) - set(reasons.CATALOGUE) == set()


def test_the_catalogue_is_well_formed() -> None:
    entries = [r for group in ("_AUTH", "_POLICY", "_INVALID", "_UNAVAILABLE", "_ADMIN", "_CONFIG", "_OUTCOME")
               for r in getattr(reasons, group)]
    assert len(entries) == len(reasons.CATALOGUE), "a code is listed twice"
    for reason in entries:
        assert re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", reason.code), reason.code
        assert reason.description.endswith(".") and reason.kind in (
            "auth", "policy", "invalid_request", "unavailable", "admin", "config", "outcome")
    assert {r.status for r in entries if r.kind == "auth"} == {401}
    assert {r.status for r in entries if r.kind == "policy"} == {403}


def test_the_readme_table_is_the_catalogue() -> None:
    readme = (REPO / "README.md").read_text()
    start, end = "<!-- reason codes: generated by python -m proxy.reasons -->\n", "\n<!-- end of reason codes -->"
    assert start in readme and end in readme
    assert readme.split(start, 1)[1].split(end, 1)[0] == reasons.markdown_table()


def _modules(package: object) -> list[object]:
    return [importlib.import_module(m.name) for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
            if not m.name.endswith("__main__")]  # type: ignore[attr-defined]


def test_every_error_class_is_in_the_one_tree() -> None:
    classes = {cls for module in [*_modules(proxy), *_modules(vendors)]
               for _, cls in inspect.getmembers(module, inspect.isclass)
               if issubclass(cls, BaseException) and cls.__module__.startswith(("proxy", "vendors"))}
    assert len(classes) >= 12
    outside = {cls.__qualname__ for cls in classes if not issubclass(cls, errors.TollgateError)}
    assert outside == set()
    drawn = errors.__doc__ or ""
    assert {cls.__name__ for cls in classes} - {*re.findall(r"[├└]── (\w+)", drawn), "TollgateError"} == set()
