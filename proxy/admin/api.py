"""The admin API under /admin/v1: keys, policies, approvals, spend, audit by run id, alerts.

A thin HTTP skin over the service modules (proxy.keys, proxy.policy.store, proxy.approvals),
so the CLI and the API behave the same. Every route but the OpenAPI document needs
``Authorization: Bearer <admin token>``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from proxy import delegation, keys, pages, spend
from proxy.admin import openapi
from proxy.admin.alerts import AlertRoutes
from proxy.admin.governance import GovernanceRoutes
from proxy.admin.http import field, guard_with, json_body, json_response, pointer_errors
from proxy.admin.routes import mount
from proxy.errors import InvalidInput
from proxy.policy import rules, warnings
from proxy.schema import audit_events
from proxy.secretbox import SecretBox
from vendors.registry import Registry

AUDIT_FILTERS = ("agent_run_id", "key_id", "vendor", "decision")
# A cursor of one order is refused by the other (proxy/pages.py binds the name into it).
AUDIT_OLDEST_FIRST = pages.Order("audit", (audit_events.c.ts, audit_events.c.id), descending=False)
AUDIT_NEWEST_FIRST = pages.Order("audit.desc", (audit_events.c.ts, audit_events.c.id))


class AdminAPI:
    """``revocations``: the engine revokes go through, apart from the lists' (proxy/db.py);
    the admin engine itself when not given."""

    def __init__(self, engine: AsyncEngine, box: SecretBox, admin_token: str | None, vendors: Registry,
                 revocations: AsyncEngine | None = None):
        self._engine = engine
        self._revocations = revocations or engine
        self._box = box
        self._vendors = vendors
        self._guard = guard_with(admin_token)
        self._openapi = openapi.document(vendors.names())

    def routes(self) -> list[Route]:
        return [
            Route("/admin/v1/openapi.json", self.openapi, methods=["GET"]),
            *mount([
                ("/admin/v1/keys", "POST", self.create_key),
                ("/admin/v1/keys", "GET", self.list_keys),
                ("/admin/v1/keys/{key_id}", "GET", self.show_key),
                ("/admin/v1/keys/{key_id}/revoke", "POST", self.revoke_key),
                ("/admin/v1/keys/{key_id}/children", "POST", self.mint_child),
                ("/admin/v1/policies/validate", "POST", self.validate_policy),
                ("/admin/v1/audit", "GET", self.audit),
                *GovernanceRoutes(self._engine, self._vendors.names()).operations(),
                *AlertRoutes(self._engine, self._box).operations(),
            ], self._guard),
        ]

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(self._openapi)

    async def create_key(self, request: Request) -> Response:
        body = await json_body(request)
        async with self._engine.begin() as conn:
            described, token = await keys.create_key(
                conn, self._box, self._vendors, vendor=field(body, "vendor", str, required=True),
                upstream_secret=field(body, "upstream_secret", str, required=True),
                policy_document=field(body, "policy", dict), policy_id=field(body, "policy_id", str),
                upstream_account=field(body, "upstream_account", str), label=field(body, "label", str),
                expires_at=_timestamp(field(body, "expires_at", str)),
            )
        return json_response({**described, "key": token}, 201)

    async def list_keys(self, request: Request) -> Response:
        params = request.query_params
        spending = params.get("include") == "spend"
        async with self._engine.connect() as conn:
            page = await keys.list_keys(conn, params.get("vendor"), policy_id=params.get("policy_id"),
                                        limit=pages.limit_of(params.get("limit")), cursor=params.get("cursor"),
                                        with_documents=spending)
            if spending:
                page = await spend.with_spend(conn, page)
        return json_response(page.body())

    async def show_key(self, request: Request) -> Response:
        async with self._engine.connect() as conn:
            return json_response(await keys.show_key(conn, request.path_params["key_id"]))

    async def revoke_key(self, request: Request) -> Response:
        async with self._revocations.begin() as conn:
            return json_response(await keys.revoke_key(conn, request.path_params["key_id"]))

    async def mint_child(self, request: Request) -> Response:
        body = await json_body(request, allow_empty=True)
        async with self._engine.begin() as conn:
            described, token = await delegation.mint(
                conn, self._box, request.path_params["key_id"], run_id=field(body, "agent_run_id", str),
                ttl_s=field(body, "ttl_s", int), policy=field(body, "policy", dict), label=field(body, "label", str),
                vendors=self._vendors.names())
        return json_response({**described, "key": token}, 201)

    async def validate_policy(self, request: Request) -> Response:
        document = await json_body(request)
        if not isinstance(document, dict):
            raise InvalidInput("invalid_body", "The request body must be a JSON object (a policy document).")
        try:
            rules.validate(document, self._vendors.names())
        except rules.PolicyInvalid as exc:
            return json_response({"valid": False, "errors": pointer_errors(exc)})
        adapter = self._vendors.get(document["vendor"])
        found = warnings.review(document, adapter.operations() if adapter else ())
        return json_response({"valid": True, "errors": [], "warnings": found.warnings, "matches": found.matches})

    async def audit(self, request: Request) -> Response:
        params = request.query_params
        order = params.get("order", "asc")
        if order not in ("asc", "desc"):
            raise InvalidInput("invalid_order", "order must be 'asc' (oldest first) or 'desc' (newest first).")
        ordering = AUDIT_NEWEST_FIRST if order == "desc" else AUDIT_OLDEST_FIRST
        query = select(audit_events)
        for name in AUDIT_FILTERS:
            if params.get(name):
                query = query.where(audit_events.c[name] == params[name])
        if params.get("after_id"):
            query = query.where(audit_events.c.id > _after_id(params["after_id"]))
        limit = pages.limit_of(params.get("limit"))
        async with self._engine.connect() as conn:
            rows = await conn.execute(ordering.window(query, limit, params.get("cursor")))
            shown, after = ordering.cut(list(rows), limit)
        return json_response(pages.Page([dict(row._mapping) for row in shown], after).body())


def _after_id(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise InvalidInput("invalid_after_id", "after_id must be an integer (an audit row's id).") from None


def _timestamp(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput("invalid_field", "Field 'expires_at' must be an ISO 8601 timestamp.") from None
    if moment.tzinfo is None:
        raise InvalidInput("invalid_field", "Field 'expires_at' needs a time zone (e.g. 2026-12-31T00:00:00Z).")
    return moment
