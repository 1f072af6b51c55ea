"""Step 2 of the request path: from a presented vault key to its record, or a refusal.

Anyone can make a key that passes the checksum (it is CRC32, public by design: it catches
typos). Before migration 0016 every such key cost a database look-up, so a forger could
make the proxy work, and write audit rows, for free. Now a key is judged in process first:

- a **tagged** key (every key issued since 0016) must carry this installation's tag
  (proxy/vaultkeys.py); one that does not is a forgery, refused ``unknown_key`` with no look-up.
  The tag key is read from the database once per process (proxy/serversecrets.py).
- an **untagged** key (issued before 0016) must name one of the keys the database marks
  ``checksum = 'crc32'``. Their ids are loaded once per process and reloaded on a miss at most
  every ``refresh_s`` seconds, so a flood of made-up ids costs one query per interval, and a
  key made by a not-yet-upgraded process during a rolling upgrade is seen within it. No new
  untagged key is made otherwise, so the set only grows during such an upgrade.

Only then the key cache and the secret-hash compare, as before: a valid key costs no more
database round trips than it did (after the first request of the process).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from proxy import serversecrets, vaultkeys
from proxy.errors import AuthRefused, Unavailable
from proxy.keycache import KeyCache
from proxy.keys import KeyRecord
from proxy.schema import vault_keys
from proxy.secretbox import SecretBox

log = structlog.get_logger(__name__)
T = TypeVar("T")
UNKNOWN = "Invalid API key: this vault key does not exist."


class Authenticator:
    def __init__(self, engine: AsyncEngine, box: SecretBox, keys: KeyCache, refresh_s: float):
        self._engine = engine
        self._box = box
        self._keys = keys
        self._refresh_s = refresh_s
        self._tag_key: bytes | None = None
        self._untagged: frozenset[str] | None = None
        self._untagged_at = -math.inf  # monotonic time of the last load attempt
        self._load_tag_key = Shared(self._read_tag_key)
        self._load_untagged = Shared(self._read_untagged)

    async def record(self, vault_key: vaultkeys.VaultKey) -> KeyRecord:
        """The key's record; AuthRefused (unknown_key, invalid_secret, with the key id) or
        Unavailable (the database is needed and cannot be reached)."""
        if vault_key.tag is not None:
            issued = vault_key.tagged_by(self._tag_key or await self._load_tag_key())
        else:
            issued = await self._is_untagged_key(vault_key.key_id)
        if not issued:
            raise AuthRefused("unknown_key", UNKNOWN, key_id=vault_key.key_id)
        try:
            key = await self._keys.get(vault_key.key_id)
        except Exception as exc:
            raise Unavailable("database_unavailable", "Tollgate cannot reach its database.") from exc
        if key is None:
            raise AuthRefused("unknown_key", UNKNOWN, key_id=vault_key.key_id)
        if not vaultkeys.secret_matches(vault_key.secret, key.secret_hash):
            raise AuthRefused("invalid_secret", "Invalid API key: the vault key's secret is wrong.", key_id=key.id)
        return key

    def forget(self, key_id: str) -> None:
        self._keys.forget(key_id)

    async def _is_untagged_key(self, key_id: str) -> bool:
        known = self._untagged
        if known is not None and (key_id in known or time.monotonic() - self._untagged_at < self._refresh_s):
            return key_id in known
        return key_id in await self._load_untagged()

    async def _read_tag_key(self) -> bytes:
        try:
            async with self._engine.begin() as conn:
                self._tag_key = await serversecrets.load_or_create(conn, self._box)
        except Exception as exc:  # the database, or a master key that does not open the secret
            log.error("tag_key_unavailable", error=type(exc).__name__)
            raise Unavailable("database_unavailable", "Tollgate cannot reach its database.") from exc
        return self._tag_key

    async def _read_untagged(self) -> frozenset[str]:
        self._untagged_at = time.monotonic()  # an attempt counts: an outage is not retried by every forgery
        try:
            async with self._engine.connect() as conn:
                self._untagged = frozenset(await conn.scalars(
                    select(vault_keys.c.id).where(vault_keys.c.checksum != "tagged")))
        except Exception as exc:
            if self._untagged is None:  # nothing to judge by: fail closed, as a look-up would have
                raise Unavailable("database_unavailable", "Tollgate cannot reach its database.") from exc
            log.warning("untagged_keys_reload_failed", error=type(exc).__name__)  # judged by the last load
        return self._untagged


class Shared(Generic[T]):
    """One load in flight at a time: whoever asks while it runs shares its answer or its error;
    a waiter that gives up (its client left) does not cancel it for the others."""

    def __init__(self, load: Callable[[], Awaitable[T]]):
        self._load = load
        self._task: asyncio.Task[T] | None = None

    async def __call__(self) -> T:
        if self._task is None:
            self._task = asyncio.ensure_future(self._load())
            self._task.add_done_callback(self._done)
        return await asyncio.shield(self._task)

    def _done(self, task: asyncio.Task[T]) -> None:
        self._task = None  # the next caller loads afresh
        if not task.cancelled():
            task.exception()  # retrieved here, so a load nobody waited for is not reported as lost
