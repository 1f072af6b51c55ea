"""A strict decoder for flat form bodies and query strings (Twilio's ``To=...&From=...``).

Twilio's parameters are flat: no brackets, no nesting. A few are lists, sent as the
same key repeated (``MediaUrl=a&MediaUrl=b``, as twilio-python's requests-based
client encodes a list); the caller names those. Everything else that could be read
two ways is refused, with the reason codes the Stripe decoder uses:

* ``duplicate_parameter``: a non-list key given twice;
* ``ambiguous_parameter``: two spellings of one key that differ only in case
  (``To`` and ``to``), since we cannot know which one the vendor reads;
* ``malformed_form``: a stray ``&``, a pair without ``=``, a bad percent-escape,
  brackets or other characters that are no Twilio parameter name;
* ``invalid_utf8``; ``too_many_parameters``.

Percent-decoding and UTF-8 checking are shared with vendors.formencoding, so both
vendors refuse exactly the same bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from vendors.base import RequestRejected
from vendors.formencoding import MAX_PAIRS, show, unquote

# Twilio's names are CamelCase; list filters add a comparison suffix (``DateSent<``, ``StartTime>``);
# Verify and Messaging flatten objects into dotted names (``Push.IncludeDate``, ``Details.Message``).
_NAME = re.compile(r"(?=.{1,64}[<>]?\Z)[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)*[<>]?\Z")

FlatForm = dict[str, "str | tuple[str, ...]"]


def decode(data: bytes, *, where: str = "body", repeatable: Iterable[str] = ()) -> FlatForm:
    """``a=1&b=2&M=x&M=y`` -> {"a": "1", "b": "2", "M": ("x", "y")} when "M" is repeatable.

    A repeatable key always decodes to a tuple, even when given once.
    """
    form: FlatForm = {}
    if not data:
        return form
    lists = frozenset(repeatable)
    pairs = data.split(b"&")
    if len(pairs) > MAX_PAIRS:
        raise RequestRejected("too_many_parameters", f"The request {where} has more than {MAX_PAIRS} parameters.")
    spellings: dict[str, str] = {}
    for raw in pairs:
        key, value = _pair(raw, where)
        first = spellings.setdefault(key.lower(), key)
        if first != key:
            raise RequestRejected(
                "ambiguous_parameter",
                f"Parameters {first!r} and {key!r} in the request {where} differ only in case.",
                param=key,
            )
        _add(form, key, value, key in lists, where)
    return form


def merge(first: FlatForm, second: FlatForm) -> FlatForm:
    """Query string plus body: a key in both is a duplicate, whatever its case."""
    lowered = {key.lower(): key for key in first}
    for key in second:
        if key.lower() in lowered:
            raise RequestRejected(
                "duplicate_parameter", f"Parameter {key!r} appears in both the query string and the body.", param=key
            )
    return {**first, **second}


def _pair(raw: bytes, where: str) -> tuple[str, str]:
    if not raw:
        raise RequestRejected("malformed_form", f"The request {where} has an empty parameter (a stray '&').")
    if b"=" not in raw:
        raise RequestRejected("malformed_form", f"The request {where} has a parameter without '=': {show(raw)}.")
    raw_key, raw_value = raw.split(b"=", 1)
    key, value = unquote(raw_key, where), unquote(raw_value, where)
    if not _NAME.match(key):
        raise RequestRejected(
            "malformed_form", f"Invalid parameter name {key[:40]!r} in the request {where}; Twilio parameters are flat."
        )
    return key, value


def _add(form: FlatForm, key: str, value: str, is_list: bool, where: str) -> None:
    existing = form.get(key)
    if is_list:
        form[key] = (*existing, value) if isinstance(existing, tuple) else (value,)
        return
    if existing is not None:
        raise RequestRejected(
            "duplicate_parameter", f"Parameter {key!r} appears more than once in the request {where}.", param=key
        )
    form[key] = value
