"""The official MCP Python client, connected to Tollgate's /mcp with a vault key (and a run id)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


@contextlib.asynccontextmanager
async def connect(base_url: str, vault_key: str, run_id: str | None = None, *, mode: str = "legacy",
                  message_handler: Any = None) -> AsyncIterator[Client]:
    """``mode``: "legacy" (the initialize handshake, 2025-11-25) or "2026-07-28" (one request a call)."""
    headers = {"authorization": f"Bearer {vault_key}"}
    if run_id is not None:
        headers["x-agent-run-id"] = run_id
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        transport = streamable_http_client(f"{base_url}/mcp", http_client=http)
        async with Client(transport, mode=mode, message_handler=message_handler) as client:  # type: ignore[arg-type]
            yield client


async def all_tools(client: Client) -> list[Any]:
    """Every page of tools/list, asked afresh (never the client's cache)."""
    tools: list[Any] = []
    cursor = None
    while True:
        listed = await client.list_tools(cursor=cursor, cache_mode="bypass")
        tools += listed.tools
        cursor = listed.next_cursor
        if not cursor:
            return tools
