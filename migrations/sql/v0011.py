"""Pruning closed counter buckets, as migration 0011 created it.

budget_counters gains a row per key for every minute (and hour) in which the key made a
call: ~1,440 rows a day per key, kept forever, though a cap only ever reads the current
minute or hour. Rows of a minute bucket untouched for 15 minutes (an hour bucket for 3
hours) belong to a window that is over: a late settle or reprice of a call from it would
only correct history that no cap reads again (day, month, total and run buckets are kept).
SKIP LOCKED: a row some gate or settle holds is simply left for the next sweep, so the
sweep never waits on, or deadlocks with, the request path.
"""

PRUNE = r"""
CREATE FUNCTION tollgate_prune_counters(p_limit integer DEFAULT 5000) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  v_count integer;
BEGIN
  WITH closed AS (
    SELECT bc.key_id, bc.bucket FROM budget_counters bc
     WHERE (bc.bucket LIKE 'minute:%' AND bc.updated_at < now() - interval '15 minutes')
        OR (bc.bucket LIKE 'hour:%' AND bc.updated_at < now() - interval '3 hours')
     ORDER BY bc.key_id, bc.bucket LIMIT p_limit FOR UPDATE SKIP LOCKED
  )
  DELETE FROM budget_counters bc USING closed c WHERE bc.key_id = c.key_id AND bc.bucket = c.bucket;
  GET DIAGNOSTICS v_count = ROW_COUNT;
  RETURN v_count;
END
$$;
"""
