"""Database access through SQLAlchemy Core (async, asyncpg underneath): admin, CLI, key loads.

The request path's gate and settle use plain asyncpg pools instead (proxy/hotdb.py).
"""

from __future__ import annotations

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


def create_engine(url: str, settings: Settings) -> AsyncEngine:
    # This engine serves the admin API and key loads; the request path has its own pools
    # (proxy/hotdb.py), so a few connections are plenty.
    return create_async_engine(
        sqlalchemy_url(url),
        pool_size=min(4, settings.db_pool_size),
        max_overflow=4,
        pool_timeout=settings.db_timeout_s,
        pool_pre_ping=False,
        connect_args={"timeout": settings.db_timeout_s, "command_timeout": settings.db_timeout_s,
                      "server_settings": {"application_name": "tollgate"}},
    )
