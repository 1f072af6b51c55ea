"""A short-lived, per-process cache of key records (policy, decrypted credential).

Safe because nothing security-relevant is decided from it alone: the gate re-reads the
key's status, expiry and current policy version in the same round trip that reserves
budget, and answers 'stale' when the cached policy is old.
"""

from __future__ import annotations

import time

from sqlalchemy.ext.asyncio import AsyncEngine

from proxy import keys
from proxy.keys import KeyRecord
from proxy.secretbox import SecretBox


class KeyCache:
    def __init__(self, engine: AsyncEngine, box: SecretBox, ttl_s: float):
        self._engine = engine
        self._box = box
        self._ttl = ttl_s
        self._entries: dict[str, tuple[float, KeyRecord]] = {}

    async def get(self, key_id: str) -> KeyRecord | None:
        entry = self._entries.get(key_id)
        now = time.monotonic()
        if entry and now - entry[0] < self._ttl:
            return entry[1]
        async with self._engine.connect() as conn:
            record = await keys.load_for_auth(conn, self._box, key_id)
        if record is None:
            self._entries.pop(key_id, None)
        else:
            self._entries[key_id] = (now, record)
        return record

    def forget(self, key_id: str) -> None:
        self._entries.pop(key_id, None)
