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
from proxy.pages import Page


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

    async def _page(self, path: str, **params: Any) -> Page:
        found = await self.get(path, **params)
        return Page(found["data"], found["next"])

    # The calls the pages make, named after what they mean. Lists come a page at a time
    # (``cursor``: the previous page's ``next``); none is ever read whole.

    async def keys(self, cursor: str | None = None, limit: int | None = None, **filters: Any) -> Page:
        """A page of keys, newest first; filters: vendor, policy_id, include='spend'."""
        return await self._page("/keys", cursor=cursor, limit=limit, **filters)

    async def key(self, key_id: str) -> dict[str, Any]:
        return await self._object(f"/keys/{segment(key_id)}")

    async def counts(self) -> dict[str, Any]:
        return await self._object("/counts")

    async def audit(self, cursor: str | None = None, **filters: Any) -> Page:
        return await self._page("/audit", order="desc", cursor=cursor, **filters)

    async def run(self, run_id: str) -> dict[str, Any]:
        return await self._object(f"/runs/{segment(run_id)}")

    async def halted_runs(self, limit: int | None = None) -> Page:
        return await self._page("/halted-runs", limit=limit)

    async def approvals(self, status: str | None = None, cursor: str | None = None, limit: int | None = None) -> Page:
        return await self._page("/approvals", status=status, cursor=cursor, limit=limit)

    async def policies(self, cursor: str | None = None, limit: int | None = None) -> Page:
        return await self._page("/policies", cursor=cursor, limit=limit)

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
