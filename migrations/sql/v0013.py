"""Counter rows probed by primary key, whatever plan a connection has cached, as migration
0013 made them; and the batch functions' plans made once per connection.

PL/pgSQL prepares each statement once per connection. A statement with parameters gets a
custom plan (planned with this call's values and the tables' current size) five times, then
a generic one if the planner thinks it no dearer, kept for the connection's life or until
the table is analyzed again. Every statement that locked or updated a key's counter rows
until 0012 named them as ``key_id = $1 AND bucket = ANY ($2)`` (or joined on it), and the
generic plan of each, made while the key had a few rows, reads every row of the key:

    Index Scan using budget_counters_pkey   Index Cond: (key_id = $1)   Filter: (bucket = ANY ($2))

(with ORDER BY bucket FOR UPDATE this spares a sort; the joins read the key's rows as their
outer side or into a hash). A key gains a counter row per agent run it has capped, so it
grows. Measured: on a connection whose plans were made at two rows, once the key had
20,000 rows one call's gate and settle read 60,012 counter rows (2.8 ms per statement at
20,000, with the rows locked meanwhile); forcing custom plans instead cost a fifth of the
throughput (planning every statement of every batch).

So each counter row is now reached by a probe of the whole primary key, in a shape no plan
can turn into a scan of the key:
- locks: a LATERAL subquery per bucket, ``key_id = $1 AND bucket = b.bucket ... FOR UPDATE``,
  over the buckets in order (the subquery cannot be flattened, so the join order is fixed
  and the rows are locked in bucket order, as before);
- updates: one UPDATE per counter row, by key and bucket, in (key, bucket) order (each one
  locks its row, so a settle needs no separate lock statement);
- a gate's missing counter rows: INSERT ... ON CONFLICT DO NOTHING with no read of the table.

With that, the batch functions' plans can be generic (plan_cache_mode): planned once per
connection instead of per call. tollgate_gate_fast's statements took 402 us for one item with
0012's plans, 312 us with generic ones (its first two statements 109 -> 36 us). The functions
left with 0012's shapes (tollgate_gate, the one-by-one path for batches that meet a cap, and
tollgate_reconcile) plan each call afresh instead (force_custom_plan): they are off the
common path. tests/test_gate.py grows a key from 2 to 20,000 counter rows under one
connection's plans and counts the rows a gate and a settle read.
"""

from migrations.sql import v0007, v0012


def _swap(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old[:60]
    return text.replace(old, new)


LOCK_COUNTERS = r"""
CREATE OR REPLACE FUNCTION tollgate_lock_counters(p_key_id text, p_buckets text[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM 1
     FROM (SELECT DISTINCT b FROM unnest(p_buckets) b ORDER BY b) u(bucket)
    CROSS JOIN LATERAL (SELECT 1 FROM budget_counters bc
                         WHERE bc.key_id = p_key_id AND bc.bucket = u.bucket FOR UPDATE) l;
END
$$;
"""

# tollgate_settle: the counter rows updated one by one in bucket order (which locks them in order).
SETTLE = _swap(_swap(
    v0007.SETTLE,
    "  v_ts timestamptz;\n",
    "  v_ts timestamptz;\n  v_bucket text;\n"),
    """    PERFORM tollgate_lock_counters(v_res.key_id, v_res.buckets);
    UPDATE budget_counters bc SET
      reserved_usd = bc.reserved_usd - CASE WHEN v_res.reconciled_at IS NULL THEN v_res.usd ELSE 0 END,
      spent_usd = bc.spent_usd + p_cost - CASE WHEN v_res.reconciled_at IS NULL THEN 0 ELSE v_res.usd END,
      updated_at = now()
     WHERE bc.key_id = v_res.key_id AND bc.bucket = ANY (v_res.buckets);
""",
    """    FOR v_bucket IN SELECT DISTINCT b FROM unnest(v_res.buckets) b ORDER BY b LOOP
      UPDATE budget_counters bc SET
        reserved_usd = bc.reserved_usd - CASE WHEN v_res.reconciled_at IS NULL THEN v_res.usd ELSE 0 END,
        spent_usd = bc.spent_usd + p_cost - CASE WHEN v_res.reconciled_at IS NULL THEN 0 ELSE v_res.usd END,
        updated_at = now()
       WHERE bc.key_id = v_res.key_id AND bc.bucket = v_bucket;
    END LOOP;
""")

GATE_FAST = _swap(_swap(_swap(_swap(
    v0012.GATE_FAST.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1),
    "  v_fits boolean;\n",
    "  v_fits boolean;\n  v_add record;\n"),
    """    INSERT INTO budget_counters (key_id, bucket)
      SELECT p_key_id, b FROM unnest(v_buckets) b
       WHERE NOT EXISTS (SELECT 1 FROM budget_counters bc WHERE bc.key_id = p_key_id AND bc.bucket = b)
       ORDER BY b ON CONFLICT DO NOTHING;
""",
    """    INSERT INTO budget_counters (key_id, bucket)
      SELECT p_key_id, b FROM unnest(v_buckets) b ORDER BY b ON CONFLICT DO NOTHING;
"""),
    """      JOIN (SELECT c.bucket, c.spent_usd, c.reserved_usd, c.requests FROM budget_counters c
             WHERE c.key_id = p_key_id AND c.bucket = ANY (v_buckets) ORDER BY c.bucket FOR UPDATE) bc
        ON bc.bucket = x.b;
""",
    """      JOIN locked bc ON bc.bucket = x.b;
"""),
    """    UPDATE budget_counters bc SET reserved_usd = bc.reserved_usd + s.usd, requests = bc.requests + s.calls,
           updated_at = v_now
      FROM (SELECT d.b, sum(d.p) AS usd, count(*) AS calls
              FROM (SELECT DISTINCT c.i, c.b, c.p FROM unnest(v_cap_item, v_cap_bucket, v_cap_usd) c(i, b, p)) d
             GROUP BY d.b) s
     WHERE bc.key_id = p_key_id AND bc.bucket = s.b;
""",
    """    FOR v_add IN SELECT d.b, sum(d.p) AS usd, count(*) AS calls
                   FROM (SELECT DISTINCT c.i, c.b, c.p FROM unnest(v_cap_item, v_cap_bucket, v_cap_usd) c(i, b, p)) d
                  GROUP BY d.b ORDER BY d.b LOOP
      UPDATE budget_counters bc SET reserved_usd = bc.reserved_usd + v_add.usd, requests = bc.requests + v_add.calls,
             updated_at = v_now
       WHERE bc.key_id = p_key_id AND bc.bucket = v_add.b;
    END LOOP;
""")
# The lock and read of the counters, as a CTE in front of the cap check (evaluated once, first).
GATE_FAST = _swap(
    GATE_FAST,
    """    SELECT bool_and((NOT (x.cap ? 'usd')""",
    """    WITH locked AS MATERIALIZED (
      SELECT u.bucket, c.spent_usd, c.reserved_usd, c.requests
        FROM unnest(v_buckets) u(bucket)
       CROSS JOIN LATERAL (SELECT bc.spent_usd, bc.reserved_usd, bc.requests FROM budget_counters bc
                            WHERE bc.key_id = p_key_id AND bc.bucket = u.bucket FOR UPDATE) c
    )
    SELECT bool_and((NOT (x.cap ? 'usd')""")

SETTLE_BATCH = _swap(_swap(_swap(
    v0012.SETTLE_BATCH,
    "SET enable_mergejoin = off AS $$",
    "SET enable_mergejoin = off SET plan_cache_mode = force_generic_plan AS $$"),
    "  v_spent numeric[];  -- the actual cost, less what the reconciler already charged\n",
    "  v_spent numeric[];  -- the actual cost, less what the reconciler already charged\n  v_move record;\n"),
    """    PERFORM 1 FROM budget_counters bc
      JOIN (SELECT DISTINCT m.key_id, m.bucket FROM unnest(v_key, v_bucket) m(key_id, bucket)) x
        ON bc.key_id = x.key_id AND bc.bucket = x.bucket
     ORDER BY bc.key_id, bc.bucket FOR UPDATE OF bc;
    UPDATE budget_counters bc SET reserved_usd = bc.reserved_usd - d.reserved,
           spent_usd = bc.spent_usd + d.spent, updated_at = now()
      FROM (SELECT m.key_id, m.bucket, sum(m.reserved) AS reserved, sum(m.spent) AS spent
              FROM unnest(v_key, v_bucket, v_reserved, v_spent) m(key_id, bucket, reserved, spent)
             GROUP BY m.key_id, m.bucket) d
     WHERE bc.key_id = d.key_id AND bc.bucket = d.bucket;
""",
    """    FOR v_move IN SELECT m.key_id, m.bucket, sum(m.reserved) AS reserved, sum(m.spent) AS spent
                    FROM unnest(v_key, v_bucket, v_reserved, v_spent) m(key_id, bucket, reserved, spent)
                   GROUP BY m.key_id, m.bucket ORDER BY m.key_id, m.bucket LOOP
      UPDATE budget_counters bc SET reserved_usd = bc.reserved_usd - v_move.reserved,
             spent_usd = bc.spent_usd + v_move.spent, updated_at = now()
       WHERE bc.key_id = v_move.key_id AND bc.bucket = v_move.bucket;
    END LOOP;
""")

GATE_SIGNATURE = ("tollgate_gate(text, text, integer, jsonb, jsonb, numeric, integer, text, jsonb)")
SET = [
    "ALTER FUNCTION tollgate_gate_batch(jsonb) SET plan_cache_mode = force_generic_plan",
    f"ALTER FUNCTION {GATE_SIGNATURE} SET plan_cache_mode = force_custom_plan",
    "ALTER FUNCTION tollgate_reconcile(integer) SET plan_cache_mode = force_custom_plan",
]
RESET = [
    "ALTER FUNCTION tollgate_gate_batch(jsonb) RESET plan_cache_mode",
    f"ALTER FUNCTION {GATE_SIGNATURE} RESET plan_cache_mode",
    "ALTER FUNCTION tollgate_reconcile(integer) RESET plan_cache_mode",
]
