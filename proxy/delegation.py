"""Minting a child vault key from a key: for one run, for a short time, never wider than its parent.

An orchestrator agent hands a sub-agent a key of its own instead of its own key: every call
the child makes records the child's run (proxy/call.py ``bind_run``), is judged by a policy
that only narrows the parent's (proxy/policy/narrow.py), and is counted against the child's
own caps and every ancestor's (migrations/sql/v0021.py). Revoking a key revokes every key
minted from it (proxy/lineage.py). Operators mint through the admin API and the CLI; the agent
itself only where its key's policy says ``delegation.allowed`` (POST /tollgate/v1/delegate).

The chain is locked while a child is minted (FOR SHARE, root first), so a revocation of any
ancestor either commits first, and the mint finds it, or waits for the mint, and its
recursive UPDATE then finds the new child.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncConnection

from proxy import keys, lineage, serversecrets, vaultkeys
from proxy.call import RUN_ID_HEADER, run_id_of
from proxy.errors import Conflict, Denial, InvalidInput, NotFound
from proxy.policy import narrow, store
from proxy.schema import vault_keys
from proxy.secretbox import SecretBox

_LOCK_CHAIN = text("""
WITH RECURSIVE chain AS (
  SELECT k.id, k.parent_key_id FROM vault_keys k WHERE k.id = :key_id
  UNION ALL
  SELECT k.id, k.parent_key_id FROM vault_keys k JOIN chain c ON k.id = c.parent_key_id
)
SELECT k.id, k.status, k.depth, k.vendor, k.credential_id, k.agent_run_id, k.expires_at,
       coalesce(k.expires_at <= now(), false) AS expired
  FROM vault_keys k WHERE k.id IN (SELECT id FROM chain) ORDER BY k.depth FOR SHARE OF k
""")
# The database's clock, as the gate judges expiry by it; never past the parent's own expiry.
_EXPIRES = text("SELECT least(now() + make_interval(secs => :ttl), CAST(:parent AS timestamptz))")


async def mint(
    conn: AsyncConnection,
    box: SecretBox,
    parent_id: str,
    *,
    run_id: str | None,
    ttl_s: int | None = None,
    policy: Mapping[str, Any] | None = None,
    label: str | None = None,
    by_agent: bool = False,
    vendors: Iterable[str] | None = None,
) -> tuple[dict[str, Any], str]:
    """A child of ``parent_id``: (its description, the token to hand out once). ``by_agent``: the
    agent asked with the parent key itself, which its policy must allow."""
    rows = list(await conn.execute(_LOCK_CHAIN, {"key_id": parent_id}))
    if not rows:
        raise NotFound("unknown_key", f"No such key: {parent_id}.")
    parent = rows[-1]
    if any(row.status != "active" or row.expired for row in rows):
        raise Conflict("parent_inactive", f"Key {parent_id} (or a key it was delegated from) is revoked or "
                                          "expired: it cannot delegate.")
    document = lineage.effective_document(await lineage.chain_documents(conn, parent_id))
    allowed, depth_left, max_ttl = narrow.may_delegate(document)
    if by_agent and not allowed:
        raise Denial("delegation_not_allowed", "This key's policy does not let it mint child keys "
                                               "(delegation.allowed); ask an operator.")
    if depth_left < 1:
        raise Denial("delegation_too_deep", f"Key {parent_id} is at depth {parent.depth}, as deep as its "
                                            "policy's delegation.max_depth lets a chain go.")
    ttl = min(narrow.DEFAULT_TTL_S, max_ttl) if ttl_s is None else ttl_s
    if not 1 <= ttl <= max_ttl:
        raise InvalidInput("invalid_ttl", f"ttl must be from 1 to {max_ttl} seconds (the parent's "
                                          f"delegation.max_ttl_s); got {ttl}.")
    run = _run_of(run_id, parent.agent_run_id)
    expires_at = await conn.scalar(_EXPIRES, {"ttl": ttl, "parent": parent.expires_at})
    child_policy = await store.create_policy(conn, narrow.narrow(document, policy), vendors=vendors)
    key, token = vaultkeys.generate(await serversecrets.load_or_create(conn, box))
    await conn.execute(insert(vault_keys).values(
        id=key.key_id, vendor=parent.vendor, label=label, secret_hash=key.secret_hash,
        credential_id=parent.credential_id, policy_id=child_policy["id"], expires_at=expires_at,
        checksum="tagged", parent_key_id=parent_id, depth=parent.depth + 1, agent_run_id=run,
    ))
    return await keys.show_key(conn, key.key_id), token


def _run_of(asked: str | None, parents: str | None) -> str:
    """The child's run: the one asked for (checked as a header would be), or the parent's own.
    A run-bound parent's child shares its run: under another, the parent's run caps would start
    again at zero."""
    run = run_id_of({RUN_ID_HEADER: asked}) if asked is not None else parents
    if run is None:
        raise InvalidInput("missing_field", "A child key is bound to one run: give its run id (agent_run_id).")
    if parents is not None and run != parents:
        raise InvalidInput("invalid_delegation", f"This key is bound to run {parents}; its children are too.")
    return run


def parse_ttl(text_value: str) -> int:
    """``900``, ``90s``, ``15m``, ``2h``: seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    value = text_value.strip().lower()
    scale = units.get(value[-1:], 0)
    digits = value[:-1] if scale else value
    if not digits.isdigit():
        raise InvalidInput("invalid_ttl", f"A TTL is seconds, or a number with s, m or h (15m); got {text_value!r}.")
    return int(digits) * (scale or 1)

