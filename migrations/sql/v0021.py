"""Delegated keys, as migration 0021 made them: a child key counts against its ancestors' caps.

A key may now be minted from another one (proxy/delegation.py): ``vault_keys.parent_key_id``
and ``depth`` record the chain, ``agent_run_id`` the one run the child is bound to. A child's
policy only narrows its parent's, and every call it makes must still be counted against the
parent's caps (and the grandparent's...) exactly, under the same row locks as today. So the
caps a gate item carries may name an ``owner``: the key whose ``budget_counters`` row the cap
reserves against (none: the item's own key). A reservation remembers which owner each of its
buckets belongs to (``reservations.owners``, aligned with ``buckets``; NULL on rows written
before 0021, meaning the reservation's key), so settle, reconcile and reprice move the rows
the gate reserved. Counter rows are still probed by their whole primary key, and locked in
(owner, bucket) order everywhere.

Why a re-freeze and not a design around the texts: a cap's counter row is the gate's
``p_key_id`` in every text before this one, so a child's call could only reach its parent's
counters as a second gate item; two items decide independently (one may be refused after the
other reserved) and write two audit rows. Only the owner per cap keeps one decision, one row,
one reservation.

Lock order. Before 0021 a batch locked its keys' rows key after key, each key's in bucket
order: the global (key, bucket) order. A child's item also locks its ancestors' rows, which
sort anywhere among the batch's other keys, so two batches could each hold a row the other
waits for. tollgate_gate_batch therefore locks every counter row of a batch that holds a
delegated item first, all at once in (owner, bucket) order (naming the buckets with
tollgate_bucket, the rule's canonical text); batches without one run exactly as before.
tollgate_settle_batch does the same for a batch of up to six items it settles one by one
(its set-based path already locks in that order). Python marks such items (``delegated``),
so the check costs no table read.

Created objects. An object a child creates is recorded for the child and each of its
ancestors (tollgate_settle, tollgate_settle_batch), so "created through this key" of a parent
covers what it delegated, and a child's own records are always a subset of its parent's:
a child's record scope can never admit what its parent's would not.

Reprice (a Twilio price arriving later) moves the counters of the key and of each ancestor.
Each text below is written out in full; migrations/sql/live.py names the live ones.
"""

SCHEMA = [
    "ALTER TABLE vault_keys ADD COLUMN parent_key_id text REFERENCES vault_keys (id)",
    "ALTER TABLE vault_keys ADD COLUMN depth integer NOT NULL DEFAULT 0",
    "ALTER TABLE vault_keys ADD COLUMN agent_run_id text",
    "CREATE INDEX vault_keys_parent ON vault_keys (parent_key_id)",
    "ALTER TABLE reservations ADD COLUMN owners text[]",
]

UNSCHEMA = [
    "ALTER TABLE reservations DROP COLUMN owners",
    "DROP INDEX vault_keys_parent",
    "ALTER TABLE vault_keys DROP COLUMN agent_run_id",
    "ALTER TABLE vault_keys DROP COLUMN depth",
    "ALTER TABLE vault_keys DROP COLUMN parent_key_id",
]

# tollgate_gate: 0009's text with an owner per cap; its counters probed by (owner, bucket).
GATE = r"""
CREATE OR REPLACE FUNCTION tollgate_gate(
  p_key_id text, p_policy_id text, p_policy_version integer, p_row jsonb, p_caps jsonb, p_predicted numeric,
  p_ttl_seconds integer, p_mode text, p_approval jsonb
) RETURNS TABLE (audit_id bigint, decision text, reason text, message text, approval_id text)
LANGUAGE plpgsql SET plan_cache_mode = force_custom_plan AS $$
DECLARE
  v_now timestamptz := now();
  v_run text := p_row->>'agent_run_id';
  v_decision text := p_row->>'decision';
  v_reason text := p_row->>'reason';
  v_message text := p_row->>'message';
  v_needs_approval boolean := coalesce((p_approval->>'required')::boolean, false);
  v_approval_reason text := p_approval->>'reason';
  v_approval_message text := p_approval->>'message';
  v_new_approval boolean := false;
  v_approval approvals;
  v_approval_id text;
  v_key record;
  v_cap jsonb;
  v_stamp text;
  v_cap_buckets text[];
  v_cap_owners text[];
  v_counters jsonb;
  v_used numeric;
  v_cap_message text;
  v_whose text;
  v_buckets text[];
  v_owners text[];
  v_row audit_events;
BEGIN
  SELECT k.status, k.expires_at, k.policy_id, p.current_version INTO v_key
    FROM vault_keys k JOIN policies p ON p.id = k.policy_id WHERE k.id = p_key_id;
  IF NOT FOUND THEN
    v_decision := 'blocked'; v_reason := 'unknown_key'; v_message := 'Invalid API key: this vault key does not exist.';
  ELSIF v_key.status <> 'active' THEN
    v_decision := 'blocked'; v_reason := 'key_revoked'; v_message := 'This vault key has been revoked.';
  ELSIF v_key.expires_at IS NOT NULL AND v_key.expires_at <= v_now THEN
    v_decision := 'blocked'; v_reason := 'key_expired'; v_message := 'This vault key has expired.';
  ELSIF p_policy_version IS NOT NULL
        AND (v_key.policy_id <> p_policy_id OR v_key.current_version <> p_policy_version) THEN
    RETURN QUERY SELECT NULL::bigint, 'stale'::text, 'policy_changed'::text, NULL::text, NULL::text;
    RETURN;
  ELSIF v_decision IN ('allowed', 'shadow_blocked') THEN
    IF jsonb_array_length(p_caps) > 0 THEN
      -- Each cap's bucket from one to_char of the gate's clock; the names are tollgate_bucket's.
      v_stamp := to_char(v_now AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI');
      SELECT array_agg(CASE c->>'window'
                         WHEN 'minute' THEN 'minute:' || v_stamp
                         WHEN 'hour'   THEN 'hour:' || left(v_stamp, 13)
                         WHEN 'day'    THEN 'day:' || left(v_stamp, 10)
                         WHEN 'month'  THEN 'month:' || left(v_stamp, 7)
                         WHEN 'total'  THEN 'total'
                         WHEN 'run'    THEN 'run:' || coalesce(v_run, '')
                       END ORDER BY o), array_agg(coalesce(c->>'owner', p_key_id) ORDER BY o)
        INTO v_cap_buckets, v_cap_owners
        FROM jsonb_array_elements(p_caps) WITH ORDINALITY t(c, o);
      SELECT array_agg(d.owner ORDER BY d.owner, d.bucket), array_agg(d.bucket ORDER BY d.owner, d.bucket)
        INTO v_owners, v_buckets
        FROM (SELECT DISTINCT u.owner, u.bucket FROM unnest(v_cap_owners, v_cap_buckets) u(owner, bucket)) d;
      -- New buckets only (a new minute, day, run...): a speculative insert per request costs more.
      INSERT INTO budget_counters (key_id, bucket)
        SELECT u.owner, u.bucket FROM unnest(v_owners, v_buckets) u(owner, bucket)
         WHERE NOT EXISTS (SELECT 1 FROM budget_counters bc WHERE bc.key_id = u.owner AND bc.bucket = u.bucket)
         ORDER BY 1, 2 ON CONFLICT DO NOTHING;
      -- Lock every counter of the call in (owner, bucket) order, by primary-key probes, and read them.
      SELECT jsonb_object_agg(s.owner || ' ' || s.bucket, jsonb_build_array(s.spent_usd + s.reserved_usd, s.requests))
        INTO v_counters
        FROM (SELECT u.owner, u.bucket, c.spent_usd, c.reserved_usd, c.requests
                FROM unnest(v_owners, v_buckets) u(owner, bucket)
               CROSS JOIN LATERAL (SELECT bc.spent_usd, bc.reserved_usd, bc.requests FROM budget_counters bc
                                    WHERE bc.key_id = u.owner AND bc.bucket = u.bucket FOR UPDATE) c) s;
      FOR i IN 1 .. cardinality(v_cap_buckets) LOOP
        v_cap := p_caps->(i - 1);
        v_used := (v_counters->(v_cap_owners[i] || ' ' || v_cap_buckets[i])->>0)::numeric;
        v_whose := CASE WHEN v_cap_owners[i] = p_key_id THEN ''
                        ELSE format(' on %s, which delegated this key', v_cap_owners[i]) END;
        v_cap_message := NULL;
        IF v_cap ? 'usd' AND v_used + p_predicted > (v_cap->>'usd')::numeric THEN
          v_cap_message := format(
            'Cap of %s USD per %s reached%s: %s USD already spent or reserved, this call needs %s USD.',
            v_cap->>'usd', v_cap->>'window', v_whose, round(v_used, 2), round(p_predicted, 2));
        ELSIF v_cap ? 'requests'
              AND (v_counters->(v_cap_owners[i] || ' ' || v_cap_buckets[i])->>1)::bigint + 1 > (v_cap->>'requests')::bigint THEN
          v_cap_message := format('Cap of %s requests per %s reached%s.', v_cap->>'requests', v_cap->>'window', v_whose);
        END IF;
        CONTINUE WHEN v_cap_message IS NULL;
        IF v_cap->>'action' = 'require_approval' THEN
          IF NOT v_needs_approval THEN
            v_needs_approval := true; v_approval_reason := 'cap_requires_approval'; v_approval_message := v_cap_message;
          END IF;
        ELSIF p_mode = 'shadow' THEN
          IF v_decision = 'allowed' THEN
            v_decision := 'shadow_blocked'; v_reason := 'cap_exceeded'; v_message := v_cap_message;
          END IF;
        ELSE
          v_decision := 'blocked'; v_reason := 'cap_exceeded'; v_message := v_cap_message;
          EXIT;
        END IF;
      END LOOP;
    END IF;

    IF v_decision <> 'blocked' AND v_needs_approval THEN
      SELECT * INTO v_approval FROM approvals a
       WHERE a.key_id = p_key_id AND a.fingerprint = p_approval->>'fingerprint'
         AND a.status IN ('pending', 'approved', 'denied') AND a.expires_at > v_now
       ORDER BY a.created_at DESC LIMIT 1 FOR UPDATE;
      IF FOUND AND v_approval.status = 'approved' THEN
        v_approval_id := v_approval.id;  -- passes once: marked used below, with this row's id
      ELSIF FOUND AND v_approval.status = 'denied' THEN
        v_approval_id := v_approval.id;
        v_decision := 'blocked'; v_reason := 'approval_denied';
        v_message := format('An operator denied approval %s for this exact request.', v_approval.id);
      ELSIF p_mode = 'shadow' THEN
        IF v_decision = 'allowed' THEN
          v_decision := 'shadow_blocked'; v_reason := v_approval_reason; v_message := v_approval_message;
        END IF;
      ELSE
        IF FOUND THEN
          v_approval_id := v_approval.id;
        ELSE
          v_approval_id := 'apr_' || substr(md5(random()::text || clock_timestamp()::text), 1, 20);
          v_new_approval := true;
        END IF;
        v_decision := 'approval_required'; v_reason := v_approval_reason;
        v_message := format('%s This call needs an operator''s approval: %s is pending. Once it is approved, '
                            'retry this exact request.', v_approval_message, v_approval_id);
      END IF;
    END IF;

    IF v_decision IN ('allowed', 'shadow_blocked') AND v_buckets IS NOT NULL THEN
      UPDATE budget_counters bc SET reserved_usd = bc.reserved_usd + p_predicted, requests = bc.requests + 1,
             updated_at = v_now
        FROM unnest(v_owners, v_buckets) u(owner, bucket)
       WHERE bc.key_id = u.owner AND bc.bucket = u.bucket;
    END IF;
  END IF;

  v_row := jsonb_populate_record(NULL::audit_events, p_row);
  v_row.id := nextval('audit_events_id_seq'::regclass);
  v_row.ts := v_now;
  v_row.decision := v_decision;
  v_row.reason := v_reason;
  v_row.message := v_message;
  v_row.predicted_usd := p_predicted;
  IF v_decision IN ('allowed', 'shadow_blocked') THEN
    v_row.state := 'pending';
  ELSE
    v_row.state := 'final';
    v_row.finalized_at := v_now;
    v_row.cost_usd := 0;
    v_row.cost_source := 'none';
  END IF;
  INSERT INTO audit_events SELECT v_row.*;

  IF v_decision IN ('allowed', 'shadow_blocked') THEN
    INSERT INTO reservations (audit_id, key_id, usd, buckets, owners, created_at, expires_at)
      VALUES (v_row.id, p_key_id, p_predicted, coalesce(v_buckets, '{}'), coalesce(v_owners, '{}'), v_now,
              v_now + make_interval(secs => p_ttl_seconds));
    IF v_approval_id IS NOT NULL THEN
      UPDATE approvals SET status = 'used', used_audit_id = v_row.id WHERE id = v_approval_id;
    END IF;
  ELSIF v_new_approval THEN
    INSERT INTO approvals (id, key_id, fingerprint, status, reason, message, method, path, endpoint,
                           agent_run_id, predicted_usd, request, audit_id, created_at, expires_at)
      VALUES (v_approval_id, p_key_id, p_approval->>'fingerprint', 'pending', v_approval_reason, v_approval_message,
              v_row.method, v_row.path, v_row.endpoint, v_run, p_predicted, p_approval->'request', v_row.id, v_now,
              v_now + make_interval(secs => (p_approval->>'ttl_seconds')::integer));
  END IF;
  RETURN QUERY SELECT v_row.id, v_decision, v_reason, v_message, v_approval_id;
END
$$;
"""

# tollgate_gate_fast: 0013's text with an owner per cap: counters locked, checked and updated by
# (owner, bucket), the reservation's owners written beside its buckets.
GATE_FAST = r"""
CREATE OR REPLACE FUNCTION tollgate_gate_fast(p_key_id text, p_items jsonb, p_idx integer[])
RETURNS TABLE (idx integer, audit_id bigint, decision text, reason text, message text, approval_id text)
LANGUAGE plpgsql AS $$
DECLARE
  v_now timestamptz := now();
  v_stamp text := to_char(v_now AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI');
  v_key record;
  v_ids bigint[];
  -- One entry per (item, cap) of the forwarded items: item index, cap ordinal, the counter's
  -- owner and bucket, the item's predicted USD and the cap itself.
  v_cap_item integer[];
  v_cap_no integer[];
  v_cap_owner text[];
  v_cap_bucket text[];
  v_cap_usd numeric[];
  v_cap jsonb[];
  v_owners text[];
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
         array_agg(coalesce(c.c->>'owner', p_key_id) ORDER BY u.i, c.o),
         array_agg(CASE c.c->>'window'
                     WHEN 'minute' THEN 'minute:' || v_stamp
                     WHEN 'hour'   THEN 'hour:' || left(v_stamp, 13)
                     WHEN 'day'    THEN 'day:' || left(v_stamp, 10)
                     WHEN 'month'  THEN 'month:' || left(v_stamp, 7)
                     WHEN 'total'  THEN 'total'
                     WHEN 'run'    THEN 'run:' || coalesce(p_items->u.i->'row'->>'agent_run_id', '')
                   END ORDER BY u.i, c.o),
         array_agg((p_items->u.i->>'predicted')::numeric ORDER BY u.i, c.o), array_agg(c.c ORDER BY u.i, c.o)
    INTO v_cap_item, v_cap_no, v_cap_owner, v_cap_bucket, v_cap_usd, v_cap
    FROM unnest(p_idx) u(i)
   CROSS JOIN LATERAL jsonb_array_elements(p_items->u.i->'caps') WITH ORDINALITY c(c, o)
   WHERE p_items->u.i->'row'->>'decision' IN ('allowed', 'shadow_blocked');

  IF v_cap_item IS NOT NULL THEN
    SELECT array_agg(d.w ORDER BY d.w, d.b), array_agg(d.b ORDER BY d.w, d.b) INTO v_owners, v_buckets
      FROM (SELECT DISTINCT u.w, u.b FROM unnest(v_cap_owner, v_cap_bucket) u(w, b)) d;
    INSERT INTO budget_counters (key_id, bucket)
      SELECT u.w, u.b FROM unnest(v_owners, v_buckets) u(w, b) ORDER BY 1, 2 ON CONFLICT DO NOTHING;
    -- Lock the counters in (owner, bucket) order, then check each item's caps with everything
    -- admitted before it in this batch (running sums per cap and counter, in item order).
    WITH locked AS MATERIALIZED (
      SELECT u.owner, u.bucket, c.spent_usd, c.reserved_usd, c.requests
        FROM unnest(v_owners, v_buckets) u(owner, bucket)
       CROSS JOIN LATERAL (SELECT bc.spent_usd, bc.reserved_usd, bc.requests FROM budget_counters bc
                            WHERE bc.key_id = u.owner AND bc.bucket = u.bucket FOR UPDATE) c
    )
    SELECT bool_and((NOT (x.cap ? 'usd') OR bc.spent_usd + bc.reserved_usd + x.usd <= (x.cap->>'usd')::numeric)
                    AND (NOT (x.cap ? 'requests') OR bc.requests + x.calls <= (x.cap->>'requests')::bigint))
      INTO v_fits
      FROM (SELECT u.w, u.b, u.cap, sum(u.p) OVER win AS usd, count(*) OVER win AS calls
              FROM unnest(v_cap_item, v_cap_no, v_cap_owner, v_cap_bucket, v_cap_usd, v_cap) u(i, o, w, b, p, cap)
            WINDOW win AS (PARTITION BY u.o, u.w, u.b ORDER BY u.i)) x
      JOIN locked bc ON bc.owner = x.w AND bc.bucket = x.b;
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
  INSERT INTO reservations (audit_id, key_id, usd, buckets, owners, created_at, expires_at)
    SELECT u.id, p_key_id, (p_items->u.i->>'predicted')::numeric, coalesce(ib.buckets, '{}'),
           coalesce(ib.owners, '{}'), v_now, v_now + make_interval(secs => (p_items->u.i->>'ttl')::integer)
      FROM unnest(p_idx, v_ids) u(i, id)
      LEFT JOIN (SELECT d.i, array_agg(d.b ORDER BY d.w, d.b) AS buckets, array_agg(d.w ORDER BY d.w, d.b) AS owners
                   FROM (SELECT DISTINCT c.i, c.w, c.b FROM unnest(v_cap_item, v_cap_owner, v_cap_bucket) c(i, w, b)) d
                  GROUP BY d.i) ib ON ib.i = u.i
     WHERE p_items->u.i->'row'->>'decision' IN ('allowed', 'shadow_blocked');
  IF v_cap_item IS NOT NULL THEN
    FOR v_add IN SELECT d.w, d.b, sum(d.p) AS usd, count(*) AS calls
                   FROM (SELECT DISTINCT c.i, c.w, c.b, c.p
                           FROM unnest(v_cap_item, v_cap_owner, v_cap_bucket, v_cap_usd) c(i, w, b, p)) d
                  GROUP BY d.w, d.b ORDER BY d.w, d.b LOOP
      UPDATE budget_counters bc SET reserved_usd = bc.reserved_usd + v_add.usd, requests = bc.requests + v_add.calls,
             updated_at = v_now
       WHERE bc.key_id = v_add.w AND bc.bucket = v_add.b;
    END LOOP;
  END IF;
  RETURN QUERY SELECT u.i, u.id, p_items->u.i->'row'->>'decision', p_items->u.i->'row'->>'reason',
                      p_items->u.i->'row'->>'message', NULL::text
                 FROM unnest(p_idx, v_ids) u(i, id);
END
$$;
"""

# tollgate_gate_batch: 0012's text (0013's generic plans now in its SET clause), which first locks
# every counter row of a batch with a delegated item, in (owner, bucket) order.
GATE_BATCH = r"""
CREATE OR REPLACE FUNCTION tollgate_gate_batch(p_items jsonb)
RETURNS TABLE (idx integer, audit_id bigint, decision text, reason text, message text, approval_id text)
LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = force_generic_plan AS $$
DECLARE
  v_key text;
  v_idx integer[];
  v_i integer;
  v_item jsonb;
BEGIN
  IF jsonb_array_length(p_items) > 1 AND jsonb_path_exists(p_items, '$[*].caps[*].owner') THEN
    -- A delegated item locks its ancestors' counters too, which sort anywhere among the batch's
    -- keys: lock all of the batch's counter rows first, in the one global order. (Alone, an item
    -- locks its own counters in that order anyway.)
    INSERT INTO budget_counters (key_id, bucket)
      SELECT DISTINCT coalesce(c.c->>'owner', t.e->>'key_id'), tollgate_bucket(c.c->>'window', now(), t.e->'row'->>'agent_run_id')
        FROM jsonb_array_elements(p_items) t(e) CROSS JOIN LATERAL jsonb_array_elements(t.e->'caps') c(c)
       WHERE t.e->'row'->>'decision' IN ('allowed', 'shadow_blocked')
       ORDER BY 1, 2 ON CONFLICT DO NOTHING;
    PERFORM 1
       FROM (SELECT DISTINCT coalesce(c.c->>'owner', t.e->>'key_id') AS owner,
                    tollgate_bucket(c.c->>'window', now(), t.e->'row'->>'agent_run_id') AS bucket
               FROM jsonb_array_elements(p_items) t(e) CROSS JOIN LATERAL jsonb_array_elements(t.e->'caps') c(c)
              WHERE t.e->'row'->>'decision' IN ('allowed', 'shadow_blocked') ORDER BY 1, 2) u
      CROSS JOIN LATERAL (SELECT 1 FROM budget_counters bc
                           WHERE bc.key_id = u.owner AND bc.bucket = u.bucket FOR UPDATE) l;
  END IF;
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

# tollgate_settle: 0013's text with each bucket's owner; a created object recorded for the key
# and every ancestor.
SETTLE = r"""
CREATE OR REPLACE FUNCTION tollgate_settle(p_audit_id bigint, p_cost numeric, p_patch jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  v_res reservations;
  v_key_id text;
  v_created jsonb := nullif(p_patch->'created', 'null'::jsonb);
  v_ts timestamptz;
  v_counter record;
BEGIN
  DELETE FROM reservations r WHERE r.audit_id = p_audit_id RETURNING * INTO v_res;
  IF FOUND AND cardinality(v_res.buckets) > 0 THEN
    FOR v_counter IN SELECT DISTINCT coalesce(u.owner, v_res.key_id) AS owner, u.bucket
                       FROM unnest(v_res.buckets, v_res.owners) u(bucket, owner) ORDER BY 1, 2 LOOP
      UPDATE budget_counters bc SET
        reserved_usd = bc.reserved_usd - CASE WHEN v_res.reconciled_at IS NULL THEN v_res.usd ELSE 0 END,
        spent_usd = bc.spent_usd + p_cost - CASE WHEN v_res.reconciled_at IS NULL THEN 0 ELSE v_res.usd END,
        updated_at = now()
       WHERE bc.key_id = v_counter.owner AND bc.bucket = v_counter.bucket;
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
      WITH RECURSIVE chain AS (
        SELECT k.id, k.parent_key_id FROM vault_keys k WHERE k.id = v_key_id
        UNION ALL
        SELECT k.id, k.parent_key_id FROM vault_keys k JOIN chain c ON k.id = c.parent_key_id
      )
      SELECT c.id, v_created->>'object_id', v_created->>'kind', v_created->>'customer_id',
             (v_created->>'amount_minor')::bigint, v_created->>'currency', p_audit_id
        FROM chain c
      ON CONFLICT DO NOTHING;
  END IF;
END
$$;
"""

# tollgate_settle_batch: 0013's text with each bucket's owner; a batch of up to six with a
# delegated item locks its counters first in (owner, bucket) order; created objects recorded
# for each key's chain.
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
  -- One entry per (reservation, bucket): the counter's owner, what to move from reserved_usd to spent_usd.
  v_key text[];
  v_bucket text[];
  v_reserved numeric[];  -- still held in reserved_usd (0 once the reconciler charged it)
  v_spent numeric[];  -- the actual cost, less what the reconciler already charged
  v_move record;
BEGIN
  -- A few items go one at a time, as in 0008: planning the set-based UPDATE of the partitioned
  -- audit table costs ~0.4 ms, more than settling up to ~6 items one by one (~65 us each).
  IF jsonb_array_length(p_items) <= 6 THEN
    IF jsonb_array_length(p_items) > 1 AND jsonb_path_exists(p_items, '$[*] ? (@.delegated == true)') THEN
      -- One by one, a delegated item would lock its ancestors' rows between other keys' rows.
      PERFORM 1
         FROM (SELECT DISTINCT coalesce(u.owner, r.key_id) AS owner, u.bucket
                 FROM jsonb_array_elements(p_items) t(e)
                 JOIN reservations r ON r.audit_id = (t.e->>'audit_id')::bigint
                CROSS JOIN LATERAL unnest(r.buckets, r.owners) u(bucket, owner) ORDER BY 1, 2) x
        CROSS JOIN LATERAL (SELECT 1 FROM budget_counters bc
                             WHERE bc.key_id = x.owner AND bc.bucket = x.bucket FOR UPDATE) l;
    END IF;
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
    RETURNING r.audit_id, r.key_id, r.buckets, r.owners, r.created_at, r.usd, r.reconciled_at IS NOT NULL AS charged
  ), moves AS (
    SELECT coalesce(b.owner, g.key_id) AS key_id, b.bucket,
           CASE WHEN g.charged THEN 0 ELSE g.usd END AS reserved,
           u.cost - CASE WHEN g.charged THEN g.usd ELSE 0 END AS spent
      FROM gone g CROSS JOIN LATERAL unnest(g.buckets, g.owners) b(bucket, owner)
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
    SELECT c.id, s.created->>'object_id', s.created->>'kind', s.created->>'customer_id',
           (s.created->>'amount_minor')::bigint, s.created->>'currency', s.id
      FROM settled s
     CROSS JOIN LATERAL (
       WITH RECURSIVE chain AS (
         SELECT k.id, k.parent_key_id FROM vault_keys k WHERE k.id = s.key_id
         UNION ALL
         SELECT k.id, k.parent_key_id FROM vault_keys k JOIN chain h ON k.id = h.parent_key_id
       ) SELECT chain.id FROM chain) c
     WHERE s.created IS NOT NULL AND s.key_id IS NOT NULL
    ON CONFLICT DO NOTHING;

  IF v_key IS NOT NULL THEN
    -- Last, so the counters stay locked only for this: in (owner, bucket) order, as gates lock them.
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

# tollgate_reconcile: 0007's text with each bucket's owner, probed and locked in (owner, bucket) order.
RECONCILE = r"""
CREATE OR REPLACE FUNCTION tollgate_reconcile(p_limit integer DEFAULT 1000) RETURNS integer
LANGUAGE plpgsql SET plan_cache_mode = force_custom_plan AS $$
DECLARE
  v_res reservations;
  v_count integer := 0;
  v_counter record;
BEGIN
  FOR v_res IN
    SELECT * FROM reservations r WHERE r.reconciled_at IS NULL AND r.expires_at < now()
     ORDER BY r.expires_at LIMIT p_limit FOR UPDATE SKIP LOCKED
  LOOP
    FOR v_counter IN SELECT DISTINCT coalesce(u.owner, v_res.key_id) AS owner, u.bucket
                       FROM unnest(v_res.buckets, v_res.owners) u(bucket, owner) ORDER BY 1, 2 LOOP
      UPDATE budget_counters bc SET reserved_usd = bc.reserved_usd - v_res.usd,
             spent_usd = bc.spent_usd + v_res.usd, updated_at = now()
       WHERE bc.key_id = v_counter.owner AND bc.bucket = v_counter.bucket;
    END LOOP;
    UPDATE reservations r SET reconciled_at = now() WHERE r.audit_id = v_res.audit_id;
    UPDATE audit_events a SET state = 'reconciled', cost_usd = a.predicted_usd, cost_source = 'estimated',
           reason = coalesce(a.reason, 'reservation_expired'), finalized_at = now()
     WHERE a.id = v_res.audit_id AND a.ts = v_res.created_at AND a.state = 'pending';
    v_count := v_count + 1;
  END LOOP;
  DELETE FROM reservations r WHERE r.reconciled_at < now() - interval '1 day';
  RETURN v_count;
END
$$;
"""

# tollgate_reprice: 0003's text moving the counters of the key and of every ancestor, in
# (owner, bucket) order.
REPRICE = r"""
CREATE OR REPLACE FUNCTION tollgate_reprice(p_audit_id bigint, p_cost numeric) RETURNS numeric
LANGUAGE plpgsql SET plan_cache_mode = force_custom_plan AS $$
DECLARE
  v_row audit_events;
  v_delta numeric;
  v_counter record;
BEGIN
  SELECT * INTO v_row FROM audit_events a
   WHERE a.id = p_audit_id AND a.cost_source = 'estimated' AND a.state IN ('final', 'reconciled') FOR UPDATE;
  IF NOT FOUND THEN
    RETURN NULL;  -- already repriced, or not an estimate
  END IF;
  v_delta := p_cost - coalesce(v_row.cost_usd, 0);
  FOR v_counter IN
    WITH RECURSIVE chain AS (
      SELECT k.id, k.parent_key_id FROM vault_keys k WHERE k.id = v_row.key_id
      UNION ALL
      SELECT k.id, k.parent_key_id FROM vault_keys k JOIN chain c ON k.id = c.parent_key_id
    )
    SELECT DISTINCT o.id AS owner, tollgate_bucket(w, v_row.ts, v_row.agent_run_id) AS bucket
      FROM chain o
     CROSS JOIN unnest(ARRAY['minute', 'hour', 'day', 'month', 'total', 'run']) w
     ORDER BY 1, 2
  LOOP
    UPDATE budget_counters bc SET spent_usd = bc.spent_usd + v_delta, updated_at = now()
     WHERE bc.key_id = v_counter.owner AND bc.bucket = v_counter.bucket;
  END LOOP;
  UPDATE audit_events a SET cost_usd = p_cost, cost_source = 'parsed', cost_reconciled_at = now()
   WHERE a.id = p_audit_id;
  RETURN v_delta;
END
$$;
"""

FUNCTIONS = [GATE, GATE_FAST, GATE_BATCH, SETTLE, SETTLE_BATCH, RECONCILE, REPRICE]
