"""Stripe's operations as tools (vendors/tools.py), and the request stripe-python sends for a tool call.

The tools are data: ``tools.json``, generated from the installed stripe-python by
``vendors/stripe/toolgen.py`` (``python -m vendors.stripe.toolgen --write``; stripe-python is not there
at runtime) and held to it by tests/test_vendor_tools.py. It is read once, on the first ``tools()``,
never on the request path.

A tool call becomes what stripe-python 16 would send (``stripe/_api_requestor.py``): on /v1 the
parameters form-encoded by ``_api_encode`` (``metadata[k]=v``, ``items[0][price]=p``, lists always
indexed, booleans ``true``/``false``, None left out), ``urlencode``d with the brackets left literal,
in the body of a POST and in the query of a GET or DELETE (where its HTTP client percent-encodes
the brackets); on /v2 a POST's body is ``json.dumps`` of
the parameters; a file upload (files.stripe.com) multipart, the file given as its content in text.
The key goes in ``Authorization: Bearer``. What stripe-python adds besides (an
``Idempotency-Key`` on every POST, its ``Stripe-Version``) is not a parameter: the core gives a POST
without an idempotency key one of its own, as it does an HTTP client's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from vendors.base import Operation
from vendors.stripe import catalogue
from vendors.stripe.bodies import FORM, JSON
from vendors.stripe.routes import NOT_SERVED
from vendors.tools import (
    FILE_ARGUMENTS,
    Tool,
    ToolRequest,
    check_arguments,
    invalid,
    multipart,
    split_arguments,
    unique_names,
    upload_described,
)

TOOLS = Path(__file__).with_name("tools.json")


@lru_cache(maxsize=1)
def _loaded() -> tuple[tuple[Tool, ...], dict[str, tuple[str, str]]]:
    """(the tools of the operations Tollgate serves, each tool's (SDK path template, host) by name)."""
    described = {(op.method, op.path): op for op in catalogue.operations()}
    tools: list[Tool] = []
    templates: dict[str, tuple[str, str]] = {}
    for entry in json.loads(TOOLS.read_text(encoding="utf-8"))["tools"]:
        path = catalogue.prefix_of(entry["host"]) + catalogue.PLACEHOLDER.sub("{id}", entry["template"])
        if f"{entry['method']} {path}" in NOT_SERVED:
            continue  # never forwarded, whatever a policy says: no tool either
        operation: Operation = described[(entry["method"], path)]
        text = upload_described(entry["description"]) if entry["host"] == "files" else entry["description"]
        tools.append(Tool(entry["name"], entry["method"], path, operation.kind, operation.priced, entry["title"],
                          text, entry["input_schema"]))
        templates[entry["name"]] = (entry["template"], entry["host"])
    unique_names(tools)
    return tuple(tools), templates


def tools() -> Sequence[Tool]:
    return _loaded()[0]


def tool_request(tool: Tool, arguments: Mapping[str, Any], vault_key: str) -> ToolRequest:
    """The request stripe-python sends for ``arguments``, through Tollgate (route prefix for other hosts)."""
    found = _loaded()[1].get(tool.name)
    if found is None:
        raise invalid(tool, "no such Stripe tool.")
    check_arguments(tool, arguments)
    template, host = found
    path, params = split_arguments(tool, template, arguments)
    path = catalogue.prefix_of(host) + path
    headers = {"authorization": f"Bearer {vault_key}"}
    if tool.method in ("GET", "DELETE"):
        return ToolRequest(tool.method, path, query(params), headers, b"")
    if host == "files":  # an upload: the form's fields as multipart parts, the file as its own part
        fields = [(k, str(v)) for k, v in _encoded({k: v for k, v in params.items() if k not in FILE_ARGUMENTS})]
        content_type, body = multipart(tool, fields, {k: v for k, v in params.items() if k in FILE_ARGUMENTS})
        return ToolRequest(tool.method, path, b"", {**headers, "content-type": content_type}, body)
    if template.startswith("/v2/"):
        return ToolRequest(tool.method, path, b"", {**headers, "content-type": JSON}, json_v2(params))
    return ToolRequest(tool.method, path, b"", {**headers, "content-type": FORM}, form(params))


def json_v2(params: Mapping[str, Any]) -> bytes:
    """A /v2 body as stripe-python writes it: ``json.dumps`` with its default separators."""
    return json.dumps(dict(params)).encode("utf-8")


def form(params: Mapping[str, Any]) -> bytes:
    """stripe-python's form encoding of ``params`` (``_api_encode`` then ``urlencode``, brackets literal)."""
    encoded = urlencode(list(_encoded(params)))
    return encoded.replace("%5B", "[").replace("%5D", "]").encode("ascii")


def query(params: Mapping[str, Any]) -> bytes:
    """A GET's or DELETE's query as it arrives: stripe-python puts the same form in the URL, and its
    HTTP client percent-encodes the brackets there (``expand%5B0%5D=...``); Tollgate reads both alike."""
    return urlencode(list(_encoded(params))).encode("ascii")


def _encoded(data: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """``_api_encode``'s rule on JSON values: lists indexed, dicts bracketed, booleans lower case, None dropped."""
    for key, value in data.items():
        if value is None:
            continue
        if isinstance(value, list | tuple):
            for i, item in enumerate(value):
                name = f"{key}[{i}]"
                if isinstance(item, dict):
                    yield from _encoded({f"{name}[{k}]": v for k, v in item.items()})
                elif isinstance(item, list | tuple):
                    yield from _encoded({f"{name}[{k}]": v for k, v in enumerate(item)})
                else:
                    yield name, item
        elif isinstance(value, dict):
            yield from _encoded({f"{key}[{k}]": v for k, v in value.items()})
        elif isinstance(value, bool):
            yield key, str(value).lower()
        else:
            yield key, value
