"""Migrations are the only way the schema changes: they must build exactly what
proxy/schema.py declares, and go down and up again cleanly."""

from __future__ import annotations

import psycopg
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from proxy import migrate
from proxy.schema import metadata


def _sync_url(url: str) -> str:
    return "postgresql+psycopg://" + url.partition("://")[2]


def test_migrations_build_exactly_the_declared_schema(scratch_db):
    migrate.upgrade(scratch_db)
    engine = create_engine(_sync_url(scratch_db))
    with engine.connect() as conn:
        partitions = {name for (name,) in conn.exec_driver_sql(
            "SELECT c.relname FROM pg_class c WHERE c.relispartition AND c.relkind = 'r'")}
        context = MigrationContext.configure(conn, opts={"include_name": _not_in(partitions)})
        diff = compare_metadata(context, metadata)
    engine.dispose()
    assert diff == []


def _not_in(partitions: set[str]):
    """Monthly partitions of audit_events are made at run time, not declared in schema.py."""
    return lambda name, type_, parent_names: not (type_ == "table" and name in partitions)


def test_downgrade_to_base_and_up_again(scratch_db):
    migrate.upgrade(scratch_db)
    migrate.downgrade(scratch_db, "base")
    with psycopg.connect(scratch_db) as conn:
        tables = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    assert tables == [("alembic_version",)]
    migrate.upgrade(scratch_db)
    with psycopg.connect(scratch_db) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (migrate.head_revision(),)
