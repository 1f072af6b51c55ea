"""A key's delegation chain, read from ``vault_keys.parent_key_id`` (migration 0021).

What the request path and the admin side need of it: the chain's current policy documents
(to judge a child under its parent's *current* policy, and to hand the gate every ancestor's
caps with the ancestor that owns each counter), the subtree a revocation reaches, and the
chain ``runs show`` prints. Kept apart from proxy/delegation.py (minting) so proxy/keys.py
can load a child without importing the minting code that imports it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from proxy.errors import InvalidInput
from proxy.policy import narrow, rules

# Root first, the key itself last; each with its current policy document.
_CHAIN = text("""
WITH RECURSIVE chain AS (
  SELECT k.id, k.parent_key_id, k.policy_id, k.depth FROM vault_keys k WHERE k.id = :key_id
  UNION ALL
  SELECT k.id, k.parent_key_id, k.policy_id, k.depth FROM vault_keys k JOIN chain c ON k.id = c.parent_key_id
)
SELECT c.id, c.depth, v.document
  FROM chain c JOIN policies p ON p.id = c.policy_id
  JOIN policy_versions v ON v.policy_id = p.id AND v.version = p.current_version
 ORDER BY c.depth
""")

# One statement, recursive: the key and every key minted from it, at any depth, revoked at once.
# The caller has locked the key's row first (revoke_subtree), so a child being minted meanwhile
# is either committed, and found here, or waits and finds its parent revoked.
_REVOKE_SUBTREE = text("""
WITH RECURSIVE subtree AS (
  SELECT k.id FROM vault_keys k WHERE k.id = :key_id
  UNION ALL
  SELECT k.id FROM vault_keys k JOIN subtree s ON k.parent_key_id = s.id
)
UPDATE vault_keys k SET status = 'revoked', revoked_at = coalesce(k.revoked_at, now())
  FROM subtree s WHERE k.id = s.id AND k.status <> 'revoked'
""")

_LOCK = text("SELECT id FROM vault_keys WHERE id = :key_id FOR UPDATE")

_CHILDREN = text("""
SELECT id, status, agent_run_id, depth, label, created_at, expires_at FROM vault_keys
 WHERE parent_key_id = :key_id ORDER BY created_at, id LIMIT 200
""")

# For a run: each key that wrote a row of it, with its chain up to the key an operator made.
_RUN_CHAINS = text("""
WITH RECURSIVE used AS (
  SELECT DISTINCT a.key_id FROM audit_events a WHERE a.agent_run_id = :run_id AND a.key_id IS NOT NULL
), chain AS (
  SELECT u.key_id AS used_by, k.id, k.parent_key_id, k.depth, k.label, k.agent_run_id
    FROM used u JOIN vault_keys k ON k.id = u.key_id
  UNION ALL
  SELECT c.used_by, k.id, k.parent_key_id, k.depth, k.label, k.agent_run_id
    FROM chain c JOIN vault_keys k ON k.id = c.parent_key_id
)
SELECT used_by, id, parent_key_id, depth, label, agent_run_id FROM chain ORDER BY used_by, depth
""")


async def chain_documents(conn: AsyncConnection, key_id: str) -> list[tuple[str, dict[str, Any]]]:
    """(key id, current policy document) from the root down to ``key_id``."""
    return [(row.id, dict(row.document)) for row in await conn.execute(_CHAIN, {"key_id": key_id})]


def effective_document(chain: Sequence[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """The last key's policy as its ancestors' current policies allow it: narrowed at every step.
    A child whose parent has since narrowed past all it was given may do nothing."""
    document = dict(chain[0][1])
    for _, own in chain[1:]:
        try:
            document = narrow.narrow(document, own)
        except InvalidInput:
            return {"vendor": document["vendor"], "endpoints": {"allow": []}, "require_run_id": True}
    return document


def effective_policy(policy_id: str, version: int, chain: Sequence[tuple[str, Mapping[str, Any]]]) -> rules.Policy:
    """The Policy a delegated key is judged by: its effective document, plus each ancestor's own
    caps, owned by that ancestor, for the gate (migrations/sql/v0021.py)."""
    policy = rules.Policy.from_document(policy_id, version, effective_document(chain))
    inherited = tuple((owner, cap) for owner, document in chain[:-1]
                      for cap in rules.Policy.from_document(owner, 0, document).caps)
    return dataclasses.replace(policy, inherited_caps=inherited)


async def revoke_subtree(conn: AsyncConnection, key_id: str) -> int:
    """Revoke ``key_id`` and all its descendants in the caller's transaction: how many changed,
    or -1 when there is no such key."""
    if (await conn.execute(_LOCK, {"key_id": key_id})).first() is None:
        return -1
    return int((await conn.execute(_REVOKE_SUBTREE, {"key_id": key_id})).rowcount or 0)


async def children(conn: AsyncConnection, key_id: str) -> list[dict[str, Any]]:
    rows = await conn.execute(_CHILDREN, {"key_id": key_id})
    return [{**dict(r._mapping), "created_at": _iso(r.created_at), "expires_at": _iso(r.expires_at)} for r in rows]


async def run_chains(conn: AsyncConnection, run_id: str) -> dict[str, list[dict[str, Any]]]:
    """Each key that wrote a row of the run: its chain, from that key up to the operator's key."""
    chains: dict[str, list[dict[str, Any]]] = {}
    for row in await conn.execute(_RUN_CHAINS, {"run_id": run_id}):
        chains.setdefault(row.used_by, []).append(
            {"id": row.id, "parent_key_id": row.parent_key_id, "depth": row.depth, "label": row.label,
             "agent_run_id": row.agent_run_id})
    for chain in chains.values():
        chain.sort(key=lambda k: -int(k["depth"]))
    return chains


def _iso(value: Any) -> Any:
    return value.isoformat() if value is not None else None
