"""The installation's own secrets, kept in the database sealed under the master key.

Two today: the vault-key tag key (proxy/vaultkeys.py) and the key idempotency keys are
derived under (proxy/idempotency.py), which every replica must share and which must outlive
any one process. They live in ``server_secrets`` rather than in new environment variables
because the database is already what every replica shares, and sealing them with the master
key (proxy/secretbox.py) means a database dump alone does not let anyone mint tags or derive
keys. The first process that needs one makes it; concurrent first users agree on one
(the insert is ON CONFLICT DO NOTHING, then everyone reads what won). A master-key rotation
re-seals them with the upstream secrets (proxy/rotation.py).

The tag key is never rotated: every tagged key would stop working. Nothing depends on it staying
secret but the cheapness of refusing forgeries: with it, an attacker could make keys that
pass the tag and then cost a look-up each, as every key did before the tag existed; the
secret-hash compare still stands between such a key and a forward. The derivation key must
stay secret for a different reason: with it, anyone could compute the key of another run's
call and plant an answer for it at the vendor.
"""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from proxy.schema import server_secrets
from proxy.secretbox import SecretBox

TAG_KEY = "vault_key_tag"


def _context(name: str) -> str:
    return f"server_secret:{name}"  # bound into the ciphertext: a sealed row copied elsewhere does not open


async def load_or_create(conn: AsyncConnection, box: SecretBox, name: str = TAG_KEY) -> bytes:
    """The named secret (32 random bytes), made and stored on first use."""
    sealed = await conn.scalar(select(server_secrets.c.ciphertext).where(server_secrets.c.name == name))
    if sealed is None:
        fresh = box.seal(secrets.token_hex(32), _context(name))
        await conn.execute(insert(server_secrets).values(name=name, ciphertext=fresh).on_conflict_do_nothing())
        sealed = await conn.scalar(select(server_secrets.c.ciphertext).where(server_secrets.c.name == name))
        assert sealed is not None  # ours, or the one a concurrent first user inserted
    return bytes.fromhex(box.open(sealed, _context(name)))


async def reseal_all(conn: AsyncConnection, box: SecretBox) -> int:
    """Open each secret (current or previous master key) and seal it under the current one."""
    rows = (await conn.execute(select(server_secrets.c.name, server_secrets.c.ciphertext).with_for_update())).all()
    for row in rows:
        plain = box.open(row.ciphertext, _context(row.name))
        await conn.execute(server_secrets.update().where(server_secrets.c.name == row.name)
                           .values(ciphertext=box.seal(plain, _context(row.name))))
    return len(rows)
