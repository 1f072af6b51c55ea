"""A Stripe request's parameters, read one way only: forms on /v1, JSON on /v2, multipart for files.

What stripe-python 16 sends (``stripe/_api_requestor.py``): a /v1 POST form-encoded
(``application/x-www-form-urlencoded``, brackets for nesting, arrays indexed); a /v2 POST as JSON
(``json.dumps`` of the params, ``Content-Type: application/json``; amounts are JSON integers:
``stripe.v2.Amount`` is ``{"value": int, "currency": str}``, and the ``int64_string`` coercion of
``_encode.py`` writes a digit string where a service asks for one); GET and DELETE parameters in the
query string, v2's included (a v2 DELETE carries no body); a file upload (``options["content_type"]
= "multipart/form-data"``, ``_multipart_data_generator.py``) to the files host. Any other pairing of
body and route (JSON on /v1, a form on /v2, multipart off the files host) is refused
``unsupported_content_type``: Stripe would read it some other way than Tollgate, or not at all.

Each is read strictly and into the same tree, so the catalogue's bracket names
(``amount[value]``, ``file_link_data[create]``) read a JSON body and a form alike:

* forms and multipart text parts: vendors/formencoding.py (a name twice, ``k[]`` beside ``k[0]``,
  a leaf that is also a branch: refused);
* JSON: vendors/strictjson.py (duplicate keys, NaN, ``1e999``, lone surrogates, depth), an object
  at the top, and no bracket in a key: ``{"amount[value]": 1}`` is another parameter to Stripe's
  JSON reader than ``{"amount": {"value": 1}}``, and the form notation Tollgate reads by would
  take the one for the other;
* multipart: vendors/multipart.py; only ``file`` (``FileCreateParams``) may be a file part, and
  it is kept as what is known of it (filename, content type, size, SHA-256), never its bytes.

The query string and the body together must not name a parameter twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vendors import formencoding, multipart, strictjson
from vendors.base import RequestRejected

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
FILES_HOST = "files"
FILE_PARTS = frozenset({"file"})  # the only parameter stripe-python uploads as a file (FileCreateParams)
SUMMARY_PARAMS = ("amount", "currency", "customer", "charge", "payment_intent", "destination", "reason", "confirm",
                  "purpose")


def params(host: str | None, path: str, query: bytes, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """The request's parameters, query string and body together."""
    from_query = formencoding.decode(query, where="query string")
    if not body:
        return from_query
    expected = multipart.MEDIA_TYPE if host == FILES_HOST else JSON if path.startswith("/v2/") else FORM
    content_type = headers.get("content-type", "")
    got = content_type.split(";")[0].strip().lower()
    if got != expected:
        raise RequestRejected("unsupported_content_type", _expected(expected, got))
    if expected == FORM:
        from_body = formencoding.decode(body, where="body")
    elif expected == JSON:
        from_body = _json(body)
    else:
        from_body = _multipart(body, content_type)
    for key in from_body.keys() & from_query.keys():
        raise RequestRejected(
            "duplicate_parameter", f"Parameter {key!r} appears in both the query string and the body.", param=key
        )
    return {**from_query, **from_body} if from_query else from_body


def summary(params: Mapping[str, Any], host: str | None) -> dict[str, Any]:
    """What the audit row keeps of the parameters: a few plain ones, and an upload's file as described."""
    kept: dict[str, Any] = {k: params[k] for k in SUMMARY_PARAMS if isinstance(params.get(k), str)}
    if host == FILES_HOST:  # only there is a parameter a file (the api path pays for no loop)
        kept.update((name, params[name]) for name in FILE_PARTS if isinstance(params.get(name), dict))
    return kept


def _expected(expected: str, got: str) -> str:
    where = {FORM: "on /v1", JSON: "on /v2 (as stripe-python sends them)",
             multipart.MEDIA_TYPE: "to the files host (file uploads)"}[expected]
    return f"Stripe request bodies {where} must be {expected}, not {got or 'missing'!r}."


def _json(body: bytes) -> dict[str, Any]:
    value = strictjson.loads(body)
    if not isinstance(value, dict):
        raise RequestRejected("invalid_json", "The request body must be a JSON object of parameters.")
    stack: list[Any] = [value]
    while stack:  # iterative: strictjson bounds the depth, the walk need not recurse
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            for key, item in node.items():
                if "[" in key or "]" in key:
                    raise RequestRejected(
                        "ambiguous_parameter", f"JSON key {key[:40]!r} has a bracket: in form notation it would be "
                        "another parameter than Stripe reads.", param=key)
                stack.append(item)
    return value


def _multipart(body: bytes, content_type: str) -> dict[str, Any]:
    read = multipart.decode(body, content_type)
    tree = formencoding.build(read.fields, where="body")
    for name in FILE_PARTS & tree.keys():
        raise RequestRejected("invalid_parameter", f"Parameter {name!r} must be a file part (with a filename).",
                              param=name)
    for part in read.files:
        if part.name not in FILE_PARTS:
            raise RequestRejected("invalid_parameter", f"Part {part.name[:40]!r} carries a file; only "
                                  f"{', '.join(sorted(FILE_PARTS))} takes one.", param=part.name)
        tree[part.name] = {"filename": part.filename, "content_type": part.content_type, "size": part.size,
                           "sha256": part.sha256}
    return tree
