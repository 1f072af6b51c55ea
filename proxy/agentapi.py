"""What an agent may ask of Tollgate itself, with its own vault key: mint a child key.

An orchestrator hands each sub-agent a key of its own, bound to one run, for a short time,
with a policy that only narrows its own (proxy/delegation.py), where its key's policy says
``delegation.allowed``. The route names no vendor: the vault key says which one it is, and
the child is for the same vendor and upstream credential. The key is presented as the
vendors' SDKs do (``Authorization: Bearer tg_...``, or Basic with the key as the password).
"""

from __future__ import annotations

import base64
import binascii

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from proxy import delegation, vaultkeys
from proxy.admin.http import answered, field, json_body, json_response
from proxy.auth import Authenticator
from proxy.call import RUN_ID_HEADER
from proxy.errors import AuthRefused
from proxy.secretbox import SecretBox

PREFIX = "/tollgate/"


class AgentAPI:
    def __init__(self, engine: AsyncEngine, box: SecretBox, auth: Authenticator, vendors: list[str]):
        self._engine = engine
        self._box = box
        self._auth = auth
        self._vendors = vendors

    def routes(self) -> list[Route]:
        async def delegate(request: Request) -> Response:
            return await answered(self.delegate, request)

        return [Route("/tollgate/v1/delegate", delegate, methods=["POST"])]

    async def delegate(self, request: Request) -> Response:
        """``{"agent_run_id"?, "ttl_s"?, "policy"?, "label"?}`` -> 201 with the child's ``key``, shown once.
        The run defaults to the request's X-Agent-Run-Id, then to the parent's own run."""
        parent = await self._auth.record(vaultkeys.parse(_presented(request)))
        body = await json_body(request, allow_empty=True)
        run = field(body, "agent_run_id", str) or request.headers.get(RUN_ID_HEADER)
        async with self._engine.begin() as conn:
            described, token = await delegation.mint(
                conn, self._box, parent.id, run_id=run, ttl_s=field(body, "ttl_s", int),
                policy=field(body, "policy", dict), label=field(body, "label", str), by_agent=True,
                vendors=self._vendors)
        return json_response({**described, "key": token}, 201)


def _presented(request: Request) -> str:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    if scheme.lower() == "basic" and value:
        try:
            return base64.b64decode(value, validate=True).decode().partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            pass
    raise AuthRefused("missing_key", "Send the vault key as 'Authorization: Bearer tg_...'.")
