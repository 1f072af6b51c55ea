"""The MCP endpoint: streamable HTTP on ``/mcp``, a vault key as the bearer token.

Built on the official ``mcp`` SDK's low-level ``Server`` and its ``StreamableHTTPSessionManager``
in stateless mode (proxy/mcp/__init__.py says why). The bearer is checked before the SDK reads
the request: a request without a key Tollgate issued is answered 401 with an OAuth-style
``WWW-Authenticate`` (RFC 6750), as an MCP client expects. Only ``tools/call`` reaches the
vendor, and it does so through ``ProxyHandler.serve``: the request the vendor's SDK would have
sent, with the MCP request's run id and trace headers, judged and audited as any other call
(its row's ``request_summary`` says ``"via": "mcp"`` and the tool).

A policy change shows in the next ``tools/list`` (the key is read afresh for it) and, on the
handshake-era protocol, as ``notifications/tools/list_changed`` on the first tool call after it
that this process answers for the key (the 2026-07-28 era delivers list changes only on
``subscriptions/listen`` streams, which a stateless server has none of: its clients list again).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import mcp_types as types
import structlog
from mcp.server import NotificationOptions, Server, ServerRequestContext
from mcp.server.models import InitializationOptions
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_REQUEST
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from proxy import vaultkeys
from proxy.asgi import Receive, Scope, Send, send_response
from proxy.auth import Authenticator
from proxy.call import RUN_ID_HEADER, TRACE_HEADERS, Call, Incoming, run_id_of
from proxy.errors import AuthRefused, Refused, Unavailable
from proxy.handler import ProxyHandler
from proxy.keys import KeyRecord
from proxy.mcp import offer, results
from vendors.registry import Registry
from vendors.tools import Tool, ToolRequest

PATH = "/mcp"
_KEY_STATE = text("SELECT status, coalesce(expires_at <= now(), false) AS expired FROM vault_keys WHERE id = :id")
SCOPE_KEY = "tollgate.mcp"
_PASSED = frozenset({RUN_ID_HEADER, *TRACE_HEADERS})  # from the MCP request onto the vendor call
log = structlog.get_logger("tollgate.mcp")


@dataclass(frozen=True)
class Caller:
    """Who sent this MCP request: its key, as presented and as loaded, and where it came from."""

    vault_key: str
    key: KeyRecord
    headers: dict[str, str]
    client: str | None


class _ToolsServer(Server[Any]):
    def create_initialization_options(self, notification_options: NotificationOptions | None = None,
                                      *args: Any, **kwargs: Any) -> InitializationOptions:
        return super().create_initialization_options(NotificationOptions(tools_changed=True), *args, **kwargs)


class McpEndpoint:
    def __init__(self, proxy: ProxyHandler, auth: Authenticator, vendors: Registry, version: str,
                 keys: AsyncEngine):
        self._proxy = proxy
        self._auth = auth
        self._keys = keys  # the key loads' engine: tools/list asks whether the key still stands
        self._vendors = vendors
        self._listed: dict[str, int] = {}  # key id -> policy version of the last tools/list it was given
        server = _ToolsServer("tollgate", version=version, title="Tollgate",
                              instructions="Every tool is a vendor API call governed by your vault key's policy: "
                                           "a refused call says which rule refused it and what would be allowed.",
                              on_list_tools=self._list_tools, on_call_tool=self._call_tool)
        # DNS-rebinding protection guards servers that trust whoever reaches them; this one trusts
        # nobody without a vault key, which a rebinding page cannot send, and runs behind any Host.
        self._manager = StreamableHTTPSessionManager(
            app=server, stateless=True,
            security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False))

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with self._manager.run():
            yield

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            caller = await self._caller(scope, headers)
        except Refused as refusal:
            await _unauthorized(send, refusal.reason, refusal.message)
            return
        except Unavailable as exc:
            await send_response(send, 503, {"content-type": "application/json", "retry-after": "1"},
                                json.dumps({"error": exc.reason, "error_description": exc.message}).encode())
            return
        scope[SCOPE_KEY] = caller
        await self._manager.handle_request(scope, receive, send)

    async def _caller(self, scope: Scope, headers: dict[str, str]) -> Caller:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthRefused("missing_key", "No vault key provided: send your Tollgate vault key (tg_...) as a "
                                             "bearer token (Authorization: Bearer tg_...).")
        key = await self._auth.record(vaultkeys.parse(token.strip()))
        if self._vendors.get(key.vendor) is None:
            raise AuthRefused("unknown_vendor", f"This vault key is for {key.vendor}, not served here.")
        client = scope.get("client")
        return Caller(token.strip(), key, headers, client[0] if client else None)

    async def _list_tools(self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
                          ) -> types.ListToolsResult:
        caller = _caller_of(ctx)
        self._auth.forget(caller.key.id)  # the policy as it is now, not as this process cached it
        key = await self._auth.record(vaultkeys.parse(caller.vault_key))
        await self._still_standing(key.id)
        tools = offer.offered(self._vendors[key.vendor], key.policy)
        shown, next_cursor = offer.page(tools, params.cursor if params else None)
        self._listed[key.id] = key.policy.version
        return types.ListToolsResult(tools=[offer.as_mcp(tool) for tool in shown], next_cursor=next_cursor)

    async def _still_standing(self, key_id: str) -> None:
        """A revoked or expired key is offered nothing: an MCP error in the gate's own words. (Its
        tool calls are refused by the gate itself, on an audit row, as every vendor route's are.)"""
        async with self._keys.connect() as conn:
            row = (await conn.execute(_KEY_STATE, {"id": key_id})).one_or_none()
        if row is not None and row.status != "active":
            raise MCPError(INVALID_REQUEST, "key_revoked: This vault key has been revoked.", {"reason": "key_revoked"})
        if row is not None and row.expired:
            raise MCPError(INVALID_REQUEST, "key_expired: This vault key has expired.", {"reason": "key_expired"})

    async def _call_tool(self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
                         ) -> types.CallToolResult:
        caller = _caller_of(ctx)
        adapter = self._vendors[caller.key.vendor]
        tool = offer.named(adapter, params.name)
        if tool is None:
            return _error_result(f"No tool is named {params.name[:80]!r} for {adapter.label}: tools/list names "
                                 "the tools this key may call.")
        tools = offer.source(adapter)
        assert tools is not None, "a tool was found, so the adapter has them"
        try:
            request = tools.tool_request(tool, params.arguments or {}, caller.vault_key,
                                         caller.key.credential.account)
        except Refused as refusal:  # arguments that are no request of this operation: nothing is sent
            return await self._refused(caller, tool, refusal)
        call = Call(Incoming(adapter.name, adapter, request.method, request.path.encode("latin-1"),
                             request.query, caller.client, tool=tool.name))
        response = await self._proxy.serve(call, _scope(request, caller), _body(request.body))
        await self._tell_if_changed(ctx, caller)
        return results.result(call, tool, response)

    async def _refused(self, caller: Caller, tool: Tool, refusal: Refused) -> types.CallToolResult:
        """Recorded as the HTTP route records a request it cannot read: a blocked row, on the key."""
        adapter = self._vendors[caller.key.vendor]
        call = Call(Incoming(adapter.name, adapter, tool.method, tool.path.encode("latin-1"), b"", caller.client,
                             tool=tool.name))
        with contextlib.suppress(Refused):  # a run id that is no run id: the row goes without it
            call.run_id = run_id_of(caller.headers)
        refusal.key_id, refusal.endpoint = caller.key.id, refusal.endpoint or f"{tool.method} {tool.path}"
        return results.result(call, tool, await self._proxy.refuse(call, refusal))

    async def _tell_if_changed(self, ctx: ServerRequestContext[Any], caller: Caller) -> None:
        listed = self._listed.get(caller.key.id)
        if listed is None:
            return
        current = (await self._auth.record(vaultkeys.parse(caller.vault_key))).policy.version
        if current != listed:
            self._listed[caller.key.id] = current  # once per change
            # On this call's own response stream: a stateless server has no other to the client.
            with contextlib.suppress(Exception):  # a stream that cannot carry it: the next tools/list can
                await ctx.session.send_notification(types.ToolListChangedNotification(),
                                                    related_request_id=ctx.request_id)


def _caller_of(ctx: ServerRequestContext[Any]) -> Caller:
    assert ctx.request is not None, "the streamable HTTP transport always carries its request"
    caller: Caller = ctx.request.scope[SCOPE_KEY]
    return caller


def _scope(request: ToolRequest, caller: Caller) -> Scope:
    headers = {**request.headers, "user-agent": "tollgate-mcp",
               **{name: value for name, value in caller.headers.items() if name in _PASSED}}
    return {"type": "http", "method": request.method, "query_string": request.query,
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]}


def _body(body: bytes) -> Callable[[], Awaitable[dict[str, Any]]]:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}
    return receive


def _error_result(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=text)], is_error=True)


async def _unauthorized(send: Send, reason: str, message: str) -> None:
    challenge = f'Bearer error="invalid_token", error_description="{message.replace(chr(34), chr(39))}"'
    await send_response(send, 401, {"content-type": "application/json", "www-authenticate": challenge},
                        json.dumps({"error": reason, "error_description": message}).encode())


__all__ = ["PATH", "Caller", "McpEndpoint", "Tool"]
