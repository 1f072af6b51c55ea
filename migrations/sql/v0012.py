"""Set-based batches, as migration 0012 made them: one counter update per key and bucket per
batch, as DESIGN.md's performance notes suggest, instead of one per request.

Until 0011 both batch functions ran their items one at a time. Each gate item read the key,
made its buckets, locked and read its counters, updated them and inserted its rows (about
ten statements); each settle item locked the counters again and updated them before its
audit row. A key's counter rows are locked from a batch's first item to its commit, and the
gate's commit is durable, so that per-item work was the ceiling on one key's calls per
second, and settles waited for it (tollgate_lock_counters: 0.32 ms of a 0.45 ms settle).

Gate. For each key of the batch, tollgate_gate_fast decides all of the key's items at once:
one key read, one lock of all their counters (in bucket order, as before), a running sum of
the reservations in item order checked against each cap, then one INSERT of all audit rows,
one of all reservations and one UPDATE per counter row. Deciding "in order" needs no loop
when every item fits: item n fits after items 1..n-1 were admitted exactly when the running
sum up to n fits. When some item does not fit, or a key is revoked, expired or has a new
policy version, or an item needs an approval, the fast path writes nothing and returns no
rows; the batch then runs that key's items through tollgate_gate one by one, as before,
with the same answers. Caps, revocation and staleness are therefore decided as before.

Settle. The batch's reservations are deleted, its audit rows finalised and its created
objects recorded first, set-based; only then are the counter rows locked, in (key, bucket)
order as everywhere else, and updated once each with the batch's summed deltas. So a
settle holds a key's counters only for that last statement and its (asynchronous) commit.
Its joins are nested loops of index probes, by setting: with 0010's sequential scans off,
a plan made while the audit table looked empty (a fresh database, a new month, after a
TRUNCATE) joined by hash over a full index scan of the month's partition, kept while the
partition grew (measured: 9,300 index entries read per settle, throughput 3,100 -> 1,630 req/s
at c=64 within 20 s of a TRUNCATE; with nested loops, 1 entry per row and no drop).
Batches of up to 6 items still settle one by one (tollgate_settle): the set-based UPDATE of
the partitioned audit table is planned afresh each time (~0.4 ms), which only pays for itself
from about 7 items on (measured: 3 items 0.27 ms one by one, 0.5 ms set-based; 30 items
2.0 ms against 0.45 ms).

0013 rewrote GATE_FAST's and SETTLE_BATCH's counter statements (v0013.py); GATE_BATCH is
still live. migrations/sql/live.py names every live text.
"""

GATE_FAST = r"""
CREATE FUNCTION tollgate_gate_fast(p_key_id text, p_items jsonb, p_idx integer[])
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
      SELECT p_key_id, b FROM unnest(v_buckets) b
       WHERE NOT EXISTS (SELECT 1 FROM budget_counters bc WHERE bc.key_id = p_key_id AND bc.bucket = b)
       ORDER BY b ON CONFLICT DO NOTHING;
    -- Lock the counters in bucket order, then check each item's caps with everything
    -- admitted before it in this batch (running sums per cap and bucket, in item order).
    SELECT bool_and((NOT (x.cap ? 'usd') OR bc.spent_usd + bc.reserved_usd + x.usd <= (x.cap->>'usd')::numeric)
                    AND (NOT (x.cap ? 'requests') OR bc.requests + x.calls <= (x.cap->>'requests')::bigint))
      INTO v_fits
      FROM (SELECT u.b, u.cap, sum(u.p) OVER w AS usd, count(*) OVER w AS calls
              FROM unnest(v_cap_item, v_cap_no, v_cap_bucket, v_cap_usd, v_cap) u(i, o, b, p, cap)
            WINDOW w AS (PARTITION BY u.o, u.b ORDER BY u.i)) x
      JOIN (SELECT c.bucket, c.spent_usd, c.reserved_usd, c.requests FROM budget_counters c
             WHERE c.key_id = p_key_id AND c.bucket = ANY (v_buckets) ORDER BY c.bucket FOR UPDATE) bc
        ON bc.bucket = x.b;
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
    UPDATE budget_counters bc SET reserved_usd = bc.reserved_usd + s.usd, requests = bc.requests + s.calls,
           updated_at = v_now
      FROM (SELECT d.b, sum(d.p) AS usd, count(*) AS calls
              FROM (SELECT DISTINCT c.i, c.b, c.p FROM unnest(v_cap_item, v_cap_bucket, v_cap_usd) c(i, b, p)) d
             GROUP BY d.b) s
     WHERE bc.key_id = p_key_id AND bc.bucket = s.b;
  END IF;
  RETURN QUERY SELECT u.i, u.id, p_items->u.i->'row'->>'decision', p_items->u.i->'row'->>'reason',
                      p_items->u.i->'row'->>'message', NULL::text
                 FROM unnest(p_idx, v_ids) u(i, id);
END
$$;
"""

GATE_BATCH = r"""
CREATE OR REPLACE FUNCTION tollgate_gate_batch(p_items jsonb)
RETURNS TABLE (idx integer, audit_id bigint, decision text, reason text, message text, approval_id text)
LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
  v_key text;
  v_idx integer[];
  v_i integer;
  v_item jsonb;
BEGIN
  -- Keys in order, each key's items in arrival order: counters are locked in (key, bucket) order.
  FOR v_key, v_idx IN
    SELECT t.value->>'key_id', array_agg((t.ordinality - 1)::integer ORDER BY t.ordinality)
      FROM jsonb_array_elements(p_items) WITH ORDINALITY t GROUP BY 1 ORDER BY 1
  LOOP
    RETURN QUERY SELECT * FROM tollgate_gate_fast(v_key, p_items, v_idx);
    CONTINUE WHEN FOUND;
    FOREACH v_i IN ARRAY v_idx LOOP
      v_item := p_items->v_i;
      RETURN QUERY SELECT v_i, g.audit_id, g.decision, g.reason, g.message, g.approval_id
        FROM tollgate_gate(
          v_item->>'key_id', v_item->>'policy_id', (v_item->>'policy_version')::integer, v_item->'row',
          v_item->'caps', (v_item->>'predicted')::numeric, (v_item->>'ttl')::integer, v_item->>'mode',
          nullif(v_item->'approval', 'null'::jsonb)) g;
    END LOOP;
  END LOOP;
END
$$;
"""

SETTLE_BATCH = r"""
CREATE OR REPLACE FUNCTION tollgate_settle_batch(p_items jsonb) RETURNS integer
LANGUAGE plpgsql SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
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
    PERFORM 1 FROM budget_counters bc
      JOIN (SELECT DISTINCT m.key_id, m.bucket FROM unnest(v_key, v_bucket) m(key_id, bucket)) x
        ON bc.key_id = x.key_id AND bc.bucket = x.bucket
     ORDER BY bc.key_id, bc.bucket FOR UPDATE OF bc;
    UPDATE budget_counters bc SET reserved_usd = bc.reserved_usd - d.reserved,
           spent_usd = bc.spent_usd + d.spent, updated_at = now()
      FROM (SELECT m.key_id, m.bucket, sum(m.reserved) AS reserved, sum(m.spent) AS spent
              FROM unnest(v_key, v_bucket, v_reserved, v_spent) m(key_id, bucket, reserved, spent)
             GROUP BY m.key_id, m.bucket) d
     WHERE bc.key_id = d.key_id AND bc.bucket = d.bucket;
  END IF;
  RETURN cardinality(v_ids);
END
$$;
"""

