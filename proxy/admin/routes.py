"""Mounting admin operations as Starlette routes, held to the OpenAPI document.

One route per path (so a 405 lists every method the path serves in ``Allow``), and each
operation's query string checked against the parameters the document declares: an
unknown or repeated parameter, a value outside an ``enum`` or an integer outside its
bounds is a 400, not silently ignored, clamped or guessed at.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from proxy.admin.http import Guard, Handler
from proxy.admin.openapi import OPENAPI
from proxy.errors import InvalidInput

Operation = tuple[str, str, Handler]  # (path, METHOD, handler)
_INTEGER = re.compile(r"-?[0-9]{1,18}")


def mount(operations: Iterable[Operation], guard: Guard) -> list[Route]:
    by_path: dict[str, dict[str, Handler]] = {}
    for path, method, handler in operations:
        parameters = OPENAPI["paths"][path][method.lower()].get("parameters", [])
        by_path.setdefault(path, {})[method] = guard(_checking_query(handler, parameters))
    return [Route(path, _dispatch(handlers), methods=list(handlers)) for path, handlers in by_path.items()]


def _dispatch(handlers: dict[str, Handler]) -> Handler:
    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method  # Starlette adds HEAD to GET routes
        return await handlers[method](request)

    return endpoint


def _checking_query(handler: Handler, parameters: list[dict[str, Any]]) -> Handler:
    declared = {p["name"]: p.get("schema", {}) for p in parameters if p["in"] == "query"}

    async def checked(request: Request) -> Response:
        seen: set[str] = set()
        for name, value in request.query_params.multi_items():
            if name not in declared:
                takes = ", ".join(sorted(declared)) or "none"
                raise InvalidInput("unknown_parameter",
                                   f"Unknown query parameter {name[:40]!r} (this operation takes: {takes}).")
            if name in seen:
                raise InvalidInput("duplicate_parameter", f"Query parameter {name!r} appears more than once.")
            seen.add(name)
            _check_value(name, value, declared[name])
        return await handler(request)

    return checked


def _check_value(name: str, value: str, schema: dict[str, Any]) -> None:
    if "enum" in schema and value not in schema["enum"]:
        raise InvalidInput("invalid_parameter", f"Query parameter {name!r} must be one of {', '.join(schema['enum'])}.")
    if schema.get("type") == "integer":
        number = int(value) if _INTEGER.fullmatch(value) else None
        low, high = schema.get("minimum"), schema.get("maximum")
        if number is None or (low is not None and number < low) or (high is not None and number > high):
            bounds = f" from {low} to {high}" if low is not None and high is not None else ""
            raise InvalidInput("invalid_parameter", f"Query parameter {name!r} must be an integer{bounds}.")
