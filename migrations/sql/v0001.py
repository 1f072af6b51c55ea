"""SQL functions as migration 0001 created them (kept verbatim: migrations never change)."""

BUCKET_FUNCTION = r"""
-- The counter bucket a cap window falls into at time ts, in UTC.
CREATE FUNCTION tollgate_bucket(p_window text, p_ts timestamptz, p_run_id text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE p_window
    WHEN 'minute' THEN 'minute:' || to_char(p_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI')
    WHEN 'hour'   THEN 'hour:'   || to_char(p_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24')
    WHEN 'day'    THEN 'day:'    || to_char(p_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD')
    WHEN 'month'  THEN 'month:'  || to_char(p_ts AT TIME ZONE 'UTC', 'YYYY-MM')
    WHEN 'total'  THEN 'total'
    WHEN 'run'    THEN 'run:'    || coalesce(p_run_id, '')
  END
$$;
"""

# The gate: one statement, one round trip, one commit. In order:
#   1. the key exists, is active, is not expired (revocation is read here, never from a cache);
#   2. the caller evaluated the key's current policy version (else 'stale': re-read and retry);
#   3. for a call the policy allowed, every cap fits the predicted cost: counters are locked in
#      bucket order (no deadlocks between gates), checked, and reserved;
#   4. the audit row is inserted: 'pending' when allowed, final otherwise; the reservation too.
GATE_FUNCTION = r"""
CREATE FUNCTION tollgate_gate(
  p_key_id text, p_policy_version integer, p_row jsonb, p_caps jsonb, p_predicted numeric, p_ttl_seconds integer
) RETURNS TABLE (audit_id bigint, decision text, reason text, message text)
LANGUAGE plpgsql AS $$
DECLARE
  v_now timestamptz := now();
  v_decision text := p_row->>'decision';
  v_reason text := p_row->>'reason';
  v_message text := p_row->>'message';
  v_key record;
  v_cap jsonb;
  v_counter record;
  v_buckets text[];
  v_row audit_events;
BEGIN
  SELECT k.status, k.expires_at, p.current_version INTO v_key
    FROM vault_keys k JOIN policies p ON p.id = k.policy_id WHERE k.id = p_key_id;
  IF NOT FOUND THEN
    v_decision := 'blocked'; v_reason := 'unknown_key'; v_message := 'Invalid API key: this vault key does not exist.';
  ELSIF v_key.status <> 'active' THEN
    v_decision := 'blocked'; v_reason := 'key_revoked'; v_message := 'This vault key has been revoked.';
  ELSIF v_key.expires_at IS NOT NULL AND v_key.expires_at <= v_now THEN
    v_decision := 'blocked'; v_reason := 'key_expired'; v_message := 'This vault key has expired.';
  ELSIF p_policy_version IS NOT NULL AND v_key.current_version <> p_policy_version THEN
    RETURN QUERY SELECT NULL::bigint, 'stale'::text, 'policy_changed'::text, NULL::text;
    RETURN;
  ELSIF v_decision = 'allowed' AND jsonb_array_length(p_caps) > 0 THEN
    SELECT array_agg(DISTINCT tollgate_bucket(c->>'window', v_now, p_row->>'agent_run_id'))
      INTO v_buckets FROM jsonb_array_elements(p_caps) c;
    INSERT INTO budget_counters (key_id, bucket)
      SELECT p_key_id, b FROM unnest(v_buckets) b ORDER BY b ON CONFLICT DO NOTHING;
    PERFORM 1 FROM budget_counters bc
      WHERE bc.key_id = p_key_id AND bc.bucket = ANY (v_buckets) ORDER BY bc.bucket FOR UPDATE;
    FOR v_cap IN SELECT c FROM jsonb_array_elements(p_caps) c LOOP
      SELECT * INTO v_counter FROM budget_counters bc
        WHERE bc.key_id = p_key_id AND bc.bucket = tollgate_bucket(v_cap->>'window', v_now, p_row->>'agent_run_id');
      IF v_cap ? 'usd' AND v_counter.spent_usd + v_counter.reserved_usd + p_predicted > (v_cap->>'usd')::numeric THEN
        v_decision := 'blocked'; v_reason := 'cap_exceeded';
        v_message := format('Cap of %s USD per %s reached: %s USD already spent or reserved, this call needs %s USD.',
          v_cap->>'usd', v_cap->>'window', round(v_counter.spent_usd + v_counter.reserved_usd, 2), round(p_predicted, 2));
        EXIT;
      ELSIF v_cap ? 'requests' AND v_counter.requests + 1 > (v_cap->>'requests')::bigint THEN
        v_decision := 'blocked'; v_reason := 'cap_exceeded';
        v_message := format('Cap of %s requests per %s reached.', v_cap->>'requests', v_cap->>'window');
        EXIT;
      END IF;
    END LOOP;
    IF v_decision = 'allowed' THEN
      UPDATE budget_counters bc SET reserved_usd = bc.reserved_usd + p_predicted, requests = bc.requests + 1,
             updated_at = v_now
       WHERE bc.key_id = p_key_id AND bc.bucket = ANY (v_buckets);
    END IF;
  END IF;

  v_row := jsonb_populate_record(NULL::audit_events, p_row);
  v_row.id := nextval(pg_get_serial_sequence('audit_events', 'id'));
  v_row.ts := v_now;
  v_row.decision := v_decision;
  v_row.reason := v_reason;
  v_row.message := v_message;
  v_row.predicted_usd := p_predicted;
  IF v_decision = 'allowed' THEN
    v_row.state := 'pending';
  ELSE
    v_row.state := 'final';
    v_row.finalized_at := v_now;
    v_row.cost_usd := 0;
    v_row.cost_source := 'none';
  END IF;
  INSERT INTO audit_events SELECT v_row.*;
  IF v_decision = 'allowed' THEN
    INSERT INTO reservations (audit_id, key_id, usd, buckets, created_at, expires_at)
      VALUES (v_row.id, p_key_id, p_predicted, coalesce(v_buckets, '{}'), v_now,
              v_now + make_interval(secs => p_ttl_seconds));
  END IF;
  RETURN QUERY SELECT v_row.id, v_decision, v_reason, v_message;
END
$$;
"""

# Settle: the reservation is replaced by the actual cost (or released, for a call that
# moved nothing) and the audit row is finalised with what the vendor said.
SETTLE_FUNCTION = r"""
CREATE FUNCTION tollgate_settle(p_audit_id bigint, p_cost numeric, p_patch jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  v_res reservations;
BEGIN
  DELETE FROM reservations r WHERE r.audit_id = p_audit_id RETURNING * INTO v_res;
  IF FOUND AND cardinality(v_res.buckets) > 0 THEN
    UPDATE budget_counters bc
       SET reserved_usd = bc.reserved_usd - v_res.usd, spent_usd = bc.spent_usd + p_cost, updated_at = now()
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
  WHERE a.id = p_audit_id;
END
$$;
"""
