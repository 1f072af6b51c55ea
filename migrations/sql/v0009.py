"""The gate as migration 0009 rewrote it: the same decisions in fewer statements.

Only the cap check changed (migrations/sql/v0002.py has the rest, word for word). Before, each
gate called tollgate_bucket() (a to_char) once per cap for the bucket list and again per cap
in the check loop, locked the counters through tollgate_lock_counters, then read each cap's
counter with its own SELECT. Now the buckets come from one to_char of the gate's clock, and
one SELECT ... ORDER BY bucket FOR UPDATE both locks the counters (in the same order, so gates,
settles and the reconciler still cannot deadlock) and reads them. Everything happens while
the key's counter rows are locked, so the gate's own time is the cap on one key's calls/s.
"""

GATE = r"""
CREATE OR REPLACE FUNCTION tollgate_gate(
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
  v_stamp text;
  v_cap_buckets text[];
  v_counters jsonb;
  v_used numeric;
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
      -- Each cap's bucket from one to_char of the gate's clock; the names are tollgate_bucket's.
      v_stamp := to_char(v_now AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI');
      SELECT array_agg(CASE c->>'window'
                         WHEN 'minute' THEN 'minute:' || v_stamp
                         WHEN 'hour'   THEN 'hour:' || left(v_stamp, 13)
                         WHEN 'day'    THEN 'day:' || left(v_stamp, 10)
                         WHEN 'month'  THEN 'month:' || left(v_stamp, 7)
                         WHEN 'total'  THEN 'total'
                         WHEN 'run'    THEN 'run:' || coalesce(v_run, '')
                       END ORDER BY o) INTO v_cap_buckets
        FROM jsonb_array_elements(p_caps) WITH ORDINALITY t(c, o);
      SELECT array_agg(DISTINCT b ORDER BY b) INTO v_buckets FROM unnest(v_cap_buckets) b;
      -- New buckets only (a new minute, day, run...): a speculative insert per request costs more.
      INSERT INTO budget_counters (key_id, bucket)
        SELECT p_key_id, b FROM unnest(v_buckets) b
         WHERE NOT EXISTS (SELECT 1 FROM budget_counters bc WHERE bc.key_id = p_key_id AND bc.bucket = b)
         ORDER BY b ON CONFLICT DO NOTHING;
      -- Lock every counter of the call in bucket order (as tollgate_lock_counters does) and read them, at once.
      SELECT jsonb_object_agg(s.bucket, jsonb_build_array(s.spent_usd + s.reserved_usd, s.requests)) INTO v_counters
        FROM (SELECT bc.bucket, bc.spent_usd, bc.reserved_usd, bc.requests FROM budget_counters bc
               WHERE bc.key_id = p_key_id AND bc.bucket = ANY (v_buckets) ORDER BY bc.bucket FOR UPDATE) s;
      FOR i IN 1 .. cardinality(v_cap_buckets) LOOP
        v_cap := p_caps->(i - 1);
        v_used := (v_counters->v_cap_buckets[i]->>0)::numeric;
        v_cap_message := NULL;
        IF v_cap ? 'usd' AND v_used + p_predicted > (v_cap->>'usd')::numeric THEN
          v_cap_message := format(
            'Cap of %s USD per %s reached: %s USD already spent or reserved, this call needs %s USD.',
            v_cap->>'usd', v_cap->>'window', round(v_used, 2), round(p_predicted, 2));
        ELSIF v_cap ? 'requests' AND (v_counters->v_cap_buckets[i]->>1)::bigint + 1 > (v_cap->>'requests')::bigint THEN
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
