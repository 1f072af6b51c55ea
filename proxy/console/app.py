"""The console's Starlette app: sign-in, the session guard, CSRF, security headers, and the
page modules' routes. Mounted by proxy.app at /console."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qsl, urlencode

from jinja2 import pass_context
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from proxy.console import render
from proxy.console.client import AdminClient, AdminError
from proxy.console.session import CSRF_FIELD, CSRF_HEADER, Session, Sessions

HERE = Path(__file__).parent
MAX_FORM_BYTES = 256 * 1024
NAV = {"overview": "overview", "keys": "keys", "key_new": "keys", "key_created": "keys", "key_revoke": "keys",
       "calls": "calls", "runs": "runs", "run": "runs", "approvals": "approvals", "policies": "policies",
       "policy": "policies"}
PageHandler = Callable[["Console", Request], Awaitable[Response]]

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


class Console:
    def __init__(self, client: AdminClient | None, sessions: Sessions | None):
        self.client = client
        self.sessions = sessions
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        env = self.templates.env
        env.filters.update(usd=render.usd, when=render.when, pretty_json=render.pretty_json,
                           remaining=render.remaining)
        env.globals["href"] = _href

    async def aclose(self) -> None:
        if self.client is not None:
            await self.client.aclose()

    def render(self, request: Request, template: str, status: int = 200, **context: Any) -> Response:
        session: Session | None = getattr(request.state, "session", None)
        context.setdefault("notice", session.take_notice() if session else None)
        return self.templates.TemplateResponse(
            request, template, {"csrf": session.csrf if session else "", "signed_in": bool(session and session.signed_in),
                                "nav": NAV.get(template.split(".")[0], ""), **context}, status_code=status)

    def redirect(self, request: Request, name: str, query: dict[str, str] | None = None, **params: str) -> Response:
        url = str(request.url_for(name, **params).path)
        return RedirectResponse(url + (f"?{urlencode(query)}" if query else ""), status_code=303)

    def page(self, handler: PageHandler) -> Callable[[Request], Awaitable[Response]]:
        """Signed in or sent to the sign-in page; POSTs need the session's CSRF token."""

        async def guarded(request: Request) -> Response:
            if self.sessions is None or self.client is None:
                return self.render(request, "disabled.html", status=503)
            session = self.sessions.load(request)
            request.state.session = session
            if not session.signed_in:
                response = RedirectResponse(_signin_url(request), status_code=303)
            elif request.method == "POST" and not await _csrf_passes(request, session):
                response = self.render(request, "error.html", status=403, title="Form expired",
                                       message="This form was not sent from the console page you were on "
                                               "(its CSRF token is missing or wrong). Reload the page and try again.")
            else:
                try:
                    response = await handler(self, request)
                except AdminError as exc:
                    response = self.render(request, "error.html", status=exc.status if exc.status < 500 else 502,
                                           title=f"The admin API said {exc.code}", message=exc.message)
            self.sessions.save(request, response, session)
            return response

        return guarded


@pass_context
def _href(context: Any, name: str, **params: Any) -> str:
    """A console path (no scheme or host: correct behind any reverse proxy)."""
    return str(context["request"].url_for(name, **params).path)


def _signin_url(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return str(request.url_for("signin").path) + "?" + urlencode({"next": target})


async def read_form(request: Request) -> dict[str, str]:
    """application/x-www-form-urlencoded, parsed once and kept on the request (last value wins)."""
    cached = getattr(request.state, "form", None)
    if cached is not None:
        return cached
    form: dict[str, str] = {}
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        body = await request.body()
        if len(body) <= MAX_FORM_BYTES:
            form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    request.state.form = form
    return form


async def _csrf_passes(request: Request, session: Session) -> bool:
    presented = request.headers.get(CSRF_HEADER)
    if presented is None:
        presented = (await read_form(request)).get(CSRF_FIELD)
    return session.csrf_ok(presented)


def safe_next(target: str | None) -> str:
    """Only back into the console: never an open redirect."""
    if target and target.startswith("/console/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/console/"


async def signin(console: Console, request: Request) -> Response:
    if console.sessions is None:
        return console.render(request, "disabled.html", status=503)
    session = console.sessions.load(request)
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
            session = Session(signed_in=True, changed=True)  # a fresh CSRF token for the signed-in session
            request.state.session = session
            response = RedirectResponse(target, status_code=303)
    console.sessions.save(request, response, session)
    return response


async def signout(console: Console, request: Request) -> Response:
    response = console.redirect(request, "signin")
    if console.sessions is not None:
        console.sessions.clear(request, response)
    return response


def create_console(admin_app: ASGIApp | None, admin_token: str | None, secure_cookie: str = "auto") -> tuple[Starlette, Console]:
    """The console app (mount it at /console) and its state; ``admin_app`` serves /admin/v1."""
    from proxy.console import pages_activity, pages_keys, pages_policies

    client = AdminClient(admin_app, admin_token) if admin_app is not None and admin_token else None
    sessions = Sessions(admin_token, secure_cookie) if admin_token else None
    console = Console(client, sessions)
    routes = [
        Route("/signin", functools.partial(signin, console), methods=["GET", "POST"], name="signin"),
        Route("/signout", console.page(signout), methods=["POST"], name="signout"),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
        *pages_activity.routes(console),
        *pages_keys.routes(console),
        *pages_policies.routes(console),
    ]
    app = Starlette(routes=routes)
    app.add_middleware(SecurityHeaders)
    return app, console
