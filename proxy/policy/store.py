"""Policies in the database: immutable versions, one current per policy, keys point at a policy.

Changing a policy means adding a version; the gate sees the new current version on the
very next request (it compares what the proxy evaluated with what is current).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from proxy import pages
from proxy.errors import InvalidInput, NotFound
from proxy.policy import rules
from proxy.schema import policies, policy_versions, vault_keys


def _iso(value: Any) -> Any:
    return value.isoformat() if value is not None else None


async def create_policy(conn: AsyncConnection, document: Mapping[str, Any], name: str | None = None,
                        vendors: Iterable[str] | None = None) -> dict[str, Any]:
    """``vendors``: the vendor names this process serves (rules.validate)."""
    rules.validate(document, vendors)
    policy_id = f"pol_{secrets.token_hex(8)}"
    await conn.execute(insert(policies).values(id=policy_id, vendor=document["vendor"], name=name, current_version=1))
    await conn.execute(insert(policy_versions).values(policy_id=policy_id, version=1, document=dict(document)))
    return await show_policy(conn, policy_id)


async def add_version(conn: AsyncConnection, policy_id: str, document: Mapping[str, Any],
                      vendors: Iterable[str] | None = None) -> dict[str, Any]:
    """A new immutable version that becomes current; the vendor cannot change."""
    rules.validate(document, vendors)
    row = (await conn.execute(
        select(policies.c.vendor, policies.c.current_version).where(policies.c.id == policy_id).with_for_update()
    )).first()
    if row is None:
        raise NotFound("unknown_policy", f"No such policy: {policy_id}.")
    if document["vendor"] != row.vendor:
        raise InvalidInput("vendor_mismatch", f"Policy {policy_id} is for {row.vendor}; a version cannot change that.")
    version = row.current_version + 1
    await conn.execute(insert(policy_versions).values(policy_id=policy_id, version=version, document=dict(document)))
    await conn.execute(update(policies).where(policies.c.id == policy_id).values(current_version=version))
    return await show_policy(conn, policy_id)


# Newest first (index policies_created); each policy's key count is an index count on vault_keys_policy.
POLICY_ORDER = pages.Order("policies", (policies.c.created_at, policies.c.id))


async def list_policies(conn: AsyncConnection, limit: int = pages.DEFAULT_LIMIT,
                        cursor: str | None = None) -> pages.Page:
    """A page of policies, newest first, each with how many keys follow it."""
    keys_using = (
        select(func.count()).select_from(vault_keys).where(vault_keys.c.policy_id == policies.c.id).scalar_subquery()
    )
    rows, after = POLICY_ORDER.cut(list(await conn.execute(
        POLICY_ORDER.window(select(policies, keys_using.label("keys")), limit, cursor))), limit)
    return pages.Page([{**dict(r._mapping), "created_at": _iso(r.created_at)} for r in rows], after)


async def show_policy(conn: AsyncConnection, policy_id: str) -> dict[str, Any]:
    head = (await conn.execute(select(policies).where(policies.c.id == policy_id))).first()
    if head is None:
        raise NotFound("unknown_policy", f"No such policy: {policy_id}.")
    versions = await conn.execute(
        select(policy_versions).where(policy_versions.c.policy_id == policy_id).order_by(policy_versions.c.version)
    )
    return {
        **dict(head._mapping),
        "created_at": _iso(head.created_at),
        "versions": [{"version": v.version, "created_at": _iso(v.created_at), "document": v.document}
                     for v in versions],
    }


async def attach(conn: AsyncConnection, key_id: str, policy_id: str) -> None:
    """Point a key at another policy (same vendor); takes effect on the key's next request."""
    vendor = await conn.scalar(select(policies.c.vendor).where(policies.c.id == policy_id))
    if vendor is None:
        raise NotFound("unknown_policy", f"No such policy: {policy_id}.")
    key_vendor = await conn.scalar(select(vault_keys.c.vendor).where(vault_keys.c.id == key_id))
    if key_vendor is None:
        raise NotFound("unknown_key", f"No such key: {key_id}.")
    if key_vendor != vendor:
        raise InvalidInput("vendor_mismatch", f"Policy {policy_id} is for {vendor}, key {key_id} for {key_vendor}.")
    await conn.execute(update(vault_keys).where(vault_keys.c.id == key_id).values(policy_id=policy_id))
