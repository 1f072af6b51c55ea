"""Which of a vendor's tools a key is offered, as MCP ``Tool`` objects, a page at a time.

Offered means worth calling: ``Policy.offers`` (allowed or held for approval, no credential
issued, not unpriced whatever its arguments). A tool not offered can still be called by name (an
agent may remember it): the pipeline refuses it as it refuses the HTTP call, on an audit row.
"""

from __future__ import annotations

from collections.abc import Sequence

import mcp_types as types

from proxy.policy.rules import Policy
from vendors.base import ToolSource, VendorAdapter
from vendors.tools import Tool

PAGE = 100  # tools per tools/list page: a permissive policy offers a vendor's whole catalogue

# What each kind of operation is, for the agent, before the vendor's own description.
_GOVERNED = {
    "moves_money": "Moves money: priced before it is sent and held to this key's per-call limit and caps.",
    "buys": "Buys something: priced before it is sent and held to this key's per-call limit and caps.",
    "reaches_people": "Reaches people: recipients are checked against this key's policy, and the cost is capped.",
    "sends": "Reaches people: recipients are checked against this key's policy, and the cost is capped.",
    "reads": "Reads: costs nothing; what it returns is scoped to this key.",
}
_DESTRUCTIVE = frozenset({"moves_money", "buys", "reaches_people", "sends"})


def source(adapter: VendorAdapter) -> ToolSource | None:
    """The adapter as a source of tools; a plug-in adapter without ``tools`` offers none."""
    return adapter if isinstance(adapter, ToolSource) else None


def catalogue(adapter: VendorAdapter) -> Sequence[Tool]:
    tools = source(adapter)
    return tools.tools() if tools is not None else ()


def offered(adapter: VendorAdapter, policy: Policy) -> list[Tool]:
    return [tool for tool in catalogue(adapter) if policy.offers(tool.method, tool.path, tool.kind, tool.priced)]


def named(adapter: VendorAdapter, name: str) -> Tool | None:
    return next((tool for tool in catalogue(adapter) if tool.name == name), None)


def page(tools: Sequence[Tool], cursor: str | None) -> tuple[Sequence[Tool], str | None]:
    """One page and the cursor of the next (None: the last page). A cursor is an offset: the list
    is rebuilt on every request from the key's current policy, so a changed policy shows at once."""
    start = int(cursor) if cursor and cursor.isdigit() else 0
    end = start + PAGE
    return tools[start:end], (str(end) if end < len(tools) else None)


def as_mcp(tool: Tool) -> types.Tool:
    governed = _GOVERNED.get(tool.kind, "Configures the account: allowed by this key's policy.")
    return types.Tool(
        name=tool.name,
        title=tool.title,
        description=f"{governed} {tool.method} {tool.path}. {tool.description}".strip(),
        input_schema=dict(tool.input_schema),
        annotations=types.ToolAnnotations(
            title=tool.title,
            read_only_hint=tool.kind == "reads",
            destructive_hint=tool.kind in _DESTRUCTIVE,
            open_world_hint=True,
        ),
    )
