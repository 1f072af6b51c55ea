"""Admin routes for alert subscriptions and their deliveries (proxy/alerts). Same conventions
as proxy/admin/api.py, which mounts these; the document is proxy/admin/openapi_alerts.py."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response

from proxy import pages
from proxy.admin.http import field, json_body, json_response
from proxy.admin.routes import Operation
from proxy.alerts import subscriptions
from proxy.errors import InvalidInput
from proxy.secretbox import SecretBox


class AlertRoutes:
    def __init__(self, engine: AsyncEngine, box: SecretBox) -> None:
        self._engine = engine
        self._box = box

    def operations(self) -> list[Operation]:
        return [
            ("/admin/v1/alerts/subscriptions", "POST", self.create),
            ("/admin/v1/alerts/subscriptions", "GET", self.list),
            ("/admin/v1/alerts/subscriptions/{subscription_id}", "DELETE", self.remove),
            ("/admin/v1/alerts/deliveries", "GET", self.deliveries),
        ]

    async def create(self, request: Request) -> Response:
        body = await json_body(request)
        filters = field(body, "events", list, required=True)
        if not all(isinstance(item, str) for item in filters):
            raise InvalidInput("invalid_events", "events must be a list of event names.")
        async with self._engine.begin() as conn:
            created = await subscriptions.create(conn, self._box, field(body, "url", str, required=True), filters,
                                                 field(body, "format", str) or "json")
        return json_response(created, 201)

    async def list(self, request: Request) -> Response:
        removed = request.query_params.get("include") == "removed"
        async with self._engine.connect() as conn:
            return json_response({"data": await subscriptions.list_subscriptions(conn, removed)})

    async def remove(self, request: Request) -> Response:
        async with self._engine.begin() as conn:
            return json_response(await subscriptions.remove(conn, request.path_params["subscription_id"]))

    async def deliveries(self, request: Request) -> Response:
        params = request.query_params
        async with self._engine.connect() as conn:
            page = await subscriptions.deliveries(conn, params.get("subscription_id"), params.get("status"),
                                                  pages.limit_of(params.get("limit")), params.get("cursor"))
        return json_response(page.body())
