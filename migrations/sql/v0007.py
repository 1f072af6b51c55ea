"""SQL as migration 0007 wrote it: audit_events partitioned by month, and archiving.

One statement per string: asyncpg prepares each statement on its own.
"""

from migrations.sql import v0004

# The month boundaries are UTC whatever the session's TimeZone, so a partition's name and
# range mean the same thing to every client.
NEXT_MONTH_UTC = "(date_trunc('month', now() AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC'"

INDEXES = [
    "CREATE INDEX audit_events_run ON audit_events (agent_run_id, ts)",
    "CREATE INDEX audit_events_key_ts ON audit_events (key_id, ts)",
    "CREATE INDEX audit_events_ts ON audit_events (ts)",
    "CREATE INDEX audit_events_estimated ON audit_events (vendor, ts) WHERE cost_source = 'estimated'",
]
INDEX_SUFFIXES = ("run", "key_ts", "ts", "estimated")
VIEW_NAMES = ("blocked_calls", "spend_by_key_day", "spend_by_run")
VIEWS_AND_GRANTS = [*v0004.VIEWS, v0004.AUDITOR[-1]]

# The existing table keeps its rows and becomes the partition for everything before next
# month (no copy, one validating scan); an empty one is simply dropped. The id sequence
# moves to the new parent first, or dropping the old table would drop it too.
TO_PARTITIONED = [
    *[f"DROP VIEW {view}" for view in VIEW_NAMES],
    "ALTER TABLE audit_events RENAME TO audit_events_legacy",
    "ALTER TABLE audit_events_legacy RENAME CONSTRAINT audit_events_pkey TO audit_events_legacy_pkey",
    *[f"ALTER INDEX audit_events_{s} RENAME TO audit_events_legacy_{s}" for s in INDEX_SUFFIXES],
    "CREATE TABLE audit_events (LIKE audit_events_legacy INCLUDING DEFAULTS) PARTITION BY RANGE (ts)",
    "ALTER TABLE audit_events ADD CONSTRAINT audit_events_pkey PRIMARY KEY (id, ts)",
    *INDEXES,
    "ALTER SEQUENCE audit_events_id_seq OWNED BY audit_events.id",
    rf"""
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM audit_events_legacy) THEN
    ALTER TABLE audit_events_legacy DROP CONSTRAINT audit_events_legacy_pkey;
    ALTER TABLE audit_events_legacy ADD CONSTRAINT audit_events_legacy_pkey PRIMARY KEY (id, ts);
    EXECUTE format('ALTER TABLE audit_events ATTACH PARTITION audit_events_legacy FOR VALUES FROM (MINVALUE) TO (%L)',
                   {NEXT_MONTH_UTC});
  ELSE
    DROP TABLE audit_events_legacy;
  END IF;
END
$$
""",
    # A row whose month has no partition yet lands here instead of failing the gate; the
    # next partition run moves it out. Normally empty: partitions are made months ahead.
    "CREATE TABLE audit_events_default PARTITION OF audit_events DEFAULT",
    *VIEWS_AND_GRANTS,
]

# The partition for one month (UTC), made if missing. Rows already in the default partition
# for that month are moved into it first, so attaching never fails. NULL: another partition
# (the pre-partitioning one) already covers that month.
PARTITION_FOR_MONTH = r"""
CREATE FUNCTION tollgate_audit_partition(p_month date) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  v_from timestamp := date_trunc('month', p_month);
  v_to timestamp := date_trunc('month', p_month) + interval '1 month';
  v_name text := 'audit_events_' || to_char(date_trunc('month', p_month), 'YYYY_MM');
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('tollgate_audit_partition'));
  IF to_regclass(v_name) IS NOT NULL THEN
    RETURN v_name;
  END IF;
  BEGIN
    EXECUTE format('CREATE TABLE %I (LIKE audit_events INCLUDING DEFAULTS)', v_name);
    EXECUTE format('WITH moved AS (DELETE FROM audit_events_default WHERE ts >= %L AND ts < %L RETURNING *) '
                   'INSERT INTO %I SELECT * FROM moved',
                   v_from AT TIME ZONE 'UTC', v_to AT TIME ZONE 'UTC', v_name);
    EXECUTE format('ALTER TABLE audit_events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   v_name, v_from AT TIME ZONE 'UTC', v_to AT TIME ZONE 'UTC');
  EXCEPTION WHEN invalid_object_definition THEN  -- overlaps an existing partition
    RETURN NULL;
  END;
  RETURN v_name;
END
$$;
"""

# This month and the next p_months_ahead: run at migration time, at start-up and daily.
ENSURE_PARTITIONS = r"""
CREATE FUNCTION tollgate_audit_partitions_ensure(p_months_ahead integer DEFAULT 3) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  v_made integer := 0;
  v_month date;
BEGIN
  FOR i IN 0..p_months_ahead LOOP
    v_month := (date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => i))::date;
    IF to_regclass('audit_events_' || to_char(v_month, 'YYYY_MM')) IS NULL
       AND tollgate_audit_partition(v_month) IS NOT NULL THEN
      v_made := v_made + 1;
    END IF;
  END LOOP;
  RETURN v_made;
END
$$;
"""

# Archiving detaches a month's partition from the chain's view: its chain entries are marked
# with the archive, and the archive's digest over them is signed, so verify can tell rows
# that were archived from rows that were deleted.
ARCHIVE_TABLES = [
    r"""
CREATE TABLE audit_archives (
  partition_name text PRIMARY KEY,
  range_from timestamptz,
  range_to timestamptz NOT NULL,
  row_count bigint NOT NULL,
  first_seq bigint,
  last_seq bigint,
  digest bytea NOT NULL,
  signature bytea NOT NULL,
  public_key_id text NOT NULL,
  archived_at timestamptz NOT NULL DEFAULT now()
)
""",
    "ALTER TABLE audit_chain ADD COLUMN archived_in text",
    "GRANT SELECT ON audit_archives TO tollgate_auditor",
]

# Settle and reconcile find the audit row by id and by its ts, which the gate wrote into the
# reservation as created_at (the same now()), so Postgres reads one partition, not all.
SETTLE = r"""
CREATE OR REPLACE FUNCTION tollgate_settle(p_audit_id bigint, p_cost numeric, p_patch jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  v_res reservations;
  v_key_id text;
  v_created jsonb := nullif(p_patch->'created', 'null'::jsonb);
  v_ts timestamptz;
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
      VALUES (v_key_id, v_created->>'object_id', v_created->>'kind', v_created->>'customer_id',
              (v_created->>'amount_minor')::bigint, v_created->>'currency', p_audit_id)
      ON CONFLICT DO NOTHING;
  END IF;
END
$$;
"""

RECONCILE = r"""
CREATE OR REPLACE FUNCTION tollgate_reconcile(p_limit integer DEFAULT 1000) RETURNS integer
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
     WHERE a.id = v_res.audit_id AND a.ts = v_res.created_at AND a.state = 'pending';
    v_count := v_count + 1;
  END LOOP;
  DELETE FROM reservations r WHERE r.reconciled_at < now() - interval '1 day';
  RETURN v_count;
END
$$;
"""

# Downgrade: one plain table again, with every row of every attached partition.
TO_PLAIN = [
    *[f"DROP VIEW {view}" for view in VIEW_NAMES],
    "CREATE TABLE audit_events_plain (LIKE audit_events INCLUDING DEFAULTS)",
    "INSERT INTO audit_events_plain SELECT * FROM audit_events",
    "ALTER SEQUENCE audit_events_id_seq OWNED BY audit_events_plain.id",
    "DROP TABLE audit_events",
    "ALTER TABLE audit_events_plain RENAME TO audit_events",
    "ALTER TABLE audit_events ADD CONSTRAINT audit_events_pkey PRIMARY KEY (id)",
    *INDEXES,
    *VIEWS_AND_GRANTS,
]
