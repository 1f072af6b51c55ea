"""What every console page shares: the Console (templates, rendering, the signed-in guard) and
the form reader. The app (``app.py``) and the page modules both import it, so neither imports
the other."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from jinja2 import pass_context
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from proxy.console import render
from proxy.console.client import AdminClient, AdminError
from proxy.console.session import CSRF_FIELD, CSRF_HEADER, Session, Sessions
from proxy.errors import Unavailable

HERE = Path(__file__).parent
MAX_FORM_BYTES = 256 * 1024
NAV = {"overview": "overview", "keys": "keys", "key_new": "keys", "key_created": "keys", "key_revoke": "keys",
       "calls": "calls", "runs": "runs", "run": "runs", "approvals": "approvals", "policies": "policies",
       "policy": "policies", "alerts": "alerts"}
PageHandler = Callable[["Console", Request], Awaitable[Response]]


@dataclass(frozen=True)
class VendorLook:
    """How the console shows a vendor (its adapter's ``label`` and ``colour``)."""

    label: str
    colour: str


class Console:
    """``vendors``: how to show each vendor the proxy serves, by name, in its order."""

    def __init__(self, client: AdminClient | None, sessions: Sessions | None, vendors: Mapping[str, VendorLook]):
        self._client = client
        self.sessions = sessions
        self.vendors = dict(vendors)
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        env = self.templates.env
        env.filters.update(usd=render.usd, when=render.when, pretty_json=render.pretty_json,
                           remaining=render.remaining)
        env.globals["href"] = _href

    @property
    def colours(self) -> dict[str, str]:
        return {name: look.colour for name, look in self.vendors.items()}

    @property
    def client(self) -> AdminClient:
        """The admin API. Pages run only behind ``page``, which answers 503 when the console has none."""
        if self._client is None:
            raise RuntimeError("the console has no admin client: it is disabled")
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    def render(self, request: Request, template: str, status: int = 200, **context: Any) -> Response:
        session: Session | None = getattr(request.state, "session", None)
        context.setdefault("notice", session.take_notice() if session else None)
        return self.templates.TemplateResponse(
            request, template, {"csrf": session.csrf if session else "",
                                "signed_in": bool(session and session.signed_in),
                                "nav": NAV.get(template.split(".")[0], ""), **context}, status_code=status)

    def redirect(self, request: Request, name: str, query: dict[str, str] | None = None, **params: str) -> Response:
        url = str(request.url_for(name, **params).path)
        return RedirectResponse(url + (f"?{urlencode(query)}" if query else ""), status_code=303)

    def unavailable(self, request: Request, exc: Unavailable) -> Response:
        """The session cannot be checked: nothing is shown or changed."""
        return self.render(request, "error.html", status=503, title="Database unreachable", message=exc.message)

    def page(self, handler: PageHandler) -> Callable[[Request], Awaitable[Response]]:
        """Signed in or sent to the sign-in page; POSTs need the session's CSRF token."""

        async def guarded(request: Request) -> Response:
            if self.sessions is None or self._client is None:
                return self.render(request, "disabled.html", status=503)
            try:
                session = await self.sessions.load(request)
            except Unavailable as exc:
                return self.unavailable(request, exc)
            request.state.session = session
            response: Response
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
                except Unavailable as exc:
                    response = self.unavailable(request, exc)
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
    cached: dict[str, str] | None = getattr(request.state, "form", None)
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
