"""What a valid policy lets through that an operator should know about before using it.

A policy is deny by default, but a wildcard (``POST /v1/*/*``) or a hopeful line can allow more
than its author meant. From the adapter's catalogue (``VendorAdapter.operations``), each allowed
pattern is listed with the operations it matches, and a warning is given for every allowed
operation that issues credentials (the agent would walk away with a secret that bypasses
Tollgate), that moves money or reaches people but cannot be priced before it is sent (it will
be refused as ``cost_unknown`` unless ``endpoints.priced_after`` names it), and for every
pattern that matches nothing Tollgate knows; proxy/policy/exposure.py adds who the allowed
operations can reach and what the policy's recipient rules, duplicate guard and ``priced_after``
leave open. ``tollgate policy validate`` prints them and
``POST /admin/v1/policies/validate`` returns them; the console's policy editor
shows what the API returns; none refuses the policy for them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from proxy.policy.exposure import exposure
from vendors.base import Operation
from vendors.endpoints import PathPattern


@dataclass(frozen=True)
class Review:
    matches: dict[str, list[str]]  # pattern -> "METHOD /path" of each operation it matches
    warnings: list[str]


def review(document: Mapping[str, Any], operations: Iterable[Operation]) -> Review:
    endpoints = document.get("endpoints", {})
    allowed = [*endpoints.get("allow", ()), *endpoints.get("require_approval", ())]
    priced_after = [PathPattern.parse(p) for p in endpoints.get("priced_after", ())]
    known = list(operations)
    matched_by: dict[str, list[Operation]] = {}
    warnings: list[str] = []
    for pattern in dict.fromkeys(allowed):
        matched = matched_by[pattern] = [op for op in known if _matches(PathPattern.parse(pattern), op)]
        if not matched:
            warnings.append(f"{pattern} matches no operation Tollgate knows: every call to it is refused.")
        warnings += [w for w in (_warning(pattern, op, priced_after) for op in matched) if w]
    warnings += exposure(document, matched_by, known, _matches)
    matches = {pattern: [f"{op.method} {op.path}" for op in ops] for pattern, ops in matched_by.items()}
    return Review(matches, list(dict.fromkeys(warnings)))


def _matches(pattern: PathPattern, op: Operation) -> bool:
    return pattern.matches_operation(op.method, op.path)


def _warning(pattern: str, op: Operation, priced_after: list[PathPattern]) -> str:
    name = f"{op.method} {op.path}"
    if op.kind == "issues_credentials":
        return (f"{pattern} allows {name}, which issues credentials: the vendor issues one on every call, and a "
                "secret its answer carries is withheld from the agent (credential_withheld) unless "
                "credentials.hand_out lists it, when it grants access without going through Tollgate.")
    if op.priced == "after" and not any(_matches(p, op) for p in priced_after):
        return (f"{pattern} allows {name}, which {op.kind.replace('_', ' ')} but cannot be priced before it is "
                "sent: it is refused as cost_unknown unless endpoints.priced_after lists it.")
    if op.priced == "set" and not any(_matches(p, op) for p in priced_after):
        return (f"{pattern} allows {name}, which {op.kind.replace('_', ' ')} and is priced at the prices the "
                "operator sets (`tollgate prices kinds VENDOR` lists them): one not set is refused as cost_unknown "
                "unless endpoints.priced_after lists it.")
    return ""
