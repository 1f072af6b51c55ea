"""Request-side helpers for the Stripe emulator: form decoding, coercion, errors.

Stripe's API reads ``application/x-www-form-urlencoded`` bodies and query
strings with Rack-style nesting:

* ``metadata[order]=42``         -> ``{"metadata": {"order": "42"}}``
* ``expand[]=a&expand[]=b``      -> ``{"expand": ["a", "b"]}``
* ``expand[0]=a&expand[1]=b``    -> ``{"expand": ["a", "b"]}`` (what stripe-python sends)
* ``items[0][price]=p``          -> ``{"items": [{"price": "p"}]}``

Every leaf value stays a string; handlers coerce with :func:`integer`,
:func:`boolean` and friends, which raise :class:`StripeApiError` with the
messages and codes Stripe uses.  This module deliberately imports nothing from
the proxy packages: it is an independent reading of the wire format.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_SEGMENT = re.compile(r"\[([^\[\]]*)\]")
# Hashes whose keys are free-form, so "metadata[0]=x" must stay a dict.
_FREE_FORM_HASHES = frozenset({"metadata"})


class StripeApiError(Exception):
    """An error answered in Stripe's ``{"error": {...}}`` shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error: dict[str, Any] = {"type": error_type, "message": message, **extra}
        if code is not None:
            self.error["code"] = code
            self.error["doc_url"] = "https://stripe.com/docs/error-codes/" + code.replace("_", "-")
        if param is not None:
            self.error["param"] = param


class FormDecodeError(ValueError):
    """A key whose brackets cannot be read, or that mixes a value and a hash."""


class _Appended(list):
    """A list built from ``key[]=`` pairs (as opposed to ``key[0]=``)."""


# -- decoding ---------------------------------------------------------------


def decode_query(raw: str | bytes) -> dict[str, Any]:
    """Decode a query string or form body into nested dicts and lists."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    return decode_pairs(parse_qsl(raw, keep_blank_values=True))


def decode_pairs(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for key, value in pairs:
        _assign(root, _split_key(key), value, key)
    return _finalize(root)


def _split_key(key: str) -> list[str]:
    match = _KEY.match(key)
    if match is None:
        raise FormDecodeError(key)
    return [match.group(1), *_SEGMENT.findall(match.group(2))]


def _assign(node: Any, segments: list[str], value: str, key: str) -> None:
    head, rest = segments[0], segments[1:]
    if (head == "") != isinstance(node, _Appended):
        raise FormDecodeError(key)
    if not rest:
        if head == "":
            node.append(value)
        elif isinstance(node.get(head), (dict, list)):
            raise FormDecodeError(key)
        else:
            node[head] = value
        return
    _assign(_child(node, head, rest[0], key), rest, value, key)


def _child(node: Any, head: str, next_segment: str, key: str) -> Any:
    kind = _Appended if next_segment == "" else dict
    if head == "":
        # "items[][price]=a&items[][qty]=1": Rack starts a new hash only when
        # the last one already holds the key being set.
        last = node[-1] if node else None
        if kind is dict and isinstance(last, dict) and next_segment not in last:
            return last
        node.append(kind())
        return node[-1]
    child = node.setdefault(head, kind())
    if not isinstance(child, kind):
        raise FormDecodeError(key)
    return child


def _finalize(node: Any, name: str = "") -> Any:
    if isinstance(node, list):
        return [_finalize(item) for item in node]
    if not isinstance(node, dict):
        return node
    if node and name not in _FREE_FORM_HASHES and all(k.isdigit() for k in node):
        return [_finalize(node[k]) for k in sorted(node, key=int)]
    return {k: _finalize(v, k) for k, v in node.items()}


# -- coercion ---------------------------------------------------------------


def require(params: dict[str, Any], name: str) -> Any:
    value = params.get(name)
    if value is None or value == "":
        raise StripeApiError(
            400, f"Missing required param: {name}.", code="parameter_missing", param=name
        )
    return value


def integer(params: dict[str, Any], name: str, *, positive: bool = False) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str) or not re.fullmatch(r"-?\d+", raw):
        raise StripeApiError(
            400, f"Invalid integer: {raw}", code="parameter_invalid_integer", param=name
        )
    value = int(raw)
    if positive and value < 1:
        raise StripeApiError(
            400, "Invalid positive integer", code="parameter_invalid_integer", param=name
        )
    return value


def required_amount(params: dict[str, Any], name: str = "amount") -> int:
    require(params, name)
    value = integer(params, name, positive=True)
    assert value is not None
    return value


def boolean(params: dict[str, Any], name: str, default: bool) -> bool:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if raw in ("true", "false"):
        return raw == "true"
    raise StripeApiError(400, f"Invalid boolean: {raw}", param=name)


def string(params: dict[str, Any], name: str) -> str | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise StripeApiError(400, f"Invalid string: {raw}", param=name)
    return raw


def currency(params: dict[str, Any]) -> str:
    return str(require(params, "currency")).lower()


def metadata(params: dict[str, Any]) -> dict[str, str]:
    raw = params.get("metadata")
    if raw is None or raw == "":
        return {}
    if not isinstance(raw, dict):
        raise StripeApiError(400, "Invalid hash", param="metadata")
    # Setting a key to "" means "unset it"; on create that is simply absent.
    return {k: v for k, v in raw.items() if v != ""}


def expand_paths(params: dict[str, Any]) -> list[str]:
    raw = params.get("expand")
    if raw is None or raw == "":
        return []
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        return raw
    raise StripeApiError(400, "Invalid array", param="expand")


def reject_unknown(params: dict[str, Any], accepted: frozenset[str] | None) -> None:
    """Stripe answers 400 ``parameter_unknown`` for any top-level key it does not know."""
    if accepted is None:
        return
    unknown = [name for name in params if name not in accepted]
    if not unknown:
        return
    noun = "parameter" if len(unknown) == 1 else "parameters"
    raise StripeApiError(
        400,
        f"Received unknown {noun}: {', '.join(unknown)}",
        code="parameter_unknown",
        param=unknown[0],
    )
