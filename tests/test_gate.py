"""The gate and the settle against a real Postgres: caps exact under concurrency,
revocation read fresh, stale policies detected, failure to reach the database
surfacing as Unavailable (the handler turns that into a fail-closed 503), and a batch
deciding its items as if they came one at a time (migrations/sql/v0012.py says how; the
live texts are those migrations/sql/live.py names)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import text

from proxy import db, keys, secretbox
from proxy.errors import Unavailable
from proxy.gate import Gate, PolicyRef
from proxy.hotdb import HotDB
from proxy.rows import AuditRow, SettlePatch
from tests.support.tollgate import MASTER_KEY, settings_for
from vendors import registry

# The suite database has one master key, as every installation does: its tag key is sealed under it.
BOX = secretbox.SecretBox(secretbox.decode_master_key(MASTER_KEY))


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
        described, _ = await keys.create_key(conn, BOX, registry.load(), vendor="stripe", upstream_secret="sk_test_x",
                                             policy_document=document)
    return described["id"], described["policy_id"]


def row(key_id: str, run_id: str | None = None) -> AuditRow:
    return AuditRow(uuid.uuid4().hex, "stripe", "POST", "/v1/charges", 1.0, key_id=key_id,
                    endpoint="POST /v1/charges", agent_run_id=run_id)


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
    assert (audit.state, audit.cost_usd, audit.cost_source, audit.upstream_status) == (
        "final", Decimal("11.5"), "parsed", 200)
    assert pending == 0


async def test_concurrent_settles_share_a_batch_and_a_bad_one_spoils_none_of_the_others(engine, hot):
    caps = [{"usd": "100", "window": "day"}]
    keys_ = [await new_key(engine, caps) for _ in range(3)]
    gate = Gate(hot, reservation_ttl_s=60, lanes=1)
    admitted = [await gate.admit(k[0], ref(k, caps), row(k[0]), Decimal("2")) for k in keys_ for _ in range(4)]
    good = SettlePatch("parsed", 1.0, upstream_status=200)
    bad = SettlePatch("parsed", 1.0, upstream_status="not a number")  # type: ignore[arg-type]  # the cast fails

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
    rows[3].amount_minor = "not a number"  # type: ignore[assignment]  # the bigint column refuses it

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
    blocked_row = row(key_id)
    blocked_row.refuse("blocked", "endpoint_not_allowed", "no")
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


# A batch decides as one call at a time: the same requests on two keys with the same policy,
# in batches through tollgate_gate_batch and one by one through tollgate_gate.

BATCH = text("SELECT idx, decision, reason, message FROM tollgate_gate_batch(CAST(:items AS jsonb)) ORDER BY idx")
ONE = text("SELECT decision, reason, message FROM tollgate_gate(:key_id, :policy_id, :policy_version, "
           "CAST(:row AS jsonb), CAST(:caps AS jsonb), :predicted, :ttl, :mode, NULL)")
FAST = text("SELECT count(*) FROM tollgate_gate_fast(:key_id, CAST(:items AS jsonb), :idx)")


def item(key: tuple[str, str], caps: list[dict], predicted: str, run: str, decision: str, mode: str) -> dict:
    audit_row = {**dataclasses.asdict(row(key[0], run)), "decision": decision}
    if decision == "blocked":
        audit_row |= {"reason": "endpoint_not_allowed", "message": "POST /v1/payouts is not allowed."}
    return {"key_id": key[0], "policy_id": key[1], "policy_version": 1, "row": audit_row, "caps": caps,
            "predicted": predicted, "ttl": 60, "mode": mode, "approval": None}


def requests(seed: int, count: int) -> list[tuple[str, str, str]]:
    """(predicted USD, run id, the policy's own verdict) for each request, reproducibly."""
    rng = random.Random(seed)
    return [(f"{rng.choice([0, 0.5, 1, 2.25, 3])}", rng.choice(["run-a", "run-b", "run-c"]),
             "blocked" if rng.random() < 0.15 else "allowed") for _ in range(count)]


async def decide_in_batches(engine, key, caps, mode, calls, sizes) -> list[tuple]:
    items = [item(key, caps, p, run, verdict, mode) for p, run, verdict in calls]
    answers, start, rng = [], 0, random.Random(len(items))
    async with engine.connect() as conn:
        while start < len(items):
            batch = items[start:start + rng.choice(sizes)]
            result = await conn.execute(BATCH, {"items": json.dumps(batch)})
            await conn.commit()
            answers += [(r.decision, r.reason, r.message) for r in result]
            start += len(batch)
    return answers


async def decide_one_by_one(engine, key, caps, mode, calls) -> list[tuple]:
    answers = []
    async with engine.connect() as conn:
        for p, run, verdict in calls:
            one = item(key, caps, p, run, verdict, mode)
            result = (await conn.execute(ONE, {
                "key_id": key[0], "policy_id": key[1], "policy_version": 1, "row": json.dumps(one["row"]),
                "caps": json.dumps(caps), "predicted": Decimal(p), "ttl": 60, "mode": mode})).one()
            await conn.commit()
            answers.append(tuple(result))
    return answers


SCENARIOS = {
    "usd per day and per run": [{"usd": "20", "window": "day"}, {"usd": "6", "window": "run"}],
    "requests in total and per run": [{"requests": 9, "window": "total"}, {"requests": 4, "window": "run"}],
    "usd and requests sharing the day bucket": [{"usd": "15", "window": "day"}, {"requests": 7, "window": "day"}],
    "no caps": [],
}


@pytest.mark.parametrize("mode", ["enforce", "shadow"])
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
async def test_a_batch_decides_as_one_call_at_a_time(engine, hot, scenario, mode):
    caps = SCENARIOS[scenario]
    calls = requests(seed=len(scenario), count=40)  # no minute or hour caps: both keys see the same buckets
    batched, alone = await new_key(engine, caps), await new_key(engine, caps)

    in_batches = await decide_in_batches(engine, batched, caps, mode, calls, sizes=[1, 3, 8, 16])
    one_by_one = await decide_one_by_one(engine, alone, caps, mode, calls)

    assert in_batches == one_by_one
    shadowed = {"shadow_blocked"} if mode == "shadow" and caps else set()
    assert {d for d, _, _ in in_batches} >= {"allowed", "blocked"} | shadowed
    assert await every_counter(engine, batched[0]) == await every_counter(engine, alone[0])


async def every_counter(engine, key_id: str) -> dict[str, tuple]:
    async with engine.connect() as conn:
        result = await conn.execute(text("SELECT bucket, spent_usd, reserved_usd, requests FROM budget_counters "
                                         "WHERE key_id = :k"), {"k": key_id})
        return {r.bucket: (r.spent_usd, r.reserved_usd, r.requests) for r in result}


async def test_the_set_based_path_decides_a_batch_that_fits(engine, hot):
    caps = [{"usd": "10", "window": "day"}, {"requests": 3, "window": "run"}]
    key = await new_key(engine, caps)
    fits = [item(key, caps, "2", run, "allowed", "enforce") for run in ["run-a", "run-a", "run-b", "run-a"]]
    async with engine.connect() as conn:
        decided = await conn.scalar(FAST, {"key_id": key[0], "items": json.dumps(fits), "idx": [0, 1, 2, 3]})
        await conn.commit()
        one_too_many = [*fits, item(key, caps, "2", "run-a", "allowed", "enforce")]  # a 4th call of run-a
        declined = await conn.scalar(FAST, {"key_id": key[0], "items": json.dumps(one_too_many), "idx": [4]})
        written = await conn.scalar(text("SELECT count(*) FROM audit_events WHERE key_id = :k"), {"k": key[0]})
        reserved = {(r.bucket if r.bucket.startswith("run:") else r.bucket.split(":")[0]): (r.reserved_usd, r.requests)
                    for r in await conn.execute(text("SELECT bucket, reserved_usd, requests FROM budget_counters "
                                                     "WHERE key_id = :k"), {"k": key[0]})}
    assert (decided, declined, written) == (4, 0, 4)  # the declined batch wrote nothing
    assert reserved == {"day": (8, 4), "run:run-a": (6, 3), "run:run-b": (2, 1)}


async def test_a_large_settle_batch_moves_reservations_to_spend_once_per_counter(engine, hot):
    """Seven or more settles at once take the set-based path (since 0012; live: v0013.py), here
    with two keys, two runs and reservations the reconciler already charged at their estimate."""
    caps = [{"usd": "100", "window": "day"}, {"usd": "50", "window": "run"}]
    keys_ = [await new_key(engine, caps) for _ in range(2)]
    gate = Gate(hot, reservation_ttl_s=60)
    admitted = [await gate.admit(k[0], ref(k, caps), row(k[0], f"run-{i % 2}"), Decimal("3"))
                for k in keys_ for i in range(6)]
    expired = [a.audit_id for a in admitted[::3]]  # 4 of the 12: charged at 3 by the reconciler
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE reservations SET expires_at = now() - interval '1 s' "
                                "WHERE audit_id = ANY(:ids)"), {"ids": expired})
    assert await gate.reconcile() == 4

    items = [{"audit_id": a.audit_id, "key_id": a.key_id, "cost": "2.5",
              "patch": {"cost_source": "parsed", "upstream_status": 200}} for a in admitted]
    async with engine.begin() as conn:
        assert await conn.scalar(text("SELECT tollgate_settle_batch(CAST(:items AS jsonb))"),
                                 {"items": json.dumps(items)}) == 12
        states = (await conn.execute(text("SELECT state, cost_usd, count(*) FROM audit_events "
                                          "WHERE id = ANY(:ids) GROUP BY 1, 2"),
                                     {"ids": [a.audit_id for a in admitted]})).all()
        left = await conn.scalar(text("SELECT count(*) FROM reservations WHERE audit_id = ANY(:ids)"),
                                 {"ids": [a.audit_id for a in admitted]})
    assert states == [("final", Decimal("2.5"), 12)] and left == 0
    for key_id, _ in keys_:  # 6 calls of 2.50 each, 3 per run: nothing left reserved
        counted = {bucket.split(":")[0] if bucket.startswith("day:") else bucket: value
                   for bucket, value in (await every_counter(engine, key_id)).items()}
        assert counted == {"day": (Decimal("15"), 0, 6), "run:run-0": (Decimal("7.5"), 0, 3),
                           "run:run-1": (Decimal("7.5"), 0, 3)}


async def test_in_one_batch_a_key_at_its_cap_is_decided_one_by_one_and_the_others_together(engine, hot):
    caps = [{"usd": "5", "window": "day"}]
    tight, roomy = await new_key(engine, caps), await new_key(engine, [{"usd": "100", "window": "day"}])
    items = [item(k, c, "2", "run-a", "allowed", "enforce")
             for _ in range(4) for k, c in ((tight, caps), (roomy, [{"usd": "100", "window": "day"}]))]
    async with engine.connect() as conn:
        answers = (await conn.execute(BATCH, {"items": json.dumps(items)})).all()
        await conn.commit()
    by_key = {key_id: [a.decision for a in answers if items[a.idx]["key_id"] == key_id]
              for key_id in (tight[0], roomy[0])}
    assert by_key == {tight[0]: ["allowed", "allowed", "blocked", "blocked"], roomy[0]: ["allowed"] * 4}
    assert await counters(engine, tight[0]) == {"day": (0, Decimal(4), 2)}
    assert await counters(engine, roomy[0]) == {"day": (0, Decimal(8), 4)}



SETTLE = text("SELECT tollgate_settle_batch(CAST(:items AS jsonb))")
# What this backend has read and not yet reported: within one transaction, its reads so far.
ROWS_READ = text("SELECT idx_tup_fetch + seq_tup_read FROM pg_stat_xact_user_tables WHERE relname = 'budget_counters'")


async def test_a_connections_plans_made_for_a_small_key_still_probe_its_counters_when_it_is_large(engine):
    """Made while a key had two counter rows, the plans a connection keeps must still read only
    the rows of the buckets a call touches once the key has 20,000 (one per agent run, as a
    busy key gets), not all of them (migrations/sql/v0013.py)."""
    caps = [{"usd": "1000", "window": "day"}, {"usd": "100", "window": "run"}]
    key = await new_key(engine, caps)

    async def rows_read_by_a_gate_and_its_settle(conn, runs: list[str]) -> int:
        before = await conn.scalar(ROWS_READ)
        items = [item(key, caps, "1", run, "allowed", "enforce") for run in runs]
        admitted = (await conn.execute(BATCH, {"items": json.dumps(items)})).all()
        ids = (await conn.execute(text("SELECT id FROM audit_events WHERE key_id = :k AND state = 'pending'"),
                                  {"k": key[0]})).scalars().all()
        settles = [{"audit_id": i, "key_id": key[0], "cost": "1", "patch": {"cost_source": "parsed"}} for i in ids]
        await conn.execute(SETTLE, {"items": json.dumps(settles)})
        read = await conn.scalar(ROWS_READ) - before
        await conn.commit()
        assert [a.decision for a in admitted] == ["allowed"] * len(runs)
        return read

    async with engine.connect() as conn:
        for size in (1, 8) * 4:  # more than five calls of each statement: PL/pgSQL's plans settle
            await rows_read_by_a_gate_and_its_settle(conn, ["run-a"] * size)
        async with engine.begin() as other:
            await other.execute(text("INSERT INTO budget_counters (key_id, bucket) "
                                     "SELECT :k, 'run:old-' || g FROM generate_series(1, 20000) g"), {"k": key[0]})
        one = await rows_read_by_a_gate_and_its_settle(conn, ["run-b"])
        eight = await rows_read_by_a_gate_and_its_settle(conn, ["run-b", "run-c"] * 4)
    # Each bucket's row is read a few times (lock, check, update, settle), never by the thousand.
    assert one < 20 and eight < 40, (one, eight)


async def test_every_function_that_names_counter_rows_by_a_bucket_array_plans_each_call(engine):
    """``key_id = ... AND bucket = ANY (...)`` is the shape whose cached generic plan reads all
    of a key's counter rows (the test above). The request path no longer uses it; a function
    that still does must plan each call afresh (migrations/sql/v0013.py, v0014.py). Since 0021
    (owners per counter, migrations/sql/v0021.py) none does: every counter row is probed by
    (owner, bucket)."""
    async with engine.connect() as conn:
        rows = (await conn.execute(text(
            "SELECT p.proname, p.proconfig FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = 'public' AND p.prosrc ~ 'budget_counters' AND p.prosrc ~* 'bucket\\s*=\\s*ANY'"))).all()
    shaped = {name: config or [] for name, config in rows}
    assert set(shaped) <= {"tollgate_gate", "tollgate_reconcile", "tollgate_reprice"}
    assert {name for name, config in shaped.items() if "plan_cache_mode=force_custom_plan" not in config} == set()
