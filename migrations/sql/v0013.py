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

Each text below is written out in full, as 0013 runs it, so it can be read (and diffed with
0007's and 0012's) as written; migrations/sql/live.py names the ones still live.
"""

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

# tollgate_settle: 0007's text with the counter rows updated one by one in bucket order (which
# locks them in order), so it needs no separate lock statement.
SETTLE = r"""
CREATE OR REPLACE FUNCTION tollgate_settle(p_audit_id bigint, p_cost numeric, p_patch jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  v_res reservations;
  v_key_id text;
  v_created jsonb := nullif(p_patch->'created', 'null'::jsonb);
  v_ts timestamptz;
  v_bucket text;
BEGIN
  DELETE FROM reservations r WHERE r.audit_id = p_audit_id RETURNING * INTO v_res;
  IF FOUND AND cardinality(v_res.buckets) > 0 THEN
    FOR v_bucket IN SELECT DISTINCT b FROM unnest(v_res.buckets) b ORDER BY b LOOP
      UPDATE budget_counters bc SET
        reserved_usd = bc.reserved_usd - CASE WHEN v_res.reconciled_at IS NULL THEN v_res.usd ELSE 0 END,
        spent_usd = bc.spent_usd + p_cost - CASE WHEN v_res.reconciled_at IS NULL THEN 0 ELSE v_res.usd END,
        updated_at = now()
       WHERE bc.key_id = v_res.key_id AND bc.bucket = v_bucket;
    END LOOP;
  END IF;
  v_ts := coalesce(v_res.created_at, (SELECT a.ts FROM audit_events a WHERE a.id = p_audit_id));
  UPDATE audit_events a SET
    state = 'final',
    finalized_at = now(),
    decision = coalesce(p_patch->>'decision', a.decision),
    reason = coalesce(p_patch->>'reason', a.reason),
    message = coalesce(p_patch->>'message', a.message),
    cost_usd = p_cost,
    cost_source = p_patch->>'cost_source',
    currency = coalesce(p_patch->>'currency', a.currency),
    amount_minor = coalesce((p_patch->>'amount_minor')::bigint, a.amount_minor),
    object_id = coalesce(a.object_id, p_patch->>'object_id'),
    customer_id = coalesce(a.customer_id, p_patch->>'customer_id'),
    upstream_status = (p_patch->>'upstream_status')::integer,
    upstream_request_id = p_patch->>'upstream_request_id',
    latency_ms = (p_patch->>'latency_ms')::numeric
  WHERE a.id = p_audit_id AND a.ts = v_ts
  RETURNING a.key_id INTO v_key_id;
  IF v_created IS NOT NULL AND v_key_id IS NOT NULL THEN
    INSERT INTO key_objects (key_id, object_id, kind, customer_id, amount_minor, currency, audit_id)
      VALUES (v_key_id, v_created->>'object_id', v_created->>'kind', v_created->>'customer_id',
              (v_created->>'amount_minor')::bigint, v_created->>'currency', p_audit_id)
      ON CONFLICT DO NOTHING;
  END IF;
END
$$;
"""

# tollgate_gate_fast: 0012's text with the counters locked and read by a LATERAL probe per bucket,
# in a CTE in front of the cap check (evaluated once, first); missing counter rows inserted without
# a read of the table; one UPDATE per counter row, in bucket order.
GATE_FAST = r"""
CREATE OR REPLACE FUNCTION tollgate_gate_fast(p_key_id text, p_items jsonb, p_idx integer[])
RETURNS TABLE (idx integer, audit_id bigint, decision text, reason text, message text, approval_id text)
LANGUAGE plpgsql AS $$
DECLARE
  v_now timestamptz := now();
  v_stamp text := to_char(v_now AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI');
  v_key record;
  v_ids bigint[];
  -- One entry per (item, cap) of the forwarded items: item index, cap ordinal, bucket,
  -- the item's predicted USD and the cap itself.
  v_cap_item integer[];
  v_cap_no integer[];
  v_cap_bucket text[];
  v_cap_usd numeric[];
  v_cap jsonb[];
  v_buckets text[];
  v_fits boolean;
  v_add record;
BEGIN
  SELECT k.status, k.expires_at, k.policy_id, p.current_version INTO v_key
    FROM vault_keys k JOIN policies p ON p.id = k.policy_id WHERE k.id = p_key_id;
  IF NOT FOUND OR v_key.status <> 'active' OR coalesce(v_key.expires_at <= v_now, false) THEN
    RETURN;  -- tollgate_gate names the reason
  END IF;
  IF EXISTS (
    SELECT 1 FROM unnest(p_idx) u(i)
     WHERE (p_items->u.i->>'policy_version' IS NOT NULL
            AND (p_items->u.i->>'policy_id' IS DISTINCT FROM v_key.policy_id
                 OR (p_items->u.i->>'policy_version')::integer <> v_key.current_version))
        OR (p_items->u.i->'row'->>'decision' IN ('allowed', 'shadow_blocked')
            AND coalesce((p_items->u.i->'approval'->>'required')::boolean, false))
  ) THEN
    RETURN;  -- a stale policy or an approval: tollgate_gate's business
  END IF;

  SELECT array_agg(u.i ORDER BY u.i, c.o), array_agg(c.o::integer ORDER BY u.i, c.o),
         array_agg(CASE c.c->>'window'
                     WHEN 'minute' THEN 'minute:' || v_stamp
                     WHEN 'hour'   THEN 'hour:' || left(v_stamp, 13)
                     WHEN 'day'    THEN 'day:' || left(v_stamp, 10)
                     WHEN 'month'  THEN 'month:' || left(v_stamp, 7)
                     WHEN 'total'  THEN 'total'
                     WHEN 'run'    THEN 'run:' || coalesce(p_items->u.i->'row'->>'agent_run_id', '')
                   END ORDER BY u.i, c.o),
         array_agg((p_items->u.i->>'predicted')::numeric ORDER BY u.i, c.o), array_agg(c.c ORDER BY u.i, c.o)
    INTO v_cap_item, v_cap_no, v_cap_bucket, v_cap_usd, v_cap
    FROM unnest(p_idx) u(i)
   CROSS JOIN LATERAL jsonb_array_elements(p_items->u.i->'caps') WITH ORDINALITY c(c, o)
   WHERE p_items->u.i->'row'->>'decision' IN ('allowed', 'shadow_blocked');

  IF v_cap_item IS NOT NULL THEN
    SELECT array_agg(DISTINCT b ORDER BY b) INTO v_buckets FROM unnest(v_cap_bucket) b;
    INSERT INTO budget_counters (key_id, bucket)
      SELECT p_key_id, b FROM unnest(v_buckets) b ORDER BY b ON CONFLICT DO NOTHING;
    -- Lock the counters in bucket order, then check each item's caps with everything
    -- admitted before it in this batch (running sums per cap and bucket, in item order).
    WITH locked AS MATERIALIZED (
      SELECT u.bucket, c.spent_usd, c.reserved_usd, c.requests
        FROM unnest(v_buckets) u(bucket)
       CROSS JOIN LATERAL (SELECT bc.spent_usd, bc.reserved_usd, bc.requests FROM budget_counters bc
                            WHERE bc.key_id = p_key_id AND bc.bucket = u.bucket FOR UPDATE) c
    )
    SELECT bool_and((NOT (x.cap ? 'usd') OR bc.spent_usd + bc.reserved_usd + x.usd <= (x.cap->>'usd')::numeric)
                    AND (NOT (x.cap ? 'requests') OR bc.requests + x.calls <= (x.cap->>'requests')::bigint))
      INTO v_fits
      FROM (SELECT u.b, u.cap, sum(u.p) OVER w AS usd, count(*) OVER w AS calls
              FROM unnest(v_cap_item, v_cap_no, v_cap_bucket, v_cap_usd, v_cap) u(i, o, b, p, cap)
            WINDOW w AS (PARTITION BY u.o, u.b ORDER BY u.i)) x
      JOIN locked bc ON bc.bucket = x.b;
    IF NOT coalesce(v_fits, false) THEN
      RETURN;  -- some item meets a cap: tollgate_gate decides them in order
    END IF;
  END IF;

  v_ids := ARRAY(SELECT nextval('audit_events_id_seq'::regclass) FROM unnest(p_idx));
  INSERT INTO audit_events
    SELECT r.* FROM unnest(p_idx, v_ids) u(i, id)
     CROSS JOIN LATERAL jsonb_populate_record(NULL::audit_events, p_items->u.i->'row' || CASE
         WHEN p_items->u.i->'row'->>'decision' IN ('allowed', 'shadow_blocked')
         THEN jsonb_build_object('id', u.id, 'ts', v_now, 'predicted_usd', p_items->u.i->'predicted',
                                 'state', 'pending')
         ELSE jsonb_build_object('id', u.id, 'ts', v_now, 'predicted_usd', p_items->u.i->'predicted',
                                 'state', 'final', 'finalized_at', v_now, 'cost_usd', 0, 'cost_source', 'none')
       END) r;
  INSERT INTO reservations (audit_id, key_id, usd, buckets, created_at, expires_at)
    SELECT u.id, p_key_id, (p_items->u.i->>'predicted')::numeric, coalesce(ib.buckets, '{}'), v_now,
           v_now + make_interval(secs => (p_items->u.i->>'ttl')::integer)
      FROM unnest(p_idx, v_ids) u(i, id)
      LEFT JOIN (SELECT c.i, array_agg(DISTINCT c.b ORDER BY c.b) AS buckets
                   FROM unnest(v_cap_item, v_cap_bucket) c(i, b) GROUP BY c.i) ib ON ib.i = u.i
     WHERE p_items->u.i->'row'->>'decision' IN ('allowed', 'shadow_blocked');
  IF v_cap_item IS NOT NULL THEN
    FOR v_add IN SELECT d.b, sum(d.p) AS usd, count(*) AS calls
                   FROM (SELECT DISTINCT c.i, c.b, c.p FROM unnest(v_cap_item, v_cap_bucket, v_cap_usd) c(i, b, p)) d
                  GROUP BY d.b ORDER BY d.b LOOP
      UPDATE budget_counters bc SET reserved_usd = bc.reserved_usd + v_add.usd, requests = bc.requests + v_add.calls,
             updated_at = v_now
       WHERE bc.key_id = p_key_id AND bc.bucket = v_add.b;
    END LOOP;
  END IF;
  RETURN QUERY SELECT u.i, u.id, p_items->u.i->'row'->>'decision', p_items->u.i->'row'->>'reason',
                      p_items->u.i->'row'->>'message', NULL::text
                 FROM unnest(p_idx, v_ids) u(i, id);
END
$$;
"""

# tollgate_settle_batch: 0012's text with a generic plan and one UPDATE per counter row, in
# (key, bucket) order (each UPDATE locks its row, so there is no separate lock statement).
SETTLE_BATCH = r"""
CREATE OR REPLACE FUNCTION tollgate_settle_batch(p_items jsonb) RETURNS integer
LANGUAGE plpgsql SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off SET plan_cache_mode = force_generic_plan AS $$
DECLARE
  v_item jsonb;
  v_ids bigint[];
  v_costs numeric[];
  v_patches jsonb[];
  v_res_ids bigint[];
  v_res_ts timestamptz[];
  -- One entry per (reservation, bucket): what to move from reserved_usd to spent_usd.
  v_key text[];
  v_bucket text[];
  v_reserved numeric[];  -- still held in reserved_usd (0 once the reconciler charged it)
  v_spent numeric[];  -- the actual cost, less what the reconciler already charged
  v_move record;
BEGIN
  -- A few items go one at a time, as in 0008: planning the set-based UPDATE of the partitioned
  -- audit table costs ~0.4 ms, more than settling up to ~6 items one by one (~65 us each).
  IF jsonb_array_length(p_items) <= 6 THEN
    FOR v_item IN
      SELECT t.value FROM jsonb_array_elements(p_items) WITH ORDINALITY t ORDER BY t.value->>'key_id', t.ordinality
    LOOP
      PERFORM tollgate_settle((v_item->>'audit_id')::bigint, (v_item->>'cost')::numeric, v_item->'patch');
    END LOOP;
    RETURN jsonb_array_length(p_items);
  END IF;
  SELECT array_agg((e->>'audit_id')::bigint ORDER BY o), array_agg((e->>'cost')::numeric ORDER BY o),
         array_agg(e->'patch' ORDER BY o)
    INTO v_ids, v_costs, v_patches
    FROM jsonb_array_elements(p_items) WITH ORDINALITY t(e, o);

  WITH gone AS (
    DELETE FROM reservations r WHERE r.audit_id = ANY (v_ids)
    RETURNING r.audit_id, r.key_id, r.buckets, r.created_at, r.usd, r.reconciled_at IS NOT NULL AS charged
  ), moves AS (
    SELECT g.key_id, b.bucket, CASE WHEN g.charged THEN 0 ELSE g.usd END AS reserved,
           u.cost - CASE WHEN g.charged THEN g.usd ELSE 0 END AS spent
      FROM gone g CROSS JOIN LATERAL unnest(g.buckets) b(bucket)
      JOIN unnest(v_ids, v_costs) u(id, cost) ON u.id = g.audit_id
  )
  SELECT (SELECT array_agg(g.audit_id) FROM gone g), (SELECT array_agg(g.created_at) FROM gone g),
         m.keys, m.buckets, m.reserved, m.spent
    INTO v_res_ids, v_res_ts, v_key, v_bucket, v_reserved, v_spent
    FROM (SELECT array_agg(key_id) AS keys, array_agg(bucket) AS buckets, array_agg(reserved) AS reserved,
                 array_agg(spent) AS spent FROM moves) m;

  WITH item AS (
    SELECT u.id, u.cost, u.patch, nullif(u.patch->'created', 'null'::jsonb) AS created,
           coalesce(r.ts, (SELECT a.ts FROM audit_events a WHERE a.id = u.id)) AS ts
      FROM unnest(v_ids, v_costs, v_patches) u(id, cost, patch)
      LEFT JOIN unnest(v_res_ids, v_res_ts) r(id, ts) ON r.id = u.id
  ), settled AS (
    UPDATE audit_events a SET
      state = 'final',
      finalized_at = now(),
      decision = coalesce(i.patch->>'decision', a.decision),
      reason = coalesce(i.patch->>'reason', a.reason),
      message = coalesce(i.patch->>'message', a.message),
      cost_usd = i.cost,
      cost_source = i.patch->>'cost_source',
      currency = coalesce(i.patch->>'currency', a.currency),
      amount_minor = coalesce((i.patch->>'amount_minor')::bigint, a.amount_minor),
      object_id = coalesce(a.object_id, i.patch->>'object_id'),
      customer_id = coalesce(a.customer_id, i.patch->>'customer_id'),
      upstream_status = (i.patch->>'upstream_status')::integer,
      upstream_request_id = i.patch->>'upstream_request_id',
      latency_ms = (i.patch->>'latency_ms')::numeric
      FROM item i
     WHERE a.id = i.id AND a.ts = i.ts
    RETURNING a.id, a.key_id, i.created
  )
  INSERT INTO key_objects (key_id, object_id, kind, customer_id, amount_minor, currency, audit_id)
    SELECT s.key_id, s.created->>'object_id', s.created->>'kind', s.created->>'customer_id',
           (s.created->>'amount_minor')::bigint, s.created->>'currency', s.id
      FROM settled s WHERE s.created IS NOT NULL AND s.key_id IS NOT NULL
    ON CONFLICT DO NOTHING;

  IF v_key IS NOT NULL THEN
    -- Last, so the counters stay locked only for this: in (key, bucket) order, as gates lock them.
    FOR v_move IN SELECT m.key_id, m.bucket, sum(m.reserved) AS reserved, sum(m.spent) AS spent
                    FROM unnest(v_key, v_bucket, v_reserved, v_spent) m(key_id, bucket, reserved, spent)
                   GROUP BY m.key_id, m.bucket ORDER BY m.key_id, m.bucket LOOP
      UPDATE budget_counters bc SET reserved_usd = bc.reserved_usd - v_move.reserved,
             spent_usd = bc.spent_usd + v_move.spent, updated_at = now()
       WHERE bc.key_id = v_move.key_id AND bc.bucket = v_move.bucket;
    END LOOP;
  END IF;
  RETURN cardinality(v_ids);
END
$$;
"""

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
