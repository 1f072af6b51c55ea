"""Resend's operations as tools (vendors/tools.py), read from Resend's own OpenAPI document.

Built at load time from the copy in emulators/fixtures/resend-openapi.json, as Twilio's are (see
vendors/twilio/tools.py for why: the copy ships in the wheel and the catalogue is held to it), once,
on the first ``tools()``. A tool per operation: ``operationId`` snake-cased (``emails/send`` ->
``emails_send``), its summary and description, and a schema of its path and query parameters and
of its JSON body (``$ref``s resolved in place). A call becomes what Resend's SDKs send: the JSON
body, ``Authorization: Bearer`` with the vault key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from vendors.tools import SpecOperation, Tool, ToolRequest, invalid, openapi_request, openapi_tools, unique_names

SPEC = Path(__file__).resolve().parents[2] / "emulators" / "fixtures" / "resend-openapi.json"


@lru_cache(maxsize=1)
def _loaded() -> tuple[tuple[Tool, ...], dict[str, SpecOperation]]:
    from vendors.resend.adapter import ResendAdapter, catalogue  # the adapter imports this module

    # operations() names each as policies do (its placeholders renamed), in the catalogue's order
    described = dict(zip(catalogue().operations, ResendAdapter().operations(), strict=True))
    found = openapi_tools(json.loads(SPEC.read_text(encoding="utf-8")), described)
    unique_names([tool for tool, _ in found])
    return tuple(tool for tool, _ in found), {tool.name: operation for tool, operation in found}


def tools() -> Sequence[Tool]:
    return _loaded()[0]


def tool_request(tool: Tool, arguments: Mapping[str, Any], vault_key: str) -> ToolRequest:
    operation = _loaded()[1].get(tool.name)
    if operation is None:
        raise invalid(tool, "no such Resend tool.")
    return openapi_request(tool, operation, arguments, {"authorization": f"Bearer {vault_key}"})
