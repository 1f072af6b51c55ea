"""The console's only way to the data: the admin API, called in-process over ASGI.

The console's pages hold no database handle (its sessions are the one thing the console
keeps itself: proxy/console/session.py). Each page asks the admin app (the same Starlette
routes that serve /admin/v1) with the admin token, so what the console shows and changes
is exactly what the API would.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
from starlette.types import ASGIApp

from proxy.errors import TollgateError


class AdminError(TollgateError):
    """The admin API said no; ``code`` (its reason) and ``message`` are its error body."""

    def __init__(self, status: int, code: str, message: str, errors: list[dict[str, str]] | None = None):
        super().__init__(code, message, status=status)
        self.code = code
        self.errors = errors or []


class AdminClient:
    def __init__(self, admin_app: ASGIApp, admin_token: str):
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=admin_app),
            base_url="http://admin.local/admin/v1",
            headers={"authorization": f"Bearer {admin_token}"},
            timeout=30,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def get(self, path: str, **params: Any) -> Any:
        query = {k: v for k, v in params.items() if v not in (None, "")}
        return _json_or_raise(await self._client.get(path, params=query))

    async def post(self, path: str, body: Any = None) -> Any:
        return _json_or_raise(await self._client.post(path, json=body if body is not None else {}))

    async def _object(self, path: str, **params: Any) -> dict[str, Any]:
        found: dict[str, Any] = await self.get(path, **params)
        return found

    async def _list(self, path: str, **params: Any) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = (await self.get(path, **params))["data"]
        return found

    # The calls the pages make, named after what they mean.

    async def keys(self) -> list[dict[str, Any]]:
        return await self._list("/keys")

    async def key(self, key_id: str) -> dict[str, Any]:
        return await self._object(f"/keys/{segment(key_id)}")

    async def key_spend(self, key_id: str, run_id: str | None = None) -> dict[str, Any]:
        return await self._object(f"/keys/{segment(key_id)}/spend", agent_run_id=run_id)

    async def audit(self, **filters: Any) -> list[dict[str, Any]]:
        return await self._list("/audit", order="desc", **filters)

    async def run(self, run_id: str) -> dict[str, Any]:
        return await self._object(f"/runs/{segment(run_id)}")

    async def approvals(self, status: str | None = None) -> list[dict[str, Any]]:
        return await self._list("/approvals", status=status)

    async def policies(self) -> list[dict[str, Any]]:
        return await self._list("/policies")

    async def policy(self, policy_id: str) -> dict[str, Any]:
        return await self._object(f"/policies/{segment(policy_id)}")

    async def daily_spend(self, days: int = 30) -> list[dict[str, Any]]:
        return await self._list("/spend/daily", days=days)


def segment(value: str) -> str:
    """One path segment, whatever the operator typed."""
    return quote(value, safe="")


def _json_or_raise(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code >= 400:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        raise AdminError(response.status_code, error.get("code", "admin_error"),
                         error.get("message", f"The admin API answered {response.status_code}."),
                         error.get("errors"))
    return body
