"""Group commit for the settle, and both batch functions without subtransactions, as
migration 0008 created them.

Concurrent settles are applied in one transaction on the relaxed pool (one commit, one
round trip). Items are taken in key order, as tollgate_gate_batch takes its items, so a
settle batch and a gate batch lock counter rows in the same global order (key, then bucket)
and cannot deadlock.

Neither batch wraps its items in subtransactions any more (0006's gate batch did, with an
EXCEPTION block per item). A transaction with more than 64 subtransactions overflows its
slot's cache, and from then on every snapshot in the cluster must look subtransactions up
in pg_subtrans: measured on the governed path at 64 connections, that doubled the gate's own
time and halved throughput. A failing item now fails its whole batch, which commits nothing;
proxy/gate.py then runs that batch's items one by one, so one bad item still spoils none of
the others.
"""

SETTLE_BATCH = r"""
CREATE FUNCTION tollgate_settle_batch(p_items jsonb) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  v_item jsonb;
  v_count integer := 0;
BEGIN
  FOR v_item IN
    SELECT t.value FROM jsonb_array_elements(p_items) WITH ORDINALITY t ORDER BY t.value->>'key_id', t.ordinality
  LOOP
    PERFORM tollgate_settle((v_item->>'audit_id')::bigint, (v_item->>'cost')::numeric, v_item->'patch');
    v_count := v_count + 1;
  END LOOP;
  RETURN v_count;
END
$$;
"""

GATE_BATCH = r"""
CREATE OR REPLACE FUNCTION tollgate_gate_batch(p_items jsonb)
RETURNS TABLE (idx integer, audit_id bigint, decision text, reason text, message text, approval_id text)
LANGUAGE plpgsql AS $$
DECLARE
  v_item record;
BEGIN
  FOR v_item IN
    SELECT (t.ordinality - 1)::integer AS i, t.value AS a
      FROM jsonb_array_elements(p_items) WITH ORDINALITY t
     ORDER BY t.value->>'key_id', t.ordinality
  LOOP
    RETURN QUERY SELECT v_item.i, g.audit_id, g.decision, g.reason, g.message, g.approval_id
      FROM tollgate_gate(
        v_item.a->>'key_id', v_item.a->>'policy_id', (v_item.a->>'policy_version')::integer, v_item.a->'row',
        v_item.a->'caps', (v_item.a->>'predicted')::numeric, (v_item.a->>'ttl')::integer, v_item.a->>'mode',
        nullif(v_item.a->'approval', 'null'::jsonb)) g;
  END LOOP;
END
$$;
"""
