"""The gate and the settle against a real Postgres: caps exact under concurrency,
revocation read fresh, stale policies detected, and failure to reach the database
surfacing as Unavailable (the handler turns that into a fail-closed 503)."""

from __future__ import annotations

import asyncio
import json
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import text

from proxy import db, keys, secretbox
from proxy.errors import Unavailable
from proxy.gate import Gate, PolicyRef
from proxy.hotdb import HotDB
from tests.support.tollgate import settings_for

BOX = secretbox.SecretBox(b"k" * 32)


@pytest.fixture()
async def engine(pg_url):
    engine = db.create_engine(pg_url, settings_for(pg_url, {}, db_pool_size=20))
    yield engine
    await engine.dispose()


@pytest.fixture()
async def hot(pg_url):
    pools = await HotDB.open(pg_url, settings_for(pg_url, {}, db_pool_size=20))
    yield pools
    await pools.close()


def ref(key: tuple[str, str], caps: list[dict], version: int = 1, mode: str = "enforce") -> PolicyRef:
    return PolicyRef(key[1], version, mode, json.dumps(caps))


async def new_key(engine, caps: list[dict]) -> tuple[str, str]:
    document = {"vendor": "stripe", "endpoints": {"allow": ["POST /v1/charges"]}, "caps": caps}
    async with engine.begin() as conn:
        described, _ = await keys.create_key(conn, BOX, vendor="stripe", upstream_secret="sk_test_x",
                                             policy_document=document)
    return described["id"], described["policy_id"]


def row(key_id: str, run_id: str | None = None) -> dict:
    return {"request_id": uuid.uuid4().hex, "key_id": key_id, "vendor": "stripe", "method": "POST",
            "path": "/v1/charges", "endpoint": "POST /v1/charges", "decision": "allowed", "agent_run_id": run_id}


async def counters(engine, key_id: str) -> dict[str, tuple]:
    async with engine.connect() as conn:
        result = await conn.execute(
            text("SELECT bucket, spent_usd, reserved_usd, requests FROM budget_counters WHERE key_id = :k"),
            {"k": key_id})
        return {r.bucket.split(":")[0]: (r.spent_usd, r.reserved_usd, r.requests) for r in result}


async def test_concurrent_gates_never_reserve_past_a_cap(engine, hot):
    caps = [{"usd": "10.00", "window": "day"}]
    key = await new_key(engine, caps)
    key_id = key[0]
    gate = Gate(hot, reservation_ttl_s=60)

    async def one() -> str:
        admission = await gate.admit(key_id, ref(key, caps, 1), row(key_id), Decimal("0.70"))
        return admission.decision

    decisions = await asyncio.gather(*(one() for _ in range(40)))

    assert decisions.count("allowed") == 14  # 14 x 0.70 = 9.80; a 15th would make 10.50
    assert await counters(engine, key_id) == {"day": (Decimal(0), Decimal("9.80"), 14)}


async def test_settle_replaces_the_reservation_with_the_actual_cost(engine, hot):
    caps = [{"usd": "100", "window": "day"}, {"usd": "100", "window": "month"}, {"requests": 5, "window": "run"}]
    key = await new_key(engine, caps)
    key_id = key[0]
    gate = Gate(hot, reservation_ttl_s=60)
    admitted = await gate.admit(key_id, ref(key, caps, 1), row(key_id, "run-1"), Decimal("12.00"))
    assert await counters(engine, key_id) == {
        "day": (0, Decimal("12"), 1), "month": (0, Decimal("12"), 1), "run": (0, Decimal("12"), 1)}

    await gate.settle(admitted, Decimal("11.50"), {"cost_source": "parsed", "upstream_status": 200})

    assert await counters(engine, key_id) == {
        "day": (Decimal("11.5"), 0, 1), "month": (Decimal("11.5"), 0, 1), "run": (Decimal("11.5"), 0, 1)}
    async with engine.connect() as conn:
        audit = (await conn.execute(text("SELECT * FROM audit_events WHERE id = :i"), {"i": admitted.audit_id})).one()
        pending = await conn.scalar(text("SELECT count(*) FROM reservations WHERE audit_id = :i"),
                                    {"i": admitted.audit_id})
    assert (audit.state, audit.cost_usd, audit.cost_source, audit.upstream_status) == ("final", Decimal("11.5"), "parsed", 200)
    assert pending == 0


async def test_concurrent_settles_share_a_batch_and_a_bad_one_spoils_none_of_the_others(engine, hot):
    caps = [{"usd": "100", "window": "day"}]
    keys_ = [await new_key(engine, caps) for _ in range(3)]
    gate = Gate(hot, reservation_ttl_s=60, lanes=1)
    admitted = [await gate.admit(k[0], ref(k, caps), row(k[0]), Decimal("2")) for k in keys_ for _ in range(4)]
    good = {"cost_source": "parsed", "upstream_status": 200}
    bad = {"cost_source": "parsed", "upstream_status": "not a number"}  # the settle's cast fails

    settled = await asyncio.gather(*(gate.settle(a, Decimal("1.5"), bad if i == 5 else good)
                                     for i, a in enumerate(admitted)))

    assert settled == [i != 5 for i in range(12)]
    spoiled = admitted[5]
    async with engine.connect() as conn:
        states = dict((await conn.execute(text("SELECT id, state FROM audit_events WHERE id = ANY(:ids)"),
                                          {"ids": [a.audit_id for a in admitted]})).all())
        left = await conn.scalar(text("SELECT array_agg(audit_id) FROM reservations WHERE audit_id = ANY(:ids)"),
                                 {"ids": [a.audit_id for a in admitted]})
    assert {i for i, state in states.items() if state == "pending"} == {spoiled.audit_id}
    assert left == [spoiled.audit_id]  # its reservation stays for the reconciler, at its estimate
    spent = {k[0]: await counters(engine, k[0]) for k in keys_}
    assert spent[spoiled.key_id] == {"day": (Decimal("4.5"), Decimal("2"), 4)}
    assert [v for k, v in spent.items() if k != spoiled.key_id] == [{"day": (Decimal("6"), 0, 4)}] * 2


async def test_a_bad_item_in_a_gate_batch_is_refused_alone(engine, hot):
    caps = [{"usd": "100", "window": "day"}]
    key = await new_key(engine, caps)
    gate = Gate(hot, reservation_ttl_s=60, lanes=1)
    rows = [row(key[0]) for _ in range(6)]
    rows[3]["amount_minor"] = "not a number"  # the audit row's bigint column refuses it

    answers = await asyncio.gather(*(gate.admit(key[0], ref(key, caps), r, Decimal("1")) for r in rows),
                                   return_exceptions=True)

    assert [a.decision if not isinstance(a, Exception) else a.reason for a in answers] == [
        "allowed", "allowed", "allowed", "gate_conflict", "allowed", "allowed"]
    assert await counters(engine, key[0]) == {"day": (0, Decimal("5"), 5)}


async def test_request_caps_count_calls_per_run(engine, hot):
    caps = [{"requests": 2, "window": "run"}]
    key = await new_key(engine, caps)
    key_id = key[0]
    gate = Gate(hot, reservation_ttl_s=60)
    decisions = [(await gate.admit(key_id, ref(key, caps, 1), row(key_id, "run-a"), Decimal(0))).decision
                 for _ in range(3)]
    other_run = await gate.admit(key_id, ref(key, caps, 1), row(key_id, "run-b"), Decimal(0))
    assert decisions == ["allowed", "allowed", "blocked"]
    assert other_run.decision == "allowed"


async def test_revocation_is_read_by_the_gate_not_cached(engine, hot):
    key = await new_key(engine, [])
    key_id = key[0]
    gate = Gate(hot, reservation_ttl_s=60)
    assert (await gate.admit(key_id, ref(key, [], 1), row(key_id), Decimal(1))).forward
    async with engine.begin() as conn:
        await keys.revoke_key(conn, key_id)
    blocked = await gate.admit(key_id, ref(key, [], 1), row(key_id), Decimal(1))
    assert (blocked.decision, blocked.reason) == ("blocked", "key_revoked")


async def test_a_stale_policy_version_is_sent_back_without_writing(engine, hot):
    key = await new_key(engine, [])
    key_id = key[0]
    gate = Gate(hot, reservation_ttl_s=60)
    stale = await gate.admit(key_id, ref(key, [], 7), row(key_id), Decimal(1))
    assert (stale.decision, stale.audit_id) == ("stale", None)


async def test_blocked_rows_do_not_reserve(engine, hot):
    caps = [{"usd": "5", "window": "day"}]
    key = await new_key(engine, caps)
    key_id = key[0]
    gate = Gate(hot, reservation_ttl_s=60)
    blocked_row = {**row(key_id), "decision": "blocked", "reason": "endpoint_not_allowed", "message": "no"}
    admission = await gate.admit(key_id, ref(key, caps), blocked_row, Decimal(3))
    assert (admission.decision, admission.reason) == ("blocked", "endpoint_not_allowed")
    assert await counters(engine, key_id) == {}


async def test_an_unreachable_database_raises_unavailable(pg_url):
    dead = "postgresql://postgres@127.0.0.1:9/postgres"  # port 9 (discard): nothing listens
    pools = await HotDB.open(dead, settings_for(dead, {}, db_timeout_s=1.0))
    try:
        with pytest.raises(Unavailable) as raised:
            await Gate(pools, 60).admit("key_x", PolicyRef("pol_x", 1, "enforce", "[]"), row("key_x"), Decimal(1))
        assert raised.value.reason == "database_unavailable"
    finally:
        await pools.close()
