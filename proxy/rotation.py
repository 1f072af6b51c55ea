"""Rotations an operator runs: an upstream secret behind a key (agents keep their vault keys),
and the master key (every upstream secret, the installation's own secrets such as the
vault-key tag key, and the alert webhooks' signing secrets, re-encrypted under the current key)."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from proxy import serversecrets
from proxy.alerts import subscriptions
from proxy.errors import NotFound
from proxy.schema import upstream_credentials, vault_keys
from proxy.secretbox import SecretBox


async def rotate_upstream_secret(conn: AsyncConnection, box: SecretBox, key_id: str, new_secret: str) -> str:
    """Replace the vendor secret a key forwards with; returns the credential id. Every proxy
    process picks it up when its cached copy of the key expires (TOLLGATE_KEY_CACHE_TTL_S)."""
    credential_id: str | None = await conn.scalar(select(vault_keys.c.credential_id).where(vault_keys.c.id == key_id))
    if credential_id is None:
        raise NotFound("unknown_key", f"No such key: {key_id}.")
    await conn.execute(update(upstream_credentials).where(upstream_credentials.c.id == credential_id).values(
        secret_ciphertext=box.seal(new_secret, credential_id), rotated_at=func.now()))
    return credential_id


async def reencrypt_all(conn: AsyncConnection, box: SecretBox) -> int:
    """Open every upstream secret (with the current or a previous master key) and seal it
    again under the current one, in one transaction; the server's own secrets and the alert
    webhooks' signing secrets too (not counted: the count is the upstream secrets'), or dropping
    the previous master key would leave the tag key sealed under it, and every tagged vault key
    refused, and every alert delivery unsignable."""
    rows = (await conn.execute(select(upstream_credentials.c.id, upstream_credentials.c.secret_ciphertext)
                               .with_for_update())).all()
    for row in rows:
        plain = box.open(row.secret_ciphertext, row.id)
        await conn.execute(update(upstream_credentials).where(upstream_credentials.c.id == row.id)
                           .values(secret_ciphertext=box.seal(plain, row.id)))
    await serversecrets.reseal_all(conn, box)
    await subscriptions.reseal_all(conn, box)
    return len(rows)
