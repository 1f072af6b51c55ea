"""Group commit for the gate, as migration 0006 created it.

One hot budget row with one durable commit per request caps throughput at roughly one
lock hold (gate + fsync) per request. ``tollgate_gate_batch`` decides many concurrent
requests in one transaction: each is still judged in order under the same row locks,
with exactly the single-request gate's logic, but the batch pays for one commit.
Items are taken in key order, so concurrent batches lock counter rows in one global
order (key, then bucket) and cannot deadlock. Each item runs in its own subtransaction:
one failing item is answered with an error and does not take the others down.
"""

GATE_BATCH = r"""
CREATE FUNCTION tollgate_gate_batch(p_items jsonb)
RETURNS TABLE (idx integer, audit_id bigint, decision text, reason text, message text, approval_id text)
LANGUAGE plpgsql AS $$
DECLARE
  v_item record;
  v_result record;
BEGIN
  FOR v_item IN
    SELECT (t.ordinality - 1)::integer AS i, t.value AS a
      FROM jsonb_array_elements(p_items) WITH ORDINALITY t
     ORDER BY t.value->>'key_id', t.ordinality
  LOOP
    BEGIN
      SELECT * INTO v_result FROM tollgate_gate(
        v_item.a->>'key_id', v_item.a->>'policy_id', (v_item.a->>'policy_version')::integer, v_item.a->'row',
        v_item.a->'caps', (v_item.a->>'predicted')::numeric, (v_item.a->>'ttl')::integer, v_item.a->>'mode',
        nullif(v_item.a->'approval', 'null'::jsonb));
      RETURN QUERY SELECT v_item.i, v_result.audit_id, v_result.decision, v_result.reason, v_result.message,
                          v_result.approval_id;
    EXCEPTION WHEN OTHERS THEN
      RETURN QUERY SELECT v_item.i, NULL::bigint, 'error'::text, SQLSTATE::text, SQLERRM::text, NULL::text;
    END;
  END LOOP;
END
$$;
"""
