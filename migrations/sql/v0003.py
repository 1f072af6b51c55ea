"""SQL functions as migration 0003 created them: repricing a call once the vendor prices it."""

# Twilio answers price: null at creation and prices the message later. When the vendor's
# price arrives, the audit row's estimate is replaced (predicted_usd keeps the prediction)
# and every counter the call was counted in moves by the difference, so caps stay exact.
REPRICE = r"""
CREATE FUNCTION tollgate_reprice(p_audit_id bigint, p_cost numeric) RETURNS numeric
LANGUAGE plpgsql AS $$
DECLARE
  v_row audit_events;
  v_buckets text[];
  v_delta numeric;
BEGIN
  SELECT * INTO v_row FROM audit_events a
   WHERE a.id = p_audit_id AND a.cost_source = 'estimated' AND a.state IN ('final', 'reconciled') FOR UPDATE;
  IF NOT FOUND THEN
    RETURN NULL;  -- already repriced, or not an estimate
  END IF;
  v_delta := p_cost - coalesce(v_row.cost_usd, 0);
  SELECT array_agg(tollgate_bucket(w, v_row.ts, v_row.agent_run_id) ORDER BY 1) INTO v_buckets
    FROM unnest(ARRAY['minute', 'hour', 'day', 'month', 'total', 'run']) w;
  PERFORM tollgate_lock_counters(v_row.key_id, v_buckets);
  UPDATE budget_counters bc SET spent_usd = bc.spent_usd + v_delta, updated_at = now()
   WHERE bc.key_id = v_row.key_id AND bc.bucket = ANY (v_buckets);
  UPDATE audit_events a SET cost_usd = p_cost, cost_source = 'parsed', cost_reconciled_at = now()
   WHERE a.id = p_audit_id;
  RETURN v_delta;
END
$$;
"""
