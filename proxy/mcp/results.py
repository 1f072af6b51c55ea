"""A pipeline answer as an MCP tool result.

MCP asks for errors an LLM can act on to be tool results with ``isError`` rather than protocol
errors. A refusal's text is the audit row's message, the words the HTTP agent gets in the
vendor's error shape, led by the rule's code; a call held for approval adds how to ask again
over MCP (the same tool, the same arguments: the approval covers exactly that request). The
structured part carries the same facts as fields, for an agent that reads JSON.
"""

from __future__ import annotations

import json
from typing import Any

import mcp_types as types

from proxy.call import Call
from vendors.base import RenderedResponse
from vendors.tools import Tool


def result(call: Call, tool: Tool, response: RenderedResponse) -> types.CallToolResult:
    if call.error is not None:
        return _refused(call, tool)
    body = response.body.decode("utf-8", errors="replace")
    answer = _json(response.body)
    if response.status >= 400:  # the vendor's own refusal (a declined card, a bad parameter)
        text = f"The vendor refused the call (HTTP {response.status}): {body}"
        return types.CallToolResult(content=[types.TextContent(text=text)], is_error=True,
                                    structured_content=_facts(call, response.status, answer))
    return types.CallToolResult(content=[types.TextContent(text=body)],
                                structured_content=answer if isinstance(answer, dict) else None)


def _refused(call: Call, tool: Tool) -> types.CallToolResult:
    error = call.error
    assert error is not None
    lead = "Tollgate could not complete the call" if error.kind == "unavailable" else "Refused by Tollgate"
    text = f"{lead} ({error.reason}): {error.message}"
    if error.approval_id:
        text += (f" Over MCP: once {error.approval_id} is approved, call {tool.name} again with exactly "
                 "these arguments; until then every such call is held.")
    elif error.retryable:
        text += " Nothing was sent: calling again later is safe."
    facts = {**_facts(call, error.status, None), "reason": error.reason, "message": error.message}
    if error.approval_id:
        facts["approval_id"] = error.approval_id
    return types.CallToolResult(content=[types.TextContent(text=text)], is_error=True, structured_content=facts)


def _facts(call: Call, status: int, answer: Any) -> dict[str, Any]:
    facts: dict[str, Any] = {"tollgate_request_id": call.request_id, "status": status}
    if answer is not None:
        facts["vendor_answer"] = answer
    return facts


def _json(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None
