"""Twilio's operations as tools (vendors/tools.py), read from Twilio's own OpenAPI documents.

Why built at load time and not generated into a file: the documents are the copies in
emulators/fixtures/ (byte-identical to twilio/twilio-oai's, see their README), which ship in the
wheel with emulators/ (pyproject.toml), and the catalogues in operations/*.json are held to them by
tests/test_operation_catalogues.py; a generated copy of the same facts could only drift. They are
read once, on the first ``tools()`` (3.1 MB of JSON, 0.1 to 0.2 s here), never on the request path.

A tool per operation of each document: ``operationId`` snake-cased, a product host's prefixed by
its route prefix (``verify_create_verification``; Pricing v2's by ``pricing_v2_``), its summary
and description, and a schema of its path and query parameters and of its form (or JSON) body's
properties. ``AccountSid`` is no argument: the key's account fills it, in the path and as the Basic
username, as twilio-python sends it (``Client(account_sid, auth_token)``; the vault key is the
password). Bodies are encoded as twilio-python's requests client does: a flat form, a list its key
repeated (``MediaUrl=a&MediaUrl=b``), booleans ``true``/``false``; the few JSON operations as JSON.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from vendors.tools import SpecOperation, Tool, ToolRequest, invalid, openapi_request, openapi_tools, unique_names
from vendors.twilio import routes

FIXTURES = Path(__file__).resolve().parents[2] / "emulators" / "fixtures"
# (route prefix, the document, the tool-name prefix): the catalogue files of routes.HOST_FILES, in order.
DOCUMENTS: tuple[tuple[str | None, str, str], ...] = (
    (None, "twilio_api_v2010.json", ""),
    ("lookups", "twilio_lookups_v2.json", "lookups_"),
    ("verify", "twilio_verify_v2.json", "verify_"),
    ("messaging", "twilio_messaging_v1.json", "messaging_"),
    ("pricing", "twilio_pricing_v1.json", "pricing_"),
    ("pricing", "twilio_pricing_v2.json", "pricing_v2_"),
)
HIDDEN = frozenset({"AccountSid"})  # the key's account fills it


@lru_cache(maxsize=1)
def _loaded() -> tuple[tuple[Tool, ...], dict[str, SpecOperation]]:
    tools: list[Tool] = []
    sent: dict[str, SpecOperation] = {}
    for prefix, name, name_prefix in DOCUMENTS:
        document = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
        catalogue = routes.catalogues()[prefix]
        route = f"/{prefix}" if prefix else ""
        described = {key: entry.described(route + entry.template) for key, entry in catalogue.operations.items()}
        for tool, operation in openapi_tools(document, described, prefix=route, name_prefix=name_prefix,
                                             hidden=HIDDEN):
            tools.append(tool)
            sent[tool.name] = operation
    unique_names(tools)
    return tuple(tools), sent


def tools() -> Sequence[Tool]:
    return _loaded()[0]


def tool_request(tool: Tool, arguments: Mapping[str, Any], vault_key: str, account: str | None) -> ToolRequest:
    operation = _loaded()[1].get(tool.name)
    if operation is None:
        raise invalid(tool, "no such Twilio tool.")
    if not account or not routes.ACCOUNT_SID.match(account):
        raise invalid(tool, "the key has no Twilio Account SID to call with (tollgate keys create --upstream-account).")
    basic = base64.b64encode(f"{account}:{vault_key}".encode()).decode("ascii")
    fixed = {"AccountSid": account} if "{AccountSid}" in operation.template else None
    return openapi_request(tool, operation, arguments, {"authorization": f"Basic {basic}"}, fixed=fixed)
