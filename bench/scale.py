"""Scenario 3: the audit table at 10 million rows.

``fill()`` adds realistic rows with ``INSERT ... SELECT generate_series`` inside Postgres, in
chunks (bounded statements, progress on stdout), through the table's real indexes:

* timestamps spread evenly over the last 30 days, in insertion order, as a live table grows;
* 100,000 agent runs of ~100 calls each; 50 runs are active at any moment, so one run's rows
  are interleaved with other runs' over ~5,000 consecutive rows (about 20 minutes);
* 300 vault keys (a run belongs to one key), 5,000 customers;
* 95% allowed charges with a parsed cost, 5% blocked by a cap, amounts from $0.50 to $500.

Only columns the table has are filled (the schema may grow): a NOT NULL column without a
default that the generator does not know stops the fill with a clear message.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
from typing import Any

RUNS_ACTIVE = 50  # concurrent agent runs
RUN_SPAN = 5000  # consecutive rows over which one run's ~100 calls are spread
KEYS = 300
CUSTOMERS = 5000

# Expressions per column, over: g (row number), n (target row count), r (run number), a (amount in cents).
COLUMNS: dict[str, str] = {
    "ts": "now() - interval '30 days' + (g::float8 / n) * interval '30 days'",
    "request_id": "md5('req' || g)",
    "agent_run_id": "'run_' || md5('run' || r)",
    "key_id": "'key_' || lpad((r % {keys})::text, 16, '0')",
    "vendor": "'stripe'",
    "method": "'POST'",
    "path": "'/v1/charges'",
    "endpoint": "'POST /v1/charges'",
    "customer_id": "'cus_' || substr(md5('cus' || (r % {customers})), 1, 14)",
    "object_id": "CASE WHEN g % 20 = 0 THEN NULL ELSE 'ch_' || substr(md5('ch' || g), 1, 24) END",
    "vendor_account": "NULL",
    "decision": "CASE WHEN g % 20 = 0 THEN 'blocked' ELSE 'allowed' END",
    "reason": "CASE WHEN g % 20 = 0 THEN 'cap_exceeded' END",
    "message": "CASE WHEN g % 20 = 0 THEN 'Cap of 200.00 USD per day reached.' END",
    "state": "'final'",
    "predicted_usd": "a / 100.0",
    "cost_usd": "CASE WHEN g % 20 = 0 THEN 0 ELSE a / 100.0 END",
    "cost_source": "CASE WHEN g % 20 = 0 THEN 'none' ELSE 'parsed' END",
    "currency": "'usd'",
    "amount_minor": "a",
    "upstream_status": "CASE WHEN g % 20 = 0 THEN NULL ELSE 200 END",
    "upstream_request_id": "CASE WHEN g % 20 = 0 THEN NULL ELSE 'req_' || substr(md5('rq' || g), 1, 14) END",
    "idempotency_key": "md5('idem' || g)::uuid::text",
    "latency_ms": "round((80 + (g % 97) * 1.7)::numeric, 3)",
    "policy_id": "'pol_' || lpad((r % {keys})::text, 16, '0')",
    "policy_version": "1 + (r % 3)",
    "request_summary": "jsonb_build_object('amount', a::text, 'currency', 'usd', 'source', 'tok_visa')",
    "finalized_at": "now() - interval '30 days' + (g::float8 / n) * interval '30 days'",
}


def run_number(g: int) -> int:
    """The run a generated row belongs to (the SQL below, in Python, to pick real run ids)."""
    return (g // RUN_SPAN) * RUNS_ACTIVE + (g % RUNS_ACTIVE)


async def _columns(conn: Any) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT column_name, is_nullable, column_default FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name = 'audit_events' ORDER BY ordinal_position")
    return [dict(r) for r in rows]


def insert_sql(columns: list[dict[str, Any]]) -> str:
    present = [c["column_name"] for c in columns]
    missing = [c["column_name"] for c in columns if c["is_nullable"] == "NO" and c["column_default"] is None
               and c["column_name"] not in COLUMNS]
    if missing:
        raise RuntimeError(f"audit_events has NOT NULL columns the generator does not know: {missing}")
    names = [c for c in present if c in COLUMNS]
    exprs = [COLUMNS[c].format(keys=KEYS, customers=CUSTOMERS) for c in names]
    return (
        f"INSERT INTO audit_events ({', '.join(names)})\n"
        f"SELECT {', '.join(exprs)}\n"
        f"FROM generate_series($1::bigint, $2::bigint) AS g,\n"
        f"     LATERAL (SELECT $3::bigint AS n, (g / {RUN_SPAN}) * {RUNS_ACTIVE} + (g % {RUNS_ACTIVE}) AS r,\n"
        f"                     50 + (g * 7919) % 50000 AS a) AS x"
    )


async def _fill(url: str, target_rows: int, chunk: int, progress: Any) -> dict[str, Any]:
    import asyncpg

    conn = await asyncpg.connect(url, timeout=30, command_timeout=None)
    try:
        existing = await conn.fetchval("SELECT count(*) FROM audit_events")
        sql = insert_sql(await _columns(conn))
        # audit_events is partitioned by month: the generated 30 days may start in last month.
        await conn.execute("SELECT tollgate_audit_partition((now() - interval '30 days')::date)")
        started = time.monotonic()
        g = 1
        to_add = max(0, target_rows - existing)
        while g <= to_add:
            last = min(to_add, g + chunk - 1)
            await conn.execute(sql, g, last, to_add)
            progress(f"  audit_events: +{last:,} of {to_add:,} rows ({time.monotonic() - started:.0f} s)")
            g = last + 1
        fill_s = time.monotonic() - started
        t = time.monotonic()
        await conn.execute("VACUUM ANALYZE audit_events")
        vacuum_s = time.monotonic() - t
        sizes = await conn.fetchrow(
            "SELECT count(*) AS rows, count(DISTINCT agent_run_id) AS runs, count(DISTINCT key_id) AS keys, "
            "(SELECT pg_size_pretty(sum(pg_table_size(relid))) FROM pg_partition_tree('audit_events')) AS heap, "
            "(SELECT pg_size_pretty(sum(pg_indexes_size(relid))) FROM pg_partition_tree('audit_events')) AS indexes "
            "FROM audit_events")
        return {"existing_rows": existing, "added_rows": to_add, "fill_s": round(fill_s, 1),
                "vacuum_analyze_s": round(vacuum_s, 1), "rows_per_s": round(to_add / fill_s) if fill_s else None,
                **dict(sizes), "chunk": chunk, "n_param": to_add}
    finally:
        await conn.close()


def fill(url: str, target_rows: int, chunk: int = 1_000_000, progress: Any = print) -> dict[str, Any]:
    return asyncio.run(_fill(url, target_rows, chunk, progress))


LOOKUP = "SELECT * FROM audit_events WHERE agent_run_id = $1"


async def _lookups(url: str, n_param: int, samples: int, seed: int) -> dict[str, Any]:
    import asyncpg

    rng = random.Random(seed)
    max_run = run_number(n_param)
    conn = await asyncpg.connect(url, timeout=30, command_timeout=60)
    try:
        run_ids = await conn.fetch(
            "SELECT 'run_' || md5('run' || r) AS id FROM unnest($1::bigint[]) AS r",
            [rng.randrange(0, max_run) for _ in range(samples)])
        ids = [r["id"] for r in run_ids]
        explain: list[dict[str, Any]] = []
        for run_id in ids:
            plan = json.loads(await conn.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {LOOKUP}", run_id))[0]
            top = plan["Plan"]
            explain.append({"execution_ms": plan["Execution Time"], "planning_ms": plan["Planning Time"],
                            "rows": top.get("Actual Rows", 0), "node": _nodes(top),
                            "hit": top.get("Shared Hit Blocks", 0), "read": top.get("Shared Read Blocks", 0)})
        statement = await conn.prepare(LOOKUP)
        client_ms = []
        for run_id in rng.sample(ids, len(ids)):
            t = time.perf_counter()
            await statement.fetch(run_id)
            client_ms.append((time.perf_counter() - t) * 1000)
    finally:
        await conn.close()
    execution = [e["execution_ms"] for e in explain]
    return {
        "query": LOOKUP, "samples": samples,
        "execution_ms": _dist(execution),
        "planning_ms": _dist([e["planning_ms"] for e in explain]),
        "client_round_trip_ms": _dist(client_ms),
        "rows_per_run": _dist([float(e["rows"]) for e in explain]),
        "buffers_hit_median": statistics.median(e["hit"] for e in explain),
        "buffers_read_median": statistics.median(e["read"] for e in explain),
        "plans": sorted({e["node"] for e in explain}),
    }


def _nodes(plan: dict[str, Any]) -> str:
    name = plan["Node Type"] + (f" using {plan['Index Name']}" if plan.get("Index Name") else "")
    children = [_nodes(p) for p in plan.get("Plans", [])]
    return name + (f" <- {', '.join(children)}" if children else "")


def _dist(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]  # noqa: E731
    return {"median": round(statistics.median(values), 3), "p95": round(pick(0.95), 3),
            "max": round(values[-1], 3)}


def lookups(url: str, n_param: int, samples: int = 200, seed: int = 6) -> dict[str, Any]:
    return asyncio.run(_lookups(url, n_param, samples, seed))
