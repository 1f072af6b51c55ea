"""Alembic environment: async engine, URL from the caller or from Tollgate's settings."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from proxy.schema import metadata

config = context.config
target_metadata = metadata
# Replicas (or `tollgate db upgrade` beside a starting serve) migrating one database at once: the
# second waits on this lock for the first's transaction, then reads the version it committed and
# has nothing left to do, instead of running the same DDL again and failing half-way.
MIGRATION_LOCK = 0x7011_D0B1


def _url() -> str:
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from proxy import config as settings_module
    from proxy import db

    return db.resolve_url(settings_module.load())


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def _run_sync(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        context.run_migrations()


async def run_migrations_online() -> None:
    engine = create_async_engine(_url())
    async with engine.connect() as connection:
        await connection.run_sync(_run_sync)
    await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
