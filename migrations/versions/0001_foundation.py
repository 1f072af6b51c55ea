"""Foundation: keys, credentials, policies, budget counters, reservations, audit_events,
and the gate/settle functions that make the request path one round trip each.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

USD = sa.Numeric(20, 6)
NOW = sa.text("now()")


def _ts(name: str, nullable: bool = False, default: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, server_default=NOW if default else None)


def upgrade() -> None:
    op.create_table(
        "policies",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("vendor", sa.Text, nullable=False),
        sa.Column("name", sa.Text),
        sa.Column("current_version", sa.Integer, nullable=False),
        _ts("created_at"),
    )
    op.create_table(
        "policy_versions",
        sa.Column("policy_id", sa.Text, sa.ForeignKey("policies.id"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("document", pg.JSONB, nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("policy_id", "version"),
    )
    op.create_table(
        "upstream_credentials",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("vendor", sa.Text, nullable=False),
        sa.Column("account", sa.Text),
        sa.Column("secret_ciphertext", sa.LargeBinary, nullable=False),
        _ts("created_at"),
        _ts("rotated_at", nullable=True, default=False),
    )
    op.create_table(
        "vault_keys",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("vendor", sa.Text, nullable=False),
        sa.Column("label", sa.Text),
        sa.Column("secret_hash", sa.LargeBinary, nullable=False),
        sa.Column("credential_id", sa.Text, sa.ForeignKey("upstream_credentials.id"), nullable=False),
        sa.Column("policy_id", sa.Text, sa.ForeignKey("policies.id"), nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default=sa.text("'active'")),
        _ts("created_at"),
        _ts("revoked_at", nullable=True, default=False),
        _ts("expires_at", nullable=True, default=False),
    )
    op.create_table(
        "budget_counters",
        sa.Column("key_id", sa.Text, nullable=False),
        sa.Column("bucket", sa.Text, nullable=False),
        sa.Column("spent_usd", USD, nullable=False, server_default=sa.text("0")),
        sa.Column("reserved_usd", USD, nullable=False, server_default=sa.text("0")),
        sa.Column("requests", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("key_id", "bucket"),
    )
    op.create_table(
        "reservations",
        sa.Column("audit_id", sa.BigInteger, primary_key=True),
        sa.Column("key_id", sa.Text, nullable=False),
        sa.Column("usd", USD, nullable=False),
        sa.Column("buckets", pg.ARRAY(sa.Text), nullable=False),
        _ts("created_at"),
        _ts("expires_at", default=False),
    )
    op.create_index("reservations_expires_at", "reservations", ["expires_at"])
    op.create_table(
        "audit_events",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        _ts("ts"),
        sa.Column("request_id", sa.Text, nullable=False),
        sa.Column("agent_run_id", sa.Text),
        sa.Column("key_id", sa.Text),
        sa.Column("vendor", sa.Text, nullable=False),
        sa.Column("method", sa.Text, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("endpoint", sa.Text),
        sa.Column("customer_id", sa.Text),
        sa.Column("object_id", sa.Text),
        sa.Column("vendor_account", sa.Text),
        sa.Column("decision", sa.Text, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("message", sa.Text),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("predicted_usd", USD),
        sa.Column("cost_usd", USD),
        sa.Column("cost_source", sa.Text),
        sa.Column("currency", sa.Text),
        sa.Column("amount_minor", sa.BigInteger),
        sa.Column("upstream_status", sa.Integer),
        sa.Column("upstream_request_id", sa.Text),
        sa.Column("idempotency_key", sa.Text),
        sa.Column("latency_ms", sa.Numeric(12, 3)),
        sa.Column("policy_id", sa.Text),
        sa.Column("policy_version", sa.Integer),
        sa.Column("request_summary", pg.JSONB),
        _ts("finalized_at", nullable=True, default=False),
    )
    op.create_index("audit_events_run", "audit_events", ["agent_run_id", "ts"])
    op.create_index("audit_events_key_ts", "audit_events", ["key_id", "ts"])
    op.create_index("audit_events_ts", "audit_events", ["ts"])
    op.execute(BUCKET_FUNCTION)
    op.execute(GATE_FUNCTION)
    op.execute(SETTLE_FUNCTION)


def downgrade() -> None:
    op.execute("DROP FUNCTION tollgate_settle(bigint, numeric, jsonb)")
    op.execute("DROP FUNCTION tollgate_gate(text, integer, jsonb, jsonb, numeric, integer)")
    op.execute("DROP FUNCTION tollgate_bucket(text, timestamptz, text)")
    for table in ("audit_events", "reservations", "budget_counters", "vault_keys",
                  "upstream_credentials", "policy_versions", "policies"):
        op.drop_table(table)


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
