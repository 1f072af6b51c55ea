"""Database access through SQLAlchemy Core (async, asyncpg underneath): admin, CLI, key loads.

The request path's gate and settle use plain asyncpg pools instead (proxy/hotdb.py). A
process keeps three engines here, so that nothing urgent queues behind the console: with
10,000 keys its Keys page once held every admin connection, and a revoke issued meanwhile
failed after 9.2 s while the key kept working.

- ``admin``: the admin API and the console (lists, spend, policies, approvals);
- ``revoke``: revocations only, one connection (a second if two come at once);
- ``keys``: the request path's key loads (proxy/keycache.py), whose cache misses must not
  wait for a list to finish either;
- ``alerts``: the alert delivery loop (proxy/alerts/delivery.py), whose transaction stays open
  while it waits for webhook receivers: it must not hold one of the admin connections.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from proxy import embedded
from proxy.config import Settings


def resolve_url(settings: Settings) -> str:
    """The libpq URL in use: DATABASE_URL, or the embedded server's (started if needed)."""
    if settings.database_url:
        return settings.database_url
    return embedded.ensure_running(settings.data_dir)


def sqlalchemy_url(url: str) -> str:
    scheme, _, rest = url.partition("://")
    if scheme in ("postgres", "postgresql", "postgresql+asyncpg"):
        return f"postgresql+asyncpg://{rest}"
    raise ValueError(f"Unsupported database URL scheme {scheme!r}: use postgresql://...")


def redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


@dataclass(frozen=True)
class Purpose:
    """What an engine is for: its pool's size and the name its connections show in pg_stat_activity."""

    application_name: str
    pool_size: int
    max_overflow: int
    pre_ping: bool = False  # check a pooled connection before use: one round trip more


ADMIN = Purpose("tollgate", 4, 4)
# Revocations are rare and must work the first time, even on a connection that sat idle
# through a database restart: worth the extra round trip.
REVOKE = Purpose("tollgate-revoke", 1, 1, pre_ping=True)
KEYS = Purpose("tollgate-keys", 2, 2)
ALERTS = Purpose("tollgate-alerts", 1, 1)


def create_engine(url: str, settings: Settings, purpose: Purpose = ADMIN) -> AsyncEngine:
    # The request path's gate and settle have their own pools (proxy/hotdb.py), so a few
    # connections are plenty for each purpose here.
    return create_async_engine(
        sqlalchemy_url(url),
        pool_size=min(purpose.pool_size, settings.db_pool_size),
        max_overflow=purpose.max_overflow,
        pool_timeout=settings.db_timeout_s,
        pool_pre_ping=purpose.pre_ping,
        connect_args={"timeout": settings.db_timeout_s, "command_timeout": settings.db_timeout_s,
                      "server_settings": {"application_name": purpose.application_name}},
    )
