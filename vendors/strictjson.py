"""A strict JSON reader for request bodies: one reading or a refusal, never a guess.

Python's ``json`` module (like many servers' parsers) takes the last of two equal
keys, accepts ``NaN`` and ``Infinity``, turns ``1e999`` into infinity and lets
``"\\ud800"`` through as a lone surrogate. A vendor's parser may read any of those
differently from us, so each is refused:

* ``invalid_utf8``: bytes that are not UTF-8;
* ``duplicate_parameter``: an object key given twice (``param`` names it);
* ``invalid_json``: anything else: syntax, a byte-order mark, NaN/Infinity, a
  number outside float range, a lone surrogate, nesting deeper than ``MAX_DEPTH``.
"""

from __future__ import annotations

import json
import math
from typing import Any

from vendors.base import RequestRejected

MAX_DEPTH = 32  # Resend's emails nest three levels (batch > email > attachments/tags)


def loads(body: bytes, *, where: str = "body", status: int = 400) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestRejected("invalid_utf8", f"The request {where} is not valid UTF-8.", status=status) from None
    try:
        value = json.loads(text, object_pairs_hook=_object, parse_constant=_constant, parse_float=_float)
    except RequestRejected as exc:
        exc.status = status
        raise
    except RecursionError:
        raise _invalid(where, f"nested deeper than {MAX_DEPTH} levels", status) from None
    except ValueError as exc:  # JSONDecodeError, and int() past Python's digit limit
        raise _invalid(where, str(exc)[:120], status) from None
    _check(value, where, status)
    return value


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise RequestRejected(
                "duplicate_parameter", f"Key {key[:40]!r} appears twice in one JSON object.", param=key
            )
        obj[key] = value
    return obj


def _constant(name: str) -> Any:
    raise RequestRejected("invalid_json", f"{name} is not JSON.")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise RequestRejected("invalid_json", f"The number {text[:40]} is out of range.")
    return value


def _check(value: Any, where: str, status: int) -> None:
    """Depth and lone surrogates, walked without recursion (the body may be hostile)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            _utf8(node, where, status)
            continue
        if not isinstance(node, (dict, list)):
            continue
        if depth > MAX_DEPTH:
            raise _invalid(where, f"nested deeper than {MAX_DEPTH} levels", status)
        if isinstance(node, dict):
            for key, item in node.items():
                _utf8(key, where, status)
                stack.append((item, depth + 1))
        else:
            stack.extend((item, depth + 1) for item in node)


def _utf8(text: str, where: str, status: int) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _invalid(where, "it holds a lone surrogate (\\ud800-\\udfff)", status) from None


def _invalid(where: str, why: str, status: int) -> RequestRejected:
    return RequestRejected("invalid_json", f"The request {where} is not valid JSON: {why}.", status=status)
