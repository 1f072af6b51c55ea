"""Console sessions: a signed cookie (HttpOnly, SameSite=Strict, Path=/console) holding a
random session id, the CSRF token and a one-shot notice, and a row in ``console_sessions``
holding the id's SHA-256 and its expiry.

The row is what makes a browser signed in, not the cookie: signing out deletes it, so a
copied cookie is dead from then on (before, a copy kept revoking keys for its 12 hours), and
the 12 hours run from sign-in whatever the cookie says. Only the digest is stored: the
database holds nothing that would open a session. Nothing secret is in the cookie either:
the admin token never leaves the server.

The cookie's signing key is derived from the admin token, so changing the token signs everyone out.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from itsdangerous import BadData, URLSafeTimedSerializer
from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from starlette.requests import Request
from starlette.responses import Response

from proxy.errors import Unavailable
from proxy.schema import console_sessions

COOKIE = "tollgate_console"
MAX_AGE_S = 12 * 3600
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


@dataclass
class Session:
    sid: str | None = None  # set only while its row is live: the browser is signed in
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    notice: dict[str, str] | None = None
    changed: bool = False

    @property
    def signed_in(self) -> bool:
        return self.sid is not None

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
    def __init__(self, admin_token: str, engine: AsyncEngine, secure: str = "auto"):
        key = hmac.new(admin_token.encode(), b"tollgate console session v1", hashlib.sha256).hexdigest()
        self._serializer = URLSafeTimedSerializer(key, salt="tollgate.console.session")
        self._admin_token = admin_token
        self._engine = engine
        self._secure = secure

    def token_matches(self, presented: str) -> bool:
        """Constant time, whatever the length of what was typed."""
        return hmac.compare_digest(hashlib.sha256(presented.encode()).digest(),
                                   hashlib.sha256(self._admin_token.encode()).digest())

    async def load(self, request: Request) -> Session:
        """The browser's session: signed in only if its id's row is live. Unavailable if the
        database cannot say."""
        data = self._cookie(request)
        if data is None:
            return Session(changed=True)
        session = Session(csrf=str(data["csrf"]), notice=data.get("notice"))
        sid = data.get("sid")
        if isinstance(sid, str) and await self._live(sid):
            session.sid = sid
        elif sid is not None:
            session.changed = True  # signed out or expired: the cookie is rewritten without the dead id
        return session

    async def start(self) -> Session:
        """A signed-in session with a fresh id and CSRF token; expired rows are swept on the way."""
        sid = secrets.token_urlsafe(32)
        table = console_sessions.c
        async with self._database() as conn:
            await conn.execute(delete(console_sessions).where(table.expires_at < func.now()))
            await conn.execute(insert(console_sessions).values(
                id_hash=_digest(sid), expires_at=func.now() + timedelta(seconds=MAX_AGE_S)))
        return Session(sid=sid, changed=True)

    async def end(self, session: Session) -> None:
        """Sign out: the row goes, and with it every copy of the cookie."""
        if session.sid is not None:
            async with self._database() as conn:
                await conn.execute(delete(console_sessions).where(console_sessions.c.id_hash == _digest(session.sid)))
        session.sid = None

    def save(self, request: Request, response: Response, session: Session) -> None:
        if not session.changed:
            return
        value = self._serializer.dumps({"sid": session.sid, "csrf": session.csrf, "notice": session.notice})
        response.set_cookie(COOKIE, value, max_age=MAX_AGE_S, path="/console", httponly=True, samesite="strict",
                            secure=self._is_secure(request))

    def clear(self, request: Request, response: Response) -> None:
        response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="strict",
                               secure=self._is_secure(request))

    def _cookie(self, request: Request) -> dict[str, Any] | None:
        raw = request.cookies.get(COOKIE)
        if not raw:
            return None
        try:
            data = self._serializer.loads(raw, max_age=MAX_AGE_S)
        except BadData:  # forged, expired or not ours (another admin token signed it)
            return None
        return data if isinstance(data, dict) and isinstance(data.get("csrf"), str) else None

    async def _live(self, sid: str) -> bool:
        table = console_sessions.c
        async with self._database() as conn:
            found = await conn.scalar(select(1).where(table.id_hash == _digest(sid), table.expires_at > func.now()))
        return found is not None

    @contextlib.asynccontextmanager
    async def _database(self) -> AsyncIterator[AsyncConnection]:
        """A transaction; a database that cannot be reached is Unavailable (the console's 503)."""
        try:
            async with self._engine.begin() as conn:
                yield conn
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            raise Unavailable("database_unavailable",
                              "Tollgate cannot reach its database, so it cannot check the session.") from exc

    def _is_secure(self, request: Request) -> bool:
        if self._secure in ("always", "never"):
            return self._secure == "always"
        return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"


def _digest(sid: str) -> bytes:
    """SHA-256 is enough: the id is 32 random bytes, nothing to guess or stretch."""
    return hashlib.sha256(sid.encode()).digest()
