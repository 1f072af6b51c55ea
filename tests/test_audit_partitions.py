"""Retention: audit_events is partitioned by month (UTC). Rows land in their month; the table
written before partitioning keeps its rows; a past month is archived (signed into the chain,
then detached) and `tollgate audit verify` tells archived rows from deleted ones."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import psycopg
import pytest

from proxy import migrate
from tests.support.audit_cli import tollgate, verify

NOW = datetime.now(UTC)
THIS_MONTH = date(NOW.year, NOW.month, 1)


def months_before(months: int) -> date:
    index = NOW.year * 12 + NOW.month - 1 - months
    return date(index // 12, index % 12 + 1, 1)


PAST = months_before(2)
PAST_NAME = f"audit_events_{PAST:%Y_%m}"


def insert_call(conn: psycopg.Connection, audit_id: int, ts: str, run: str = "run-1") -> None:
    conn.execute(
        "INSERT INTO audit_events (id, ts, request_id, agent_run_id, key_id, vendor, method, path, endpoint, "
        "decision, state, predicted_usd, cost_usd, cost_source, upstream_status) "
        "VALUES (%s, %s::timestamptz, %s, %s, 'key_a', 'stripe', 'POST', '/v1/charges', 'POST /v1/charges', "
        "'allowed', 'final', 2.5, 2.5, 'parsed', 200)", (audit_id, ts, f"req{audit_id}", run))


def partition_of(conn: psycopg.Connection, audit_id: int) -> str:
    return conn.execute("SELECT tableoid::regclass::text FROM audit_events WHERE id = %s", (audit_id,)).fetchone()[0]


@pytest.fixture()
def db(scratch_db):
    migrate.upgrade(scratch_db)
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        yield scratch_db, conn


def test_each_row_lands_in_its_months_partition_and_months_ahead_exist(db):
    _, conn = db
    names = {row[0] for row in conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'audit_events'::regclass")}
    ahead = {f"audit_events_{months_before(-i):%Y_%m}" for i in range(4)}
    assert ahead | {"audit_events_default"} == names
    insert_call(conn, 1, NOW.isoformat())
    assert partition_of(conn, 1) == f"audit_events_{THIS_MONTH:%Y_%m}"


def test_a_row_for_a_month_without_a_partition_waits_in_default_and_moves_when_it_is_made(db):
    _, conn = db
    insert_call(conn, 1, f"{PAST:%Y-%m}-15T12:00:00Z")
    assert partition_of(conn, 1) == "audit_events_default"
    assert conn.execute("SELECT tollgate_audit_partition(%s)", (PAST,)).fetchone()[0] == PAST_NAME
    assert partition_of(conn, 1) == PAST_NAME
    assert conn.execute("SELECT count(*) FROM audit_events_default").fetchone()[0] == 0


def test_rows_written_before_partitioning_are_kept_and_ids_continue(scratch_db):
    migrate.upgrade(scratch_db, "0006")
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        for i in range(1, 4):
            conn.execute(
                "INSERT INTO audit_events (ts, request_id, agent_run_id, vendor, method, path, decision, state) "
                "VALUES (now() - %s * interval '40 days', %s, 'run-old', 'stripe', 'POST', '/v1/charges', "
                "'allowed', 'final')", (i, f"old{i}"))
        migrate.upgrade(scratch_db)
        rows = conn.execute("SELECT id, tableoid::regclass::text FROM audit_events "
                            "WHERE agent_run_id = 'run-old' ORDER BY id").fetchall()
        assert rows == [(1, "audit_events_legacy"), (2, "audit_events_legacy"), (3, "audit_events_legacy")]
        next_id = conn.execute(
            "INSERT INTO audit_events (request_id, vendor, method, path, decision, state) "
            "VALUES ('new', 'stripe', 'POST', '/v1/charges', 'allowed', 'final') RETURNING id").fetchone()[0]
        assert next_id == 4
        migrate.downgrade(scratch_db, "0006")
        assert conn.execute("SELECT count(*) FROM audit_events").fetchone()[0] == 4
        assert conn.execute("SELECT relkind FROM pg_class WHERE relname = 'audit_events'").fetchone()[0] == "r"


@pytest.fixture()
def archived_month(db, tmp_path):
    """Three sealed calls two months ago and two a minute ago; the old month archived."""
    url, conn = db
    conn.execute("SELECT tollgate_audit_partition(%s)", (PAST,))
    for audit_id in (1, 2, 3):
        insert_call(conn, audit_id, f"{PAST:%Y-%m}-0{audit_id}T08:00:00Z")
    for audit_id in (4, 5):
        insert_call(conn, audit_id, "now", run="run-now")
        conn.execute("UPDATE audit_events SET ts = now() - interval '1 minute' WHERE id = %s", (audit_id,))
    tollgate("audit", "seal", url=url)
    archived = json.loads(tollgate("audit", "archive", "--month", f"{PAST:%Y-%m}", url=url).stdout)
    assert archived["partition"] == PAST_NAME and archived["rows"] == 3
    public = tmp_path / "audit.pem"
    public.write_text(tollgate("audit", "public-key", url=url).stdout)
    return url, conn, public


def test_an_archived_month_is_detached_whole_and_verify_accounts_for_it(archived_month):
    url, conn, public = archived_month
    assert [r[0] for r in conn.execute("SELECT id FROM audit_events ORDER BY id")] == [4, 5]
    assert conn.execute(f"SELECT count(*) FROM {PAST_NAME}").fetchone()[0] == 3  # waiting for pg_dump
    intact = verify(url, public)
    assert intact.returncode == 0, intact.stderr
    assert intact.stdout.strip() == ("audit chain intact: 5 sealed row(s), 3 of them in archived partitions, "
                                     "1 signed head(s)")


def test_marking_a_deleted_row_as_archived_does_not_hide_it(archived_month):
    url, conn, public = archived_month
    conn.execute("DELETE FROM audit_events WHERE id = 5")
    conn.execute("UPDATE audit_chain SET archived_in = %s WHERE audit_id = 5", (PAST_NAME,))
    broken = verify(url, public)
    assert broken.returncode == 1
    assert f"Archive {PAST_NAME} does not match its signed record" in broken.stderr


def test_a_restored_archive_is_verified_row_by_row_again(archived_month):
    url, conn, public = archived_month
    conn.execute(f"UPDATE {PAST_NAME} SET cost_usd = 0.01 WHERE id = 2")  # edited while out of the database
    conn.execute(f"ALTER TABLE audit_events ATTACH PARTITION {PAST_NAME} "
                 f"FOR VALUES FROM ('{PAST:%Y-%m-%d}T00:00:00Z') TO ('{months_before(1):%Y-%m-%d}T00:00:00Z')")
    broken = verify(url, public)
    assert broken.returncode == 1 and "Audit row 2 (chain entry 2) was altered" in broken.stderr


def test_only_a_fully_sealed_past_month_can_be_archived(db):
    url, conn = db
    current = tollgate("audit", "archive", "--month", f"{THIS_MONTH:%Y-%m}", url=url, check=False)
    assert current.returncode == 1 and "still takes new rows" in current.stderr
    conn.execute("SELECT tollgate_audit_partition(%s)", (PAST,))
    insert_call(conn, 1, f"{PAST:%Y-%m}-02T08:00:00Z")
    unsealed = tollgate("audit", "archive", "--month", f"{PAST:%Y-%m}", url=url, check=False)
    assert unsealed.returncode == 1 and "1 row(s) of" in unsealed.stderr and "tollgate audit seal" in unsealed.stderr
    missing = tollgate("audit", "archive", "--month", f"{months_before(30):%Y-%m}", url=url, check=False)
    assert missing.returncode == 1 and "is not an attached partition" in missing.stderr
