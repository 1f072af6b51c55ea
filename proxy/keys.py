"""Vault keys and the policies they point at: create, list, show, revoke, and load for auth.

Shared by the admin API and the CLI, so both behave the same. Nothing returned from
here contains a secret except ``create_key``'s token, which the caller shows once.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, func, insert, select, true
from sqlalchemy.ext.asyncio import AsyncConnection

from proxy import lineage, pages, serversecrets, vaultkeys
from proxy.errors import InvalidInput, NotFound
from proxy.policy import rules, store
from proxy.schema import (
    audit_events,
    policies,
    policy_versions,
    upstream_credentials,
    vault_keys,
)
from proxy.secretbox import SecretBox
from vendors.base import UpstreamCredential
from vendors.registry import Registry


@dataclass(frozen=True)
class KeyRecord:
    """Everything the request path needs about one key, loaded in one query."""

    id: str
    vendor: str
    secret_hash: bytes
    policy: rules.Policy
    credential: UpstreamCredential
    # A delegated key (proxy/delegation.py): the one run its rows record, and the key whose
    # records stand for its whole tree (the root: every key of a tree sees the same records).
    run_id: str | None = None
    records_key: str = ""

    def __post_init__(self) -> None:
        if not self.records_key:
            object.__setattr__(self, "records_key", self.id)


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


async def create_key(
    conn: AsyncConnection,
    box: SecretBox,
    vendors: Registry,
    *,
    vendor: str,
    upstream_secret: str,
    policy_document: Mapping[str, Any] | None = None,
    policy_id: str | None = None,
    upstream_account: str | None = None,
    label: str | None = None,
    expires_at: datetime | None = None,
) -> tuple[dict[str, Any], str]:
    """Create a key bound to an upstream credential and a policy; return (description, token)."""
    adapter = vendors.get(vendor)
    if adapter is None:
        raise InvalidInput("unknown_vendor", f"Unknown vendor {vendor!r}; known: {', '.join(vendors.names())}.")
    if adapter.requires_account and not upstream_account:
        raise InvalidInput("missing_upstream_account",
                           f"A {vendor} key needs the upstream account (e.g. the Account SID) as well as the secret.")
    if not upstream_secret:
        raise InvalidInput("missing_upstream_secret", "An upstream secret is required.")
    if (policy_document is None) == (policy_id is None):
        raise InvalidInput("policy_required", "Give exactly one of a policy document or a policy_id.")
    if policy_document is not None:
        policy_id = (await store.create_policy(conn, policy_document, vendors=vendors.names()))["id"]
    policy_vendor = await conn.scalar(select(policies.c.vendor).where(policies.c.id == policy_id))
    if policy_vendor is None:
        raise NotFound("unknown_policy", f"No such policy: {policy_id}.")
    if policy_vendor != vendor:
        raise InvalidInput("vendor_mismatch", f"Policy {policy_id} is for {policy_vendor}, not {vendor}.")
    key, token = vaultkeys.generate(await serversecrets.load_or_create(conn, box))
    credential_id = _new_id("cred")
    await conn.execute(
        insert(upstream_credentials).values(
            id=credential_id, vendor=vendor, account=upstream_account,
            secret_ciphertext=box.seal(upstream_secret, credential_id),
        )
    )
    await conn.execute(
        insert(vault_keys).values(
            id=key.key_id, vendor=vendor, label=label, secret_hash=key.secret_hash,
            credential_id=credential_id, policy_id=policy_id, expires_at=expires_at, checksum="tagged",
        )
    )
    return await show_key(conn, key.key_id), token


_KEY_COLUMNS = (
    vault_keys.c.id, vault_keys.c.vendor, vault_keys.c.label, vault_keys.c.status, vault_keys.c.policy_id,
    policies.c.current_version.label("policy_version"), upstream_credentials.c.account.label("upstream_account"),
    vault_keys.c.created_at, vault_keys.c.revoked_at, vault_keys.c.expires_at,
    vault_keys.c.parent_key_id, vault_keys.c.depth, vault_keys.c.agent_run_id,
)


def _described(row: Any) -> dict[str, Any]:
    out = dict(row._mapping)
    for name in ("created_at", "revoked_at", "expires_at", "last_call_at"):
        if name in out:
            out[name] = out[name].isoformat() if out[name] else None
    return out


def _keys_query() -> Select[Any]:
    return (
        select(*_KEY_COLUMNS)
        .join(policies, policies.c.id == vault_keys.c.policy_id)
        .join(upstream_credentials, upstream_credentials.c.id == vault_keys.c.credential_id)
    )


# Newest first; the id breaks ties between keys made in one transaction. Index: vault_keys_created.
KEY_ORDER = pages.Order("keys", (vault_keys.c.created_at, vault_keys.c.id))


async def list_keys(conn: AsyncConnection, vendor: str | None = None, *, policy_id: str | None = None,
                    limit: int = pages.DEFAULT_LIMIT, cursor: str | None = None,
                    with_documents: bool = False) -> pages.Page:
    """A page of keys, newest first, each with its latest call (time and run id).

    The page's keys are chosen first (a range scan of the (created_at, id) index from the
    cursor), and only they are joined and probed for their latest call: a page costs one
    statement of the same size at any number of keys. ``with_documents`` adds each key's
    current policy document as ``policy`` (for spend.with_spend).
    """
    chosen = select(vault_keys.c.id, vault_keys.c.created_at)
    if vendor:
        chosen = chosen.where(vault_keys.c.vendor == vendor)
    if policy_id:
        chosen = chosen.where(vault_keys.c.policy_id == policy_id)
    page = KEY_ORDER.window(chosen, limit, cursor).subquery("page")
    last = (
        select(audit_events.c.ts, audit_events.c.agent_run_id)
        .where(audit_events.c.key_id == page.c.id)
        .order_by(audit_events.c.ts.desc())
        .limit(1)
        .lateral("last_call")
    )
    query = (
        _keys_query()
        .add_columns(last.c.ts.label("last_call_at"), last.c.agent_run_id.label("last_run_id"))
        .join(page, page.c.id == vault_keys.c.id)
        .outerjoin(last, true())
        .order_by(vault_keys.c.created_at.desc(), vault_keys.c.id.desc())
    )
    if with_documents:
        query = query.add_columns(policy_versions.c.document.label("policy")).join(policy_versions, and_(
            policy_versions.c.policy_id == vault_keys.c.policy_id,
            policy_versions.c.version == policies.c.current_version))
    rows, after = KEY_ORDER.cut(list(await conn.execute(query)), limit)
    return pages.Page([_described(row) for row in rows], after)


async def count_keys(conn: AsyncConnection) -> dict[str, int]:
    """How many keys there are, and how many are active: for the console's overview, which
    used to list every key to count them."""
    row = (await conn.execute(select(func.count().label("total"),
                                     func.count().filter(vault_keys.c.status == "active").label("active")))).one()
    return {"active": row.active, "total": row.total}


async def show_key(conn: AsyncConnection, key_id: str) -> dict[str, Any]:
    row = (await conn.execute(_keys_query().where(vault_keys.c.id == key_id))).first()
    if row is None:
        raise NotFound("unknown_key", f"No such key: {key_id}.")
    described = _described(row)
    document = await conn.scalar(
        select(policy_versions.c.document).where(
            policy_versions.c.policy_id == described["policy_id"],
            policy_versions.c.version == described["policy_version"],
        )
    )
    return {**described, "policy": document, "children": await lineage.children(conn, key_id)}


async def revoke_key(conn: AsyncConnection, key_id: str) -> dict[str, Any]:
    """Idempotent: revoking a revoked key keeps its first revocation time. Every key delegated
    from it, at any depth, is revoked with it (proxy/lineage.py), in the same transaction."""
    if await lineage.revoke_subtree(conn, key_id) < 0:
        raise NotFound("unknown_key", f"No such key: {key_id}.")
    return await show_key(conn, key_id)


async def load_for_auth(conn: AsyncConnection, box: SecretBox, key_id: str) -> KeyRecord | None:
    """The key, its current policy and its decrypted upstream credential; None if unknown.

    Status and expiry are deliberately not judged here: the gate reads them fresh on
    every request, so a cached record can never let a revoked key through.
    """
    query = (
        select(
            vault_keys.c.id, vault_keys.c.vendor, vault_keys.c.secret_hash, vault_keys.c.policy_id,
            policies.c.current_version, policy_versions.c.document,
            upstream_credentials.c.id.label("credential_id"), upstream_credentials.c.account,
            upstream_credentials.c.secret_ciphertext, vault_keys.c.parent_key_id, vault_keys.c.agent_run_id,
        )
        .join(policies, policies.c.id == vault_keys.c.policy_id)
        .join(
            policy_versions,
            (policy_versions.c.policy_id == policies.c.id) & (policy_versions.c.version == policies.c.current_version),
        )
        .join(upstream_credentials, upstream_credentials.c.id == vault_keys.c.credential_id)
        .where(vault_keys.c.id == key_id)
    )
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    document = row.document if isinstance(row.document, dict) else json.loads(row.document)
    policy = rules.Policy.from_document(row.policy_id, row.current_version, document)
    records_key = row.id
    if row.parent_key_id is not None:  # judged under its ancestors' current policies, counted in their caps
        chain = await lineage.chain_documents(conn, row.id)
        policy = lineage.effective_policy(row.policy_id, row.current_version, chain)
        records_key = chain[0][0]
    return KeyRecord(
        id=row.id,
        vendor=row.vendor,
        secret_hash=row.secret_hash,
        policy=policy,
        credential=UpstreamCredential(box.open(row.secret_ciphertext, row.credential_id), row.account),
        run_id=row.agent_run_id,
        records_key=records_key,
    )
