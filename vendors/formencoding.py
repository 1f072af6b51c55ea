"""A strict decoder for Stripe-style nested form bodies and query strings.

Stripe's SDKs send ``metadata[k]=v``, ``expand[0]=x`` and ``items[0][price]=p`` with
literal brackets; curl users write ``expand[]=x`` or percent-encode the brackets.
All of those decode to the same tree here. Anything that could be read two ways is
refused instead of guessed at: a key given twice (also once literal and once
percent-encoded), a value that is both a leaf and a branch, ``[]`` mixed with
explicit indices, ``[]`` before another segment (``items[][price]=a&items[][quantity]=1``
is one item to Stripe's Rack-style reader, which starts a new element only when the last
one holds the key, and would be two to a reader that counts), bad percent-escapes, invalid UTF-8.

Arrays are lists, as in a /v2 JSON body (vendors/stripe/bodies.py reads both into one tree, and
the catalogue's ``items[][price]`` names must find the same thing in either): a branch whose
keys are exactly "0" .. "n-1" becomes a list in index order. Any other branch stays a dict, also
one keyed ``0`` and ``2`` (a gap) or ``0`` and ``00``: a hash with free-form keys
(``metadata[7]=x``) is a dict to Stripe too, and a reader that expects an array there refuses
the dict (vendors/stripe/facts.py) rather than guess which elements Stripe would see.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from vendors.base import RequestRejected

MAX_PAIRS = 1000
MAX_DEPTH = 8
MAX_KEY_LENGTH = 256

_ROOT = re.compile(r"[A-Za-z0-9_]+")
# Inside brackets anything but brackets and control characters: Stripe metadata keys may hold spaces.
_SEGMENT = re.compile(r"\[([^\[\]\x00-\x1f\x7f]*)\]")
_PERCENT = re.compile(rb"%(?![0-9A-Fa-f]{2})")

FormTree = dict[str, Any]


def decode(data: bytes, *, where: str = "body") -> FormTree:
    """Decode ``a=1&b[c]=2&d[0]=x`` into ``{"a": "1", "b": {"c": "2"}, "d": ["x"]}``."""
    tree: FormTree = {}
    if not data:
        return tree
    pairs = data.split(b"&")
    if len(pairs) > MAX_PAIRS:
        raise RequestRejected("too_many_parameters", f"The request {where} has more than {MAX_PAIRS} parameters.")
    appended: set[tuple[str, ...]] = set()
    indexed: set[tuple[str, ...]] = set()
    for raw in pairs:
        if not raw:
            raise RequestRejected("malformed_form", f"The request {where} has an empty parameter (a stray '&').")
        if b"=" not in raw:
            raise RequestRejected("malformed_form", f"The request {where} has a parameter without '=': {show(raw)}.")
        raw_key, raw_value = raw.split(b"=", 1)
        key, value = unquote(raw_key, where), unquote(raw_value, where)
        path = _key_path(key, where)
        _insert(tree, path, value, key, appended, indexed, where)
    return _with_lists(tree)


def build(pairs: Iterable[tuple[str, str]], *, where: str = "body") -> FormTree:
    """The tree of already decoded (name, value) pairs, by the same rules as ``decode``: a multipart
    body's fields (vendors/multipart.py) are named in the same bracket notation, and read as strictly."""
    tree: FormTree = {}
    appended: set[tuple[str, ...]] = set()
    indexed: set[tuple[str, ...]] = set()
    for count, (key, value) in enumerate(pairs, 1):
        if count > MAX_PAIRS:
            raise RequestRejected("too_many_parameters", f"The request {where} has more than {MAX_PAIRS} parameters.")
        _insert(tree, _key_path(key, where), value, key, appended, indexed, where)
    return _with_lists(tree)


def _with_lists(tree: FormTree) -> FormTree:
    """The tree with every branch keyed exactly "0" .. "n-1" (below the top) a list in index order."""
    for name, value in tree.items():
        if isinstance(value, dict):
            tree[name] = _arrayed(value)
    return tree


def _arrayed(node: FormTree) -> FormTree | list[Any]:
    for name, value in node.items():  # depth is bounded by MAX_DEPTH: the recursion is too
        if isinstance(value, dict):
            node[name] = _arrayed(value)
    indices = [str(i) for i in range(len(node))]
    if node.keys() != set(indices):
        return node
    return [node[index] for index in indices]


def unquote(raw: bytes, where: str) -> str:
    """One form name or value, ``+`` and percent-decoded; a bad escape or invalid UTF-8 is refused."""
    if _PERCENT.search(raw):
        raise RequestRejected("malformed_form", f"The request {where} has an invalid percent-escape: {show(raw)}.")
    raw = raw.replace(b"+", b" ")
    if b"%" in raw:  # most names and values have no escape: skip the byte-by-byte loop for them
        raw = _percent_decode(raw)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestRejected("invalid_utf8", f"The request {where} is not valid UTF-8.") from None


def _percent_decode(raw: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(raw):
        if raw[i] == 0x25:  # '%'
            out.append(int(raw[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(raw[i])
            i += 1
    return bytes(out)


def _key_path(key: str, where: str) -> list[str | None]:
    """``items[0][price]`` -> ["items", "0", "price"]; ``expand[]`` -> ["expand", None]."""
    if len(key) > MAX_KEY_LENGTH:
        raise RequestRejected("malformed_form", f"A parameter name in the request {where} is too long.")
    root = _ROOT.match(key)
    if not root:
        raise RequestRejected("malformed_form", f"Invalid parameter name {key!r} in the request {where}.")
    path: list[str | None] = [root.group(0)]
    pos = root.end()
    while pos < len(key):
        seg = _SEGMENT.match(key, pos)
        if not seg:
            raise RequestRejected("malformed_form", f"Invalid parameter name {key!r} in the request {where}.")
        path.append(seg.group(1) or None)
        pos = seg.end()
    if len(path) > MAX_DEPTH:
        raise RequestRejected("malformed_form", f"Parameter {key!r} is nested deeper than {MAX_DEPTH} levels.")
    return path


def _insert(
    tree: FormTree,
    path: list[str | None],
    value: str,
    key: str,
    appended: set[tuple[str, ...]],
    indexed: set[tuple[str, ...]],
    where: str,
) -> None:
    node: FormTree = tree
    for depth, segment in enumerate(path):
        parent = tuple(str(s) for s in path[:depth])
        if segment is None:
            if parent in indexed or depth < len(path) - 1:
                raise _ambiguous(key, where)
            appended.add(parent)
            segment = str(len(node))
        elif depth > 0 and segment.isdigit():
            if parent in appended:
                raise _ambiguous(key, where)
            indexed.add(parent)
        last = depth == len(path) - 1
        existing = node.get(segment)
        if last:
            if isinstance(existing, dict):  # a leaf where a branch already is (``a[b]=1&a=2``)
                raise _ambiguous(key, where)
            if existing is not None:
                raise RequestRejected(
                    "duplicate_parameter", f"Parameter {key!r} appears more than once in the request {where}.",
                    param=key,
                )
            node[segment] = value
            return
        if existing is None:
            existing = node[segment] = {}
        elif not isinstance(existing, dict):
            raise _ambiguous(key, where)
        node = existing


def _ambiguous(key: str, where: str) -> RequestRejected:
    return RequestRejected(
        "ambiguous_parameter", f"Parameter {key!r} conflicts with another parameter in the request {where}.", param=key
    )


def show(raw: bytes) -> str:
    """Raw bytes as an error message quotes them: the first 40, readable whatever they hold."""
    return repr(raw[:40].decode("latin-1"))
