"""asyncpg pools for the request path, without SQLAlchemy's async adaptation in the way.

Two pools, because two kinds of commit:
- ``durable``: the gate. Its commit is what lets a request be forwarded (guarantee 2), so
  it waits for the WAL flush like any normal commit.
- ``relaxed``: the settle, with ``synchronous_commit = off``. If Postgres crashes and loses a
  settle, the reservation it would have closed is still there (durably, from the gate), so
  the reconciler charges its estimate and marks the row: nothing is lost, and no request
  waits for a second fsync.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from proxy.config import Settings


def _dsn(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"postgresql://{rest}" if scheme in ("postgres", "postgresql+asyncpg") else url


async def _no_reset(connection: asyncpg.Connection) -> None:
    return None


class HotDB:
    def __init__(self, durable: asyncpg.Pool, relaxed: asyncpg.Pool):
        self._durable = durable
        self._relaxed = relaxed

    @classmethod
    async def open(cls, url: str, settings: Settings) -> HotDB:
        # reset=_no_reset: asyncpg otherwise sends a reset statement (RESET ALL, UNLISTEN, ...)
        # on every release, a second round trip per call; these connections never change
        # session state, so there is nothing to reset.
        common = {"dsn": _dsn(url), "min_size": 0, "timeout": settings.db_timeout_s,
                  "command_timeout": settings.db_timeout_s, "reset": _no_reset}
        durable = await asyncpg.create_pool(
            max_size=settings.db_pool_size, server_settings={"application_name": "tollgate-gate"}, **common)
        relaxed = await asyncpg.create_pool(
            max_size=max(2, settings.db_pool_size // 2),
            server_settings={"application_name": "tollgate-settle", "synchronous_commit": "off"}, **common)
        return cls(durable, relaxed)

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        async with self._durable.acquire() as conn:
            return await conn.fetchrow(sql, *args)

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        async with self._durable.acquire() as conn:
            rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
            return rows

    async def fetch_relaxed(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        async with self._relaxed.acquire() as conn:
            rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
            return rows

    async def fetchval(self, sql: str, *args: Any) -> Any:
        async with self._durable.acquire() as conn:
            return await conn.fetchval(sql, *args)

    def pool_stats(self) -> list[tuple[str, str, int]]:
        """(pool, state, connections) for the metrics endpoint."""
        stats = []
        for name, pool in (("gate", self._durable), ("settle", self._relaxed)):
            idle = pool.get_idle_size()
            stats += [(name, "idle", idle), (name, "busy", pool.get_size() - idle), (name, "max", pool.get_max_size())]
        return stats

    async def close(self) -> None:
        await self._durable.close()
        await self._relaxed.close()
