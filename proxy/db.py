"""Database access: one async SQLAlchemy engine (asyncpg underneath) per process.

The request path calls two SQL functions (``tollgate_gate`` and ``tollgate_settle``) on the
raw asyncpg connection for speed; everything else goes through SQLAlchemy Core.
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
    return create_async_engine(
        sqlalchemy_url(url),
        pool_size=settings.db_pool_size,
        max_overflow=0,
        pool_timeout=settings.db_timeout_s,
        pool_pre_ping=False,
        connect_args={"timeout": settings.db_timeout_s, "command_timeout": settings.db_timeout_s,
                      "server_settings": {"application_name": "tollgate"}},
    )
