"""The admin API under /admin/v1: keys, policy validation, audit by run id.

A thin HTTP skin over proxy.keys, so the CLI and the API behave the same. Every route
but the OpenAPI document needs ``Authorization: Bearer <admin token>``.
"""

from __future__ import annotations

import hmac
import json
from datetime import datetime
from decimal import Decimal
from typing import Any, Awaitable, Callable

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from proxy import keys, policy
from proxy.admin_openapi import OPENAPI
from proxy.errors import InvalidInput, TollgateError
from proxy.schema import audit_events
from proxy.secretbox import SecretBox

Handler = Callable[[Request], Awaitable[Response]]
MAX_AUDIT_ROWS = 1000


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data, default=_encode), status_code=status, media_type="application/json")


def _encode(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _error(status: int, code: str, message: str, **extra: Any) -> Response:
    return _json({"error": {"code": code, "message": message, **extra}}, status)


class AdminAPI:
    def __init__(self, engine: AsyncEngine, box: SecretBox, admin_token: str | None):
        self._engine = engine
        self._box = box
        self._token = admin_token

    def routes(self) -> list[Route]:
        g = self._guarded
        return [
            Route("/admin/v1/openapi.json", self.openapi, methods=["GET"]),
            Route("/admin/v1/keys", g(self.create_key), methods=["POST"]),
            Route("/admin/v1/keys", g(self.list_keys), methods=["GET"]),
            Route("/admin/v1/keys/{key_id}", g(self.show_key), methods=["GET"]),
            Route("/admin/v1/keys/{key_id}/revoke", g(self.revoke_key), methods=["POST"]),
            Route("/admin/v1/policies/validate", g(self.validate_policy), methods=["POST"]),
            Route("/admin/v1/audit", g(self.audit), methods=["GET"]),
        ]

    def _guarded(self, handler: Handler) -> Handler:
        async def guarded(request: Request) -> Response:
            scheme, _, presented = request.headers.get("authorization", "").partition(" ")
            if not self._token or scheme.lower() != "bearer" or not hmac.compare_digest(
                presented.encode(), self._token.encode()
            ):
                return _error(401, "unauthorized", "Send the admin token as 'Authorization: Bearer <token>'.")
            try:
                return await handler(request)
            except TollgateError as exc:
                extra = {"errors": _pointer_errors(exc)} if isinstance(exc, policy.PolicyInvalid) else {}
                return _error(exc.status, exc.reason, exc.message, **extra)
            except (OSError, TimeoutError, DBAPIError):
                return _error(503, "database_unavailable", "The database cannot be reached; nothing was changed.")

        return guarded

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(OPENAPI)

    async def create_key(self, request: Request) -> Response:
        body = await _json_body(request)
        vendor = _field(body, "vendor", str, required=True)
        document = _field(body, "policy", dict)
        async with self._engine.begin() as conn:
            described, token = await keys.create_key(
                conn, self._box, vendor=vendor, upstream_secret=_field(body, "upstream_secret", str, required=True),
                policy_document=document, policy_id=_field(body, "policy_id", str),
                upstream_account=_field(body, "upstream_account", str), label=_field(body, "label", str),
                expires_at=_timestamp(_field(body, "expires_at", str)),
            )
        return _json({**described, "key": token}, 201)

    async def list_keys(self, request: Request) -> Response:
        async with self._engine.connect() as conn:
            return _json({"data": await keys.list_keys(conn, request.query_params.get("vendor"))})

    async def show_key(self, request: Request) -> Response:
        async with self._engine.connect() as conn:
            return _json(await keys.show_key(conn, request.path_params["key_id"]))

    async def revoke_key(self, request: Request) -> Response:
        async with self._engine.begin() as conn:
            return _json(await keys.revoke_key(conn, request.path_params["key_id"]))

    async def validate_policy(self, request: Request) -> Response:
        document = await _json_body(request)
        try:
            policy.validate(document)
        except policy.PolicyInvalid as exc:
            return _json({"valid": False, "errors": _pointer_errors(exc)})
        return _json({"valid": True, "errors": []})

    async def audit(self, request: Request) -> Response:
        params = request.query_params
        query = select(audit_events).order_by(audit_events.c.ts, audit_events.c.id)
        if params.get("agent_run_id"):
            query = query.where(audit_events.c.agent_run_id == params["agent_run_id"])
        if params.get("key_id"):
            query = query.where(audit_events.c.key_id == params["key_id"])
        try:
            limit = min(int(params.get("limit", "100")), MAX_AUDIT_ROWS)
        except ValueError:
            raise InvalidInput("invalid_limit", "limit must be an integer.") from None
        async with self._engine.connect() as conn:
            rows = await conn.execute(query.limit(limit))
            return _json({"data": [dict(row._mapping) for row in rows]})


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("invalid_json", "The request body must be JSON.") from None


def _field(body: Any, name: str, kind: type, required: bool = False) -> Any:
    if not isinstance(body, dict):
        raise InvalidInput("invalid_body", "The request body must be a JSON object.")
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidInput("missing_field", f"Field {name!r} is required.")
        return None
    if not isinstance(value, kind):
        raise InvalidInput("invalid_field", f"Field {name!r} must be a {kind.__name__}.")
    return value


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


def _pointer_errors(exc: policy.PolicyInvalid) -> list[dict[str, str]]:
    return [{"pointer": pointer, "reason": reason} for pointer, reason in exc.errors]
