"""Group commit for the settle, as migration 0008 created it.

Concurrent settles are applied in one transaction on the relaxed pool (one commit, one
round trip). Items are taken in key order, as tollgate_gate_batch takes its items, so a
settle batch and a gate batch lock counter rows in the same global order (key, then bucket)
and cannot deadlock. Each item runs in its own subtransaction: a failing one is reported
(its reservation is then reconciled at its estimate) and does not undo the others. Only
failures are returned.
"""

SETTLE_BATCH = r"""
CREATE FUNCTION tollgate_settle_batch(p_items jsonb)
RETURNS TABLE (idx integer, sqlstate text, detail text)
LANGUAGE plpgsql AS $$
DECLARE
  v_item record;
BEGIN
  FOR v_item IN
    SELECT (t.ordinality - 1)::integer AS i, t.value AS a
      FROM jsonb_array_elements(p_items) WITH ORDINALITY t
     ORDER BY t.value->>'key_id', t.ordinality
  LOOP
    BEGIN
      PERFORM tollgate_settle((v_item.a->>'audit_id')::bigint, (v_item.a->>'cost')::numeric, v_item.a->'patch');
    EXCEPTION WHEN OTHERS THEN
      RETURN QUERY SELECT v_item.i, SQLSTATE::text, SQLERRM::text;
    END;
  END LOOP;
END
$$;
"""
