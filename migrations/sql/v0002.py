"""SQL functions as migration 0002 created them: the policy engine's gate, settle and reconcile.

Everything that must be decided atomically across proxy processes happens here, under
row locks, in one statement per request step. Counter rows are always locked in bucket
order (tollgate_lock_counters) so gates, settles and the reconciler never deadlock.
"""

LOCK_COUNTERS = r"""
CREATE FUNCTION tollgate_lock_counters(p_key_id text, p_buckets text[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM 1 FROM budget_counters bc
    WHERE bc.key_id = p_key_id AND bc.bucket = ANY (p_buckets) ORDER BY bc.bucket FOR UPDATE;
END
$$;
"""

# p_row: the audit row so far; its decision is the policy's verdict on the request alone:
#   'allowed', 'blocked' (record and refuse) or 'shadow_blocked' (would be refused; forward anyway).
# p_caps: [{"window": "day", "usd": "200.00" | "requests": 10, "action": "block" | "require_approval"}]
# p_mode: 'enforce' | 'shadow'
# p_approval: {"fingerprint", "required": bool, "reason", "message", "ttl_seconds", "request": {...}}
GATE = r"""
CREATE FUNCTION tollgate_gate(
  p_key_id text, p_policy_id text, p_policy_version integer, p_row jsonb, p_caps jsonb, p_predicted numeric,
  p_ttl_seconds integer, p_mode text, p_approval jsonb
) RETURNS TABLE (audit_id bigint, decision text, reason text, message text, approval_id text)
LANGUAGE plpgsql AS $$
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
  v_counter record;
  v_cap_message text;
  v_buckets text[];
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
      SELECT array_agg(DISTINCT tollgate_bucket(c->>'window', v_now, v_run)) INTO v_buckets
        FROM jsonb_array_elements(p_caps) c;
      -- New buckets only (a new minute, day, run...): a speculative insert per request costs more.
      INSERT INTO budget_counters (key_id, bucket)
        SELECT p_key_id, b FROM unnest(v_buckets) b
         WHERE NOT EXISTS (SELECT 1 FROM budget_counters bc WHERE bc.key_id = p_key_id AND bc.bucket = b)
         ORDER BY b ON CONFLICT DO NOTHING;
      PERFORM tollgate_lock_counters(p_key_id, v_buckets);
      FOR v_cap IN SELECT c FROM jsonb_array_elements(p_caps) c LOOP
        SELECT * INTO v_counter FROM budget_counters bc
          WHERE bc.key_id = p_key_id AND bc.bucket = tollgate_bucket(v_cap->>'window', v_now, v_run);
        v_cap_message := NULL;
        IF v_cap ? 'usd' AND v_counter.spent_usd + v_counter.reserved_usd + p_predicted > (v_cap->>'usd')::numeric THEN
          v_cap_message := format(
            'Cap of %s USD per %s reached: %s USD already spent or reserved, this call needs %s USD.',
            v_cap->>'usd', v_cap->>'window', round(v_counter.spent_usd + v_counter.reserved_usd, 2), round(p_predicted, 2));
        ELSIF v_cap ? 'requests' AND v_counter.requests + 1 > (v_cap->>'requests')::bigint THEN
          v_cap_message := format('Cap of %s requests per %s reached.', v_cap->>'requests', v_cap->>'window');
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
       WHERE bc.key_id = p_key_id AND bc.bucket = ANY (v_buckets);
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
    INSERT INTO reservations (audit_id, key_id, usd, buckets, created_at, expires_at)
      VALUES (v_row.id, p_key_id, p_predicted, coalesce(v_buckets, '{}'), v_now,
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

# Settle: the reservation becomes the actual cost; the audit row is finalised; an object the
# call created is recorded for record-level scope. A reservation the reconciler already
# charged at its estimate is corrected by the difference, so nothing is counted twice.
SETTLE = r"""
CREATE FUNCTION tollgate_settle(p_audit_id bigint, p_cost numeric, p_patch jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  v_res reservations;
  v_key_id text;
  v_created jsonb := nullif(p_patch->'created', 'null'::jsonb);
BEGIN
  DELETE FROM reservations r WHERE r.audit_id = p_audit_id RETURNING * INTO v_res;
  IF FOUND AND cardinality(v_res.buckets) > 0 THEN
    PERFORM tollgate_lock_counters(v_res.key_id, v_res.buckets);
    UPDATE budget_counters bc SET
      reserved_usd = bc.reserved_usd - CASE WHEN v_res.reconciled_at IS NULL THEN v_res.usd ELSE 0 END,
      spent_usd = bc.spent_usd + p_cost - CASE WHEN v_res.reconciled_at IS NULL THEN 0 ELSE v_res.usd END,
      updated_at = now()
     WHERE bc.key_id = v_res.key_id AND bc.bucket = ANY (v_res.buckets);
  END IF;
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
  WHERE a.id = p_audit_id
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

# A reservation past its expiry belongs to a request whose process died or hung. The call may
# have reached the vendor, so its estimate is charged (caps err on the safe side) and its
# audit row is marked 'reconciled', never deleted. A late settle corrects the difference.
RECONCILE = r"""
CREATE FUNCTION tollgate_reconcile(p_limit integer DEFAULT 1000) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  v_res reservations;
  v_count integer := 0;
BEGIN
  FOR v_res IN
    SELECT * FROM reservations r WHERE r.reconciled_at IS NULL AND r.expires_at < now()
     ORDER BY r.expires_at LIMIT p_limit FOR UPDATE SKIP LOCKED
  LOOP
    IF cardinality(v_res.buckets) > 0 THEN
      PERFORM tollgate_lock_counters(v_res.key_id, v_res.buckets);
      UPDATE budget_counters bc SET reserved_usd = bc.reserved_usd - v_res.usd,
             spent_usd = bc.spent_usd + v_res.usd, updated_at = now()
       WHERE bc.key_id = v_res.key_id AND bc.bucket = ANY (v_res.buckets);
    END IF;
    UPDATE reservations r SET reconciled_at = now() WHERE r.audit_id = v_res.audit_id;
    UPDATE audit_events a SET state = 'reconciled', cost_usd = a.predicted_usd, cost_source = 'estimated',
           reason = coalesce(a.reason, 'reservation_expired'), finalized_at = now()
     WHERE a.id = v_res.audit_id AND a.state = 'pending';
    v_count := v_count + 1;
  END LOOP;
  DELETE FROM reservations r WHERE r.reconciled_at < now() - interval '1 day';
  RETURN v_count;
END
$$;
"""
