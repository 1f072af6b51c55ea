"""Looking up the objects a key created (record-level scope, full refunds priced from the
charge) against a real Postgres, on one asyncpg connection whose prepared plan outlives the
table's size (the request path's pool keeps its connections the same way)."""

from __future__ import annotations

import asyncpg
import pytest

from proxy import records

# What this backend has read and not yet reported: within one transaction, its reads so far.
ROWS_READ = "SELECT idx_tup_fetch + seq_tup_read FROM pg_stat_xact_user_tables WHERE relname = 'key_objects'"


@pytest.fixture()
async def conn(pg_url):
    connection = await asyncpg.connect(pg_url)
    yield connection
    await connection.close()


async def test_a_lookup_probes_the_ids_asked_for_however_many_objects_the_key_created(conn):
    """asyncpg prepares the lookup once per connection and Postgres may then keep a generic plan,
    made while the key had created two objects. A key records every charge it creates, so by
    the time it has 20,000 the lookup must still read only the rows it asked for."""
    key = "key_records_scan_test"
    await conn.execute("INSERT INTO key_objects (key_id, object_id, kind) VALUES ($1, 'ch_a', 'charge'), "
                       "($1, 'ch_b', 'charge')", key)
    for _ in range(8):  # past the five custom plans after which Postgres may settle on a generic one
        assert set(await records.lookup(conn, key, ["ch_a", "ch_b"])) == {"ch_a", "ch_b"}
    await conn.execute("INSERT INTO key_objects (key_id, object_id, kind) "
                       "SELECT $1, 'ch_old_' || g, 'charge' FROM generate_series(1, 20000) g", key)
    async with conn.transaction():
        before = await conn.fetchval(ROWS_READ)
        found = await records.lookup(conn, key, ["ch_a", "ch_old_7", "ch_missing"])
        read = await conn.fetchval(ROWS_READ) - before
    assert set(found) == {"ch_a", "ch_old_7"}
    assert read < 10, read
