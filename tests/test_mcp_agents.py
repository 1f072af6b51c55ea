"""An agent framework's MCP client driving Tollgate's tools: the OpenAI Agents SDK's
``MCPServerStreamableHttp`` with a scripted model in place of an LLM (no network, no API key).

The model asks for two charges; the second is over the key's per-call limit. What the test
holds: the framework lists only the tools the policy offers, the allowed call is forwarded and
audited, and the refusal reaches the model as the tool's output, in the audit row's words, so
the model's next turn can read which rule said no.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from agents import Agent, RunConfig, Runner
from agents.items import ModelResponse
from agents.mcp import MCPServerStreamableHttp
from agents.models.interface import Model
from agents.usage import Usage
from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText

from tests.support.tollgate import audit_rows, policy
from vendors.stripe import StripeAdapter

[CHARGES] = [t.name for t in StripeAdapter().tools() if (t.method, t.path) == ("POST", "/v1/charges")]


def _text(output: Any) -> str:
    """A tool output as the model reads it: a string, or a list of content parts."""
    if isinstance(output, str):
        return output
    return "".join(part.get("text", "") for part in output)


class ScriptedModel(Model):
    """Plays a fixed list of turns: each a tool call, then a closing message. It records what it
    was shown: the tools it was offered and every tool output."""

    def __init__(self, calls: list[dict[str, Any]]):
        self.calls = calls
        self.offered: list[str] = []
        self.outputs: list[str] = []

    async def get_response(self, system_instructions, input, model_settings, tools, output_schema, handoffs,
                           tracing, *, previous_response_id, conversation_id, prompt) -> ModelResponse:
        self.offered = [tool.name for tool in tools]
        self.outputs = [_text(item["output"]) for item in input if isinstance(item, dict)
                        and item.get("type") == "function_call_output"]
        turn = len(self.outputs)
        if turn < len(self.calls):
            call = ResponseFunctionToolCall(type="function_call", id=f"fc_{turn}", call_id=f"call_{turn}",
                                            name=CHARGES, arguments=json.dumps(self.calls[turn]))
            return ModelResponse(output=[call], usage=Usage(), response_id=None)
        said = ResponseOutputText(type="output_text", text="done", annotations=[])
        message = ResponseOutputMessage(type="message", id="msg", role="assistant", status="completed",
                                        content=[said])
        return ModelResponse(output=[message], usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        raise NotImplementedError("the test runs the agent without streaming")


async def test_an_agents_sdk_agent_calls_tollgate_tools(proxy_url, make_key, sql, run_id):
    key = make_key({**policy(per_call_usd="50.00"),
                    "endpoints": {"allow": ["POST /v1/charges", "GET /v1/charges/*"]}})
    model = ScriptedModel([{"amount": 1500, "currency": "usd", "source": "tok_visa"},
                           {"amount": 9000, "currency": "usd", "source": "tok_visa"}])
    headers = {"Authorization": f"Bearer {key['key']}", "X-Agent-Run-Id": run_id}
    async with MCPServerStreamableHttp({"url": f"{proxy_url}/mcp", "headers": headers, "timeout": 30},
                                       name="tollgate") as tollgate:
        agent = Agent(name="billing", instructions="Charge the customer.", model=model, mcp_servers=[tollgate])
        result = await Runner.run(agent, "Charge 15 USD, then 90 USD.", run_config=RunConfig(tracing_disabled=True))
    assert result.final_output == "done"
    assert CHARGES in model.offered and len(model.offered) == 2  # the charge and its retrieval: nothing else
    rows = audit_rows(sql, run_id)
    assert [(r["decision"], r["reason"]) for r in rows] == [("allowed", None), ("blocked", "per_call_limit")]
    assert json.loads(model.outputs[0])["status"] == "succeeded"  # the vendor's answer, as the tool's output
    assert rows[1]["message"] in model.outputs[1] and "per_call_limit" in model.outputs[1]
