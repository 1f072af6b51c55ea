"""The installation's own secrets, kept in the database sealed under the master key.

One today: the vault-key tag key (proxy/vaultkeys.py), which every replica must share and
which must outlive any one process. It lives in ``server_secrets`` rather than in a new
environment variable because the database is already what every replica shares, and sealing
it with the master key (proxy/secretbox.py) means a database dump alone does not let anyone
mint tags. The first process that needs it makes it; concurrent first users agree on one
(the insert is ON CONFLICT DO NOTHING, then everyone reads what won). A master-key rotation
re-seals it with the upstream secrets (proxy/rotation.py).

It is never rotated: every tagged key would stop working. Nothing depends on it staying
secret but the cheapness of refusing forgeries: with it, an attacker could make keys that
pass the tag and then cost a look-up each, as every key did before the tag existed; the
secret-hash compare still stands between such a key and a forward.
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
