"""Console sessions: a signed cookie (HttpOnly, SameSite=Strict, Path=/console) holding
whether the browser signed in, its CSRF token and a one-shot notice. Nothing secret is in
it: the admin token never leaves the server, only proof that it was once typed in.

The signing key is derived from the admin token, so changing the token signs everyone out.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

COOKIE = "tollgate_console"
MAX_AGE_S = 12 * 3600
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


@dataclass
class Session:
    signed_in: bool = False
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    notice: dict[str, str] | None = None
    changed: bool = False

    def flash(self, text: str, kind: str = "ok") -> None:
        self.notice = {"kind": kind, "text": text}
        self.changed = True

    def take_notice(self) -> dict[str, str] | None:
        notice, self.notice = self.notice, None
        if notice:
            self.changed = True
        return notice

    def csrf_ok(self, presented: str | None) -> bool:
        if not presented:
            return False
        return hmac.compare_digest(presented.encode(), self.csrf.encode())


class Sessions:
    def __init__(self, admin_token: str, secure: str = "auto"):
        key = hmac.new(admin_token.encode(), b"tollgate console session v1", hashlib.sha256).hexdigest()
        self._serializer = URLSafeTimedSerializer(key, salt="tollgate.console.session")
        self._admin_token = admin_token
        self._secure = secure

    def token_matches(self, presented: str) -> bool:
        """Constant time, whatever the length of what was typed."""
        return hmac.compare_digest(hashlib.sha256(presented.encode()).digest(),
                                   hashlib.sha256(self._admin_token.encode()).digest())

    def load(self, request: Request) -> Session:
        raw = request.cookies.get(COOKIE)
        if raw:
            try:
                data: dict[str, Any] = self._serializer.loads(raw, max_age=MAX_AGE_S)
                return Session(signed_in=bool(data.get("in")), csrf=str(data["csrf"]), notice=data.get("notice"))
            except (BadSignature, KeyError, TypeError, ValueError):
                pass
        return Session(changed=True)

    def save(self, request: Request, response: Response, session: Session) -> None:
        if not session.changed:
            return
        value = self._serializer.dumps({"in": session.signed_in, "csrf": session.csrf, "notice": session.notice})
        response.set_cookie(COOKIE, value, max_age=MAX_AGE_S, path="/console", httponly=True, samesite="strict",
                            secure=self._is_secure(request))

    def clear(self, request: Request, response: Response) -> None:
        response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="strict",
                               secure=self._is_secure(request))

    def _is_secure(self, request: Request) -> bool:
        if self._secure in ("always", "never"):
            return self._secure == "always"
        return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
