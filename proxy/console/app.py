"""The console's Starlette app: sign-in, the session guard, CSRF, security headers, and the
page modules' routes. Mounted by proxy.app at /console."""

from __future__ import annotations

import functools
from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from proxy.console import pages_activity, pages_alerts, pages_keys, pages_policies
from proxy.console.base import HERE, Console, VendorLook, read_form
from proxy.console.client import AdminClient
from proxy.console.session import CSRF_FIELD, Sessions
from proxy.errors import Unavailable

SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
     b"form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"x-content-type-options", b"nosniff"),
]


class SecurityHeaders:
    """Plain ASGI middleware: every console response gets the headers; pages are never cached."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith("/console/static/") or scope.get("root_path", "").endswith("/static")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", [])) + SECURITY_HEADERS
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def safe_next(target: str | None) -> str:
    """Only back into the console: never an open redirect."""
    if target and target.startswith("/console/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/console/"


async def signin(console: Console, request: Request) -> Response:
    if console.sessions is None:
        return console.render(request, "disabled.html", status=503)
    try:
        session = await console.sessions.load(request)
    except Unavailable as exc:
        return console.unavailable(request, exc)
    request.state.session = session
    target = safe_next(request.query_params.get("next"))
    if request.method == "GET":
        if session.signed_in:
            return RedirectResponse(target, status_code=303)
        response = console.render(request, "signin.html", next=target)
    else:
        form = await read_form(request)
        target = safe_next(form.get("next"))
        if not session.csrf_ok(form.get(CSRF_FIELD)):
            response = console.render(request, "signin.html", status=403, next=target,
                                      error="The sign-in form expired. Please try again.")
        elif not console.sessions.token_matches(form.get("token", "")):
            response = console.render(request, "signin.html", status=401, next=target,
                                      error="That is not the admin token.")
        else:
            try:
                session = await console.sessions.start()  # a fresh id and CSRF token for the signed-in session
            except Unavailable as exc:
                return console.unavailable(request, exc)
            request.state.session = session
            response = RedirectResponse(target, status_code=303)
    console.sessions.save(request, response, session)
    return response


async def signout(console: Console, request: Request) -> Response:
    """Runs behind ``page``: signed in, with the session's CSRF token. Deleting the row ends
    every copy of the cookie, not just this browser's."""
    assert console.sessions is not None
    await console.sessions.end(request.state.session)
    response = console.redirect(request, "signin")
    console.sessions.clear(request, response)
    return response


def create_console(admin_app: ASGIApp | None, admin_token: str | None, engine: AsyncEngine | None,
                   secure_cookie: str = "auto",
                   vendors: Mapping[str, VendorLook] | None = None) -> tuple[Starlette, Console]:
    """The console app (mount it at /console) and its state; ``admin_app`` serves /admin/v1;
    ``engine`` keeps the sessions; ``vendors``: how to show each vendor served, by name."""
    client = AdminClient(admin_app, admin_token) if admin_app is not None and admin_token else None
    sessions = Sessions(admin_token, engine, secure_cookie) if admin_token and engine is not None else None
    console = Console(client, sessions, vendors or {})
    routes = [
        Route("/signin", functools.partial(signin, console), methods=["GET", "POST"], name="signin"),
        Route("/signout", console.page(signout), methods=["POST"], name="signout"),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
        *pages_activity.routes(console),
        *pages_keys.routes(console),
        *pages_policies.routes(console),
        *pages_alerts.routes(console),
    ]
    app = Starlette(routes=routes)
    app.add_middleware(SecurityHeaders)
    return app, console
