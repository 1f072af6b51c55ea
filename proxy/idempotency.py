"""Idempotency keys Tollgate derives, so that the vendor itself absorbs an agent's retry storm.

The duplicate guard (proxy/duplicates.py) refuses a repeat within its window; past the window,
or without the guard, an agent that loops on an identical call gets it run once per copy. A
policy with ``"idempotency": {"derive": true}`` closes that where the vendor de-duplicates
by a header (``ParsedRequest.deduplicated_by``: Stripe's POSTs, Resend's email sends): a
money-moving or message-sending call that carries none is given one that is the same for the
same call in the same run, so the vendor runs the first and answers every copy from its cache
(Stripe keeps keys 24 h, Resend 24 h).

What "the same call" means is the approval fingerprint (proxy/approvals.py: key, method, path,
parameters in any order, host, account and decision headers); the run is ``X-Agent-Run-Id``.
Without a run id nothing says which calls belong together (two agents on one key would share
keys), so nothing is derived. The key is an HMAC under a secret of the installation
(proxy/serversecrets.py), not a plain hash: whoever could compute it from a run id and a
request could plant a call under another run's key and have that run's call answered from it.

The cost: two identical calls a run means to make (two refunds of the same amount on the same
charge) become one at the vendor. The agent keeps the choice: a call with an Idempotency-Key of
its own is left alone. stripe-python 16 draws one for every POST (``_api_requestor``), so this
changes nothing for it: it is for hand-written HTTP clients and for resend-python, which sends
none unless asked.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from collections.abc import Mapping

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from proxy import approvals, duplicates, outcomes, serversecrets
from proxy.auth import Shared
from proxy.call import Call
from proxy.errors import Unavailable
from proxy.keys import KeyRecord
from proxy.policy.rules import Policy
from proxy.secretbox import SecretBox
from vendors.base import ParsedRequest

log = structlog.get_logger(__name__)

SECRET_NAME = "idempotency_derivation"
PREFIX = "tollgate-derived-"  # the audit row's idempotency_key says it was derived, as does its summary


def derives(policy: Policy, request: ParsedRequest, run_id: str | None, headers: Mapping[str, str]) -> bool:
    """The policy asks, the call belongs to a run, moves money or reaches people, and the vendor
    would de-duplicate it by a header the agent did not send."""
    header = request.deduplicated_by
    return (policy.derive_idempotency and run_id is not None and header is not None
            and duplicates.guarded(request) and not headers.get(header))


def derived_key(secret: bytes, run_id: str, fingerprint: str) -> str:
    mac = hmac.new(secret, f"{run_id}\n{fingerprint}".encode(), hashlib.sha256).hexdigest()
    return PREFIX + mac[:40]  # 160 bits: well inside Stripe's and Resend's 255-character limits


def with_derived_key(request: ParsedRequest, headers: dict[str, str], key: str) -> ParsedRequest:
    """``request`` carrying ``key`` (added to ``headers``, which are forwarded), its summary saying so."""
    assert request.deduplicated_by is not None
    headers[request.deduplicated_by] = key
    return dataclasses.replace(request, idempotency_key=key, summary={**request.summary, "idempotency": "derived"})


class Deriver:
    """Derives keys under the installation's secret, read from the database once per process."""

    def __init__(self, engine: AsyncEngine, box: SecretBox):
        self._engine = engine
        self._box = box
        self._secret: bytes | None = None
        self._load = Shared(self._read)

    async def keyed(self, call: Call, key: KeyRecord, request: ParsedRequest) -> ParsedRequest:
        """``request`` with its idempotency key: the agent's; one derived from its run and content
        where the policy asks; else, where the vendor can name a call by one, one made from the
        request id (proxy/outcomes.py). The headers forwarded carry it."""
        if not derives(key.policy, request, call.run_id, call.headers):
            return outcomes.with_idempotency_key(call.adapter, call.incoming.method, call.headers, request,
                                                 call.request_id)
        assert call.run_id is not None
        acting_on = approvals.acts_on(request.account or key.credential.account, call.headers,
                                      call.adapter.decision_headers)
        secret = self._secret or await self._load()
        call.derived_key = True
        return with_derived_key(request, call.headers,
                                derived_key(secret, call.run_id, approvals.fingerprint(key.id, request, acting_on)))

    async def _read(self) -> bytes:
        try:
            async with self._engine.begin() as conn:
                self._secret = await serversecrets.load_or_create(conn, self._box, SECRET_NAME)
        except Exception as exc:  # the database, or a master key that does not open the secret
            log.error("derivation_secret_unavailable", error=type(exc).__name__)
            raise Unavailable("database_unavailable", "Tollgate cannot reach its database.") from exc
        return self._secret
