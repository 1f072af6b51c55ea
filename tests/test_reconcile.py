"""Guarantee 7 at the gate: a reservation whose process died expires and is reconciled;
a late settle corrects it; nothing is counted twice and no audit row is lost.

A reconcile sweeps every expired reservation in its database, so these tests count on a database
of their own (``reconcile_db``): on the suite's, another test's abandoned reservations (the gate
tests leave hundreds, reconciled by the suite proxy a minute later) would be swept with theirs."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest
from sqlalchemy import text

from proxy import db, keys, migrate, secretbox
from proxy.gate import Gate, PolicyRef
from proxy.hotdb import HotDB
from proxy.rows import AuditRow, SettlePatch
from tests.support.databases import database_of_its_own
from tests.support.tollgate import MASTER_KEY, settings_for
from vendors import registry

# The suite database has one master key, as every installation does: its tag key is sealed under it.
BOX = secretbox.SecretBox(secretbox.decode_master_key(MASTER_KEY))
CAPS = [{"usd": "100", "window": "day", "action": "block"}]


@pytest.fixture(scope="module")
def reconcile_db(pg_url: str) -> Iterator[str]:
    with database_of_its_own(pg_url, "reconcile") as url:
        migrate.upgrade(url)
        yield url


async def setup(pg_url):
    engine = db.create_engine(pg_url, settings_for(pg_url, {}))
    hot = await HotDB.open(pg_url, settings_for(pg_url, {}))
    document = {"vendor": "stripe", "endpoints": {"allow": ["POST /v1/charges"]}, "caps": CAPS}
    async with engine.begin() as conn:
        described, _ = await keys.create_key(conn, BOX, registry.load(), vendor="stripe", upstream_secret="sk_test_x",
                                             policy_document=document)
    ref = PolicyRef(described["policy_id"], 1, "enforce", json.dumps(CAPS))
    return engine, hot, described["id"], ref


def row(key_id: str) -> AuditRow:
    return AuditRow(uuid.uuid4().hex, "stripe", "POST", "/v1/charges", 1.0, key_id=key_id, endpoint="POST /v1/charges")


async def expire(engine, audit_id: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE reservations SET expires_at = now() - interval '1 second' "
                                "WHERE audit_id = :i"), {"i": audit_id})


async def state(engine, key_id: str, audit_id: int) -> tuple:
    async with engine.connect() as conn:
        counter = (await conn.execute(text(
            "SELECT spent_usd, reserved_usd FROM budget_counters WHERE key_id = :k"), {"k": key_id})).one()
        audit = (await conn.execute(text(
            "SELECT state, reason, cost_usd, cost_source FROM audit_events WHERE id = :i"), {"i": audit_id})).one()
    return tuple(counter), tuple(audit)


async def test_an_abandoned_reservation_is_charged_then_corrected_by_a_late_settle(reconcile_db):
    engine, hot, key_id, ref = await setup(reconcile_db)
    try:
        dying = Gate(hot, reservation_ttl_s=300)  # a process that will never settle
        admitted = await dying.admit(key_id, ref, row(key_id), Decimal("30"))
        survivor = Gate(hot, reservation_ttl_s=300)
        assert await survivor.reconcile() == 0  # not expired yet: left alone
        await expire(engine, admitted.audit_id)  # time passes: the TTL runs out

        closed = await asyncio.gather(survivor.reconcile(), survivor.reconcile())  # two processes sweeping
        assert sorted(closed) == [0, 1]
        assert await state(engine, key_id, admitted.audit_id) == (
            (Decimal("30"), Decimal("0")), ("reconciled", "reservation_expired", Decimal("30"), "estimated"))

        # The process was only slow: its settle arrives with the real cost.
        await dying.settle(admitted, Decimal("12.5"), SettlePatch("parsed", 1.0, upstream_status=200))
        assert await state(engine, key_id, admitted.audit_id) == (
            (Decimal("12.5"), Decimal("0")), ("final", "reservation_expired", Decimal("12.5"), "parsed"))
        assert await survivor.reconcile() == 0
        assert (await state(engine, key_id, admitted.audit_id))[0] == (Decimal("12.5"), Decimal("0"))
    finally:
        await hot.close()
        await engine.dispose()


async def test_a_settled_call_is_never_reconciled(reconcile_db):
    engine, hot, key_id, ref = await setup(reconcile_db)
    try:
        gate = Gate(hot, reservation_ttl_s=300)
        admitted = await gate.admit(key_id, ref, row(key_id), Decimal("7"))
        await gate.settle(admitted, Decimal("7"), SettlePatch("parsed", 1.0))
        await expire(engine, admitted.audit_id)
        assert await gate.reconcile() == 0
        assert await state(engine, key_id, admitted.audit_id) == (
            (Decimal("7"), Decimal("0")), ("final", None, Decimal("7"), "parsed"))
    finally:
        await hot.close()
        await engine.dispose()


async def test_the_sweep_drops_counter_rows_of_windows_long_over_and_keeps_the_rest(reconcile_db):
    engine, hot, key_id, _ = await setup(reconcile_db)
    buckets = {  # bucket: minutes since it was last touched
        "minute:2026-01-01T10:00": 16, "minute:2026-01-01T10:05": 5, "hour:2026-01-01T08": 181,
        "hour:2026-01-01T10": 60, "day:2025-12-01": 90 * 24 * 60, "run:r-old": 90 * 24 * 60, "total": 10_000}
    try:
        async with engine.begin() as conn:
            for bucket, age in buckets.items():
                await conn.execute(text(
                    "INSERT INTO budget_counters (key_id, bucket, spent_usd, updated_at) "
                    "VALUES (:k, :b, 1, now() - make_interval(mins => :age))"), {"k": key_id, "b": bucket, "age": age})
        await Gate(hot, reservation_ttl_s=300).reconcile()
        async with engine.connect() as conn:
            kept = set((await conn.execute(text("SELECT bucket FROM budget_counters WHERE key_id = :k"),
                                           {"k": key_id})).scalars())
        assert kept == set(buckets) - {"minute:2026-01-01T10:00", "hour:2026-01-01T08"}
    finally:
        await hot.close()
        await engine.dispose()
