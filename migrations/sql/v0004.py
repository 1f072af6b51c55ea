"""Views and the auditor role as migration 0004 created them."""

# One statement per string: asyncpg prepares each statement on its own.
VIEWS = [r"""
CREATE VIEW spend_by_run AS
SELECT agent_run_id,
       key_id,
       vendor,
       count(*) AS calls,
       count(*) FILTER (WHERE decision IN ('allowed', 'shadow_blocked')) AS forwarded,
       count(*) FILTER (WHERE decision IN ('blocked', 'approval_required')) AS refused,
       coalesce(sum(cost_usd), 0) AS cost_usd,
       min(ts) AS first_call,
       max(ts) AS last_call
  FROM audit_events
 WHERE agent_run_id IS NOT NULL
 GROUP BY agent_run_id, key_id, vendor
""", r"""
CREATE VIEW spend_by_key_day AS
SELECT key_id,
       vendor,
       (ts AT TIME ZONE 'UTC')::date AS day,
       count(*) AS calls,
       count(*) FILTER (WHERE decision IN ('allowed', 'shadow_blocked')) AS forwarded,
       count(*) FILTER (WHERE decision IN ('blocked', 'approval_required')) AS refused,
       coalesce(sum(cost_usd), 0) AS cost_usd
  FROM audit_events
 GROUP BY key_id, vendor, (ts AT TIME ZONE 'UTC')::date
""", r"""
CREATE VIEW blocked_calls AS
SELECT id, ts, agent_run_id, key_id, vendor, method, endpoint, customer_id, decision, reason, message,
       predicted_usd, policy_id, policy_version, request_id
  FROM audit_events
 WHERE decision IN ('blocked', 'approval_required', 'shadow_blocked')
"""]

# NOLOGIN: people log in as their own roles and are granted this one
# (CREATE ROLE alice LOGIN PASSWORD '...' IN ROLE tollgate_auditor). Roles are cluster-wide,
# so creating it tolerates another database of the same cluster having made it first.
AUDITOR = [r"""
DO $$
BEGIN
  CREATE ROLE tollgate_auditor NOLOGIN;
EXCEPTION WHEN duplicate_object THEN
  NULL;
END
$$
""",
    "GRANT USAGE ON SCHEMA public TO tollgate_auditor",
    "GRANT SELECT ON audit_events, spend_by_run, spend_by_key_day, blocked_calls TO tollgate_auditor",
]

DROP_AUDITOR = [
    "REVOKE ALL ON audit_events, spend_by_run, spend_by_key_day, blocked_calls FROM tollgate_auditor",
    "REVOKE USAGE ON SCHEMA public FROM tollgate_auditor",
    r"""
DO $$
BEGIN
  DROP ROLE tollgate_auditor;
EXCEPTION WHEN dependent_objects_still_exist THEN
  NULL;  -- still granted in another database of this cluster
END
$$
""",
]
