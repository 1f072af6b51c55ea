"""HTTP conventions shared by the admin routes: JSON in and out, errors as
``{"error": {"code", "message"}}``, and the admin-token guard."""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.requests import Request
from starlette.responses import Response

from proxy.errors import InvalidInput, TollgateError
from proxy.policy import rules

Handler = Callable[[Request], Awaitable[Response]]
Guard = Callable[[Handler], Handler]


def json_response(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data, default=_encode), status_code=status, media_type="application/json")


def _encode(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def error_response(status: int, code: str, message: str, **extra: Any) -> Response:
    return json_response({"error": {"code": code, "message": message, **extra}}, status)


def guard_with(admin_token: str | None) -> Guard:
    """Wrap a handler: admin token required; Tollgate errors and database outages become JSON errors."""

    def guard(handler: Handler) -> Handler:
        async def guarded(request: Request) -> Response:
            scheme, _, presented = request.headers.get("authorization", "").partition(" ")
            if not admin_token or scheme.lower() != "bearer" or not hmac.compare_digest(
                presented.encode(), admin_token.encode()
            ):
                return error_response(401, "unauthorized", "Send the admin token as 'Authorization: Bearer <token>'.")
            return await answered(handler, request)

        return guarded

    return guard


async def answered(handler: Handler, request: Request) -> Response:
    """The handler's response; Tollgate errors and database outages as JSON errors."""
    try:
        return await handler(request)
    except TollgateError as exc:
        extra = {"errors": pointer_errors(exc)} if isinstance(exc, rules.PolicyInvalid) else {}
        return error_response(exc.status, exc.reason, exc.message, **extra)
    except DBAPIError as exc:
        if str(getattr(exc.orig, "sqlstate", None) or "").startswith("22"):  # data exception: bad input
            return error_response(400, "invalid_input",
                                  "A value in the request cannot be stored or matched (a NUL character?).")
        return _unavailable()
    except (OSError, TimeoutError, PoolTimeout):  # PoolTimeout: every connection busy for db_timeout_s
        return _unavailable()


def _unavailable() -> Response:
    return error_response(503, "database_unavailable", "The database cannot be reached; nothing was changed.")


async def json_body(request: Request, allow_empty: bool = False) -> Any:
    raw = await request.body()
    if allow_empty and not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("invalid_json", "The request body must be JSON.") from None


def field(body: Any, name: str, kind: type, required: bool = False) -> Any:
    if not isinstance(body, dict):
        raise InvalidInput("invalid_body", "The request body must be a JSON object.")
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidInput("missing_field", f"Field {name!r} is required.")
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InvalidInput("invalid_field", f"Field {name!r} must be a {kind.__name__}.")
    return value


def pointer_errors(exc: rules.PolicyInvalid) -> list[dict[str, str]]:
    return [{"pointer": pointer, "reason": reason} for pointer, reason in exc.errors]
