"""Alerts, as migration 0023 created them: webhook subscriptions, an outbox, every delivery.

An alert must not be lost when the receiver is down, nor sent for something that was rolled
back, so it is written in the transaction that caused it: ``tollgate_alert_emit`` inserts the
event into ``alert_outbox`` and one ``alert_deliveries`` row per subscription that wants it,
or nothing at all when none does. Three triggers call it, so the request path's SQL (the gate
and settle functions) stays as it is:

- ``alert_refusal`` on ``audit_events`` (partitioned: the trigger is cloned onto every
  partition, present and future), for rows inserted ``blocked``. Its WHEN clause keeps the
  function from running for any other row: an allowed call pays one comparison. With no
  subscription at all it returns before building the payload. Measured with 50,000-row inserts
  on the shared 2-core machine: allowed rows cost the same with and without the trigger (within
  the noise, ~5 us a row); blocked ones a few us more with no subscriber, and tens of us more
  when subscribed, for the outbox and delivery rows.
- ``alert_approval`` on ``approvals``, for a request held ``pending``;
- ``alert_key_revoked`` on ``vault_keys``, when ``status`` becomes ``revoked`` (the admin API,
  the CLI, the console and any later subtree revocation all write that column);
- ``alert_run_halted`` on ``run_state`` (migration 0022), when ``halted_at`` is set: every halt,
  by a stop condition on the request path or by an operator, is made by ``tollgate_halt_run``
  and lands there; the per-call count upsert leaves ``halted_at`` alone and pays one comparison.
  Two triggers, since an INSERT's WHEN cannot read OLD: a run halted by its first row, and a
  row that becomes halted (again, after a resume).

Cap thresholds are not a trigger: the durable truth is ``budget_counters``, read by the
delivery loop (proxy/alerts/thresholds.py) from ``alert_scan``'s cursor; ``alert_thresholds``'
primary key makes each (key, cap, bucket, threshold) fire once. Anything else calls
``SELECT tollgate_alert_emit(kind, payload, detail)`` in its own transaction.

A subscription's ``url`` is only its shortened form (scheme, host, first path segment): the
whole URL (a Slack webhook's path is its token) and the signing secret are ``sealed`` together
under the master key, as upstream secrets are.

``alert_deliveries`` is the queue and its history (one row per event and subscription, its
state and attempts); ``alert_attempts`` has one row per HTTP attempt, with the status or error.
Deliveries and attempts reference the subscription with a key-share lock only, and the loop
holds subscriptions ``FOR NO KEY UPDATE``, so a refusal's trigger never waits for a delivery.
"""

EMIT = r"""
CREATE FUNCTION tollgate_alert_emit(p_kind text, p_payload jsonb, p_detail text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  v_id bigint;
BEGIN
  -- 'kind' takes every event of the kind, 'kind:detail' (refusal:cap_exceeded) only that detail.
  PERFORM 1 FROM alert_subscriptions s
   WHERE s.removed_at IS NULL AND (p_kind = ANY (s.events) OR p_kind || ':' || p_detail = ANY (s.events))
   LIMIT 1;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  INSERT INTO alert_outbox (kind, detail, payload) VALUES (p_kind, p_detail, p_payload) RETURNING id INTO v_id;
  INSERT INTO alert_deliveries (event_id, subscription_id)
    SELECT v_id, s.id FROM alert_subscriptions s
     WHERE s.removed_at IS NULL AND (p_kind = ANY (s.events) OR p_kind || ':' || p_detail = ANY (s.events))
     ORDER BY s.id;
  RETURN v_id;
END
$$;
"""

REFUSAL = r"""
CREATE FUNCTION tollgate_alert_refusal() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM alert_subscriptions WHERE removed_at IS NULL) THEN
    RETURN NULL;  -- no subscriber at all: spare a refusal flood the payload's construction
  END IF;
  PERFORM tollgate_alert_emit('refusal', jsonb_build_object(
    'audit_id', NEW.id, 'ts', NEW.ts, 'request_id', NEW.request_id, 'key_id', NEW.key_id,
    'agent_run_id', NEW.agent_run_id, 'vendor', NEW.vendor, 'method', NEW.method, 'endpoint', NEW.endpoint,
    'reason', NEW.reason, 'message', NEW.message, 'predicted_usd', NEW.predicted_usd::text), NEW.reason);
  RETURN NULL;
END
$$;
"""

APPROVAL = r"""
CREATE FUNCTION tollgate_alert_approval() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM tollgate_alert_emit('approval_waiting', jsonb_build_object(
    'approval_id', NEW.id, 'key_id', NEW.key_id, 'agent_run_id', NEW.agent_run_id, 'method', NEW.method,
    'endpoint', NEW.endpoint, 'reason', NEW.reason, 'message', NEW.message,
    'predicted_usd', NEW.predicted_usd::text, 'created_at', NEW.created_at, 'expires_at', NEW.expires_at), NULL);
  RETURN NULL;
END
$$;
"""

KEY_REVOKED = r"""
CREATE FUNCTION tollgate_alert_key_revoked() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM tollgate_alert_emit('key_revoked', jsonb_build_object(
    'key_id', NEW.id, 'vendor', NEW.vendor, 'label', NEW.label, 'policy_id', NEW.policy_id,
    'revoked_at', NEW.revoked_at), NULL);
  RETURN NULL;
END
$$;
"""

RUN_HALTED = r"""
CREATE FUNCTION tollgate_alert_run_halted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM tollgate_alert_emit('run_halted', jsonb_build_object(
    'agent_run_id', NEW.run_id, 'condition', NEW.halted_by, 'detail', NEW.halted_detail,
    'key_id', NEW.halted_key_id, 'halted_at', NEW.halted_at), NULL);
  RETURN NULL;
END
$$;
"""

TABLES = [
    """
CREATE TABLE alert_subscriptions (
  id text PRIMARY KEY,
  url text NOT NULL,
  events text[] NOT NULL,
  format text NOT NULL DEFAULT 'json',
  sealed bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  removed_at timestamptz,
  CONSTRAINT alert_subscriptions_format CHECK (format IN ('json', 'slack'))
)
""",
    """
CREATE TABLE alert_outbox (
  id bigserial PRIMARY KEY,
  kind text NOT NULL,
  detail text,
  payload jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
)
""",
    """
CREATE TABLE alert_deliveries (
  id bigserial PRIMARY KEY,
  event_id bigint NOT NULL REFERENCES alert_outbox (id),
  subscription_id text NOT NULL REFERENCES alert_subscriptions (id),
  status text NOT NULL DEFAULT 'pending',
  attempts integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  delivered_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT alert_deliveries_once UNIQUE (subscription_id, event_id)
)
""",
    "CREATE INDEX alert_deliveries_queue ON alert_deliveries (subscription_id, event_id) WHERE status = 'pending'",
    "CREATE INDEX alert_deliveries_created ON alert_deliveries (created_at, id)",
    """
CREATE TABLE alert_attempts (
  delivery_id bigint NOT NULL REFERENCES alert_deliveries (id),
  attempt integer NOT NULL,
  at timestamptz NOT NULL DEFAULT now(),
  status_code integer,
  error text,
  duration_ms numeric(12, 3),
  PRIMARY KEY (delivery_id, attempt)
)
""",
    """
CREATE TABLE alert_thresholds (
  key_id text NOT NULL,
  cap text NOT NULL,
  bucket text NOT NULL,
  threshold integer NOT NULL,
  crossed_at timestamptz NOT NULL DEFAULT now(),
  event_id bigint,
  PRIMARY KEY (key_id, cap, bucket, threshold)
)
""",
    """
CREATE TABLE alert_scan (
  id integer PRIMARY KEY,
  counters_to timestamptz NOT NULL
)
""",
    "INSERT INTO alert_scan (id, counters_to) VALUES (1, now())",
]

TRIGGERS = [
    "CREATE TRIGGER alert_refusal AFTER INSERT ON audit_events FOR EACH ROW WHEN (NEW.decision = 'blocked') "
    "EXECUTE FUNCTION tollgate_alert_refusal()",
    "CREATE TRIGGER alert_approval AFTER INSERT ON approvals FOR EACH ROW WHEN (NEW.status = 'pending') "
    "EXECUTE FUNCTION tollgate_alert_approval()",
    "CREATE TRIGGER alert_key_revoked AFTER UPDATE OF status ON vault_keys FOR EACH ROW "
    "WHEN (OLD.status IS DISTINCT FROM NEW.status AND NEW.status = 'revoked') "
    "EXECUTE FUNCTION tollgate_alert_key_revoked()",
    "CREATE TRIGGER alert_run_halted_new AFTER INSERT ON run_state FOR EACH ROW WHEN (NEW.halted_at IS NOT NULL) "
    "EXECUTE FUNCTION tollgate_alert_run_halted()",
    "CREATE TRIGGER alert_run_halted AFTER UPDATE OF halted_at ON run_state FOR EACH ROW "
    "WHEN (OLD.halted_at IS NULL AND NEW.halted_at IS NOT NULL) EXECUTE FUNCTION tollgate_alert_run_halted()",
]

CREATE = [*TABLES, EMIT, REFUSAL, APPROVAL, KEY_REVOKED, RUN_HALTED, *TRIGGERS]

DROP = [
    "DROP TRIGGER alert_run_halted ON run_state",
    "DROP TRIGGER alert_run_halted_new ON run_state",
    "DROP TRIGGER alert_key_revoked ON vault_keys",
    "DROP TRIGGER alert_approval ON approvals",
    "DROP TRIGGER alert_refusal ON audit_events",
    "DROP FUNCTION tollgate_alert_run_halted()",
    "DROP FUNCTION tollgate_alert_key_revoked()",
    "DROP FUNCTION tollgate_alert_approval()",
    "DROP FUNCTION tollgate_alert_refusal()",
    "DROP FUNCTION tollgate_alert_emit(text, jsonb, text)",
    "DROP TABLE alert_scan",
    "DROP TABLE alert_thresholds",
    "DROP TABLE alert_attempts",
    "DROP TABLE alert_deliveries",
    "DROP TABLE alert_outbox",
    "DROP TABLE alert_subscriptions",
]
