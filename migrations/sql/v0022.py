"""Halted runs, as migration 0022 created them (issue 18, item 3).

A run (one X-Agent-Run-Id) that reaches a policy's stop condition, or that an operator stops,
is refused by every key until someone resumes it. ``run_state`` is one row per run id: the
request path counts each call carrying a run id into ``calls`` with one INSERT ... ON CONFLICT
beside the gate (proxy/halts.py), and reads back whether the run is halted, so a halt made by
any process is seen by the next request of every process. ``calls`` starts again from 0 when
the run is resumed, and ``resumed_at`` bounds what the refusal and error conditions count from
audit_events, so a resumed run is judged on what it does after the resume.

Every halt, whatever its condition, is ``tollgate_halt_run``: one statement that halts a run
not halted yet and returns its row (nothing when it was halted already), so whatever else a
halt must do (an alert's outbox row) belongs in that one function, in the halt's transaction.
The gate's functions are untouched.

``halted_runs`` is the view SQL users and auditors read (docs/sql-cookbook.md).
"""

HALT = """CREATE FUNCTION tollgate_halt_run(p_run_id text, p_by text, p_detail text, p_key_id text)
RETURNS TABLE (run_id text, halted_at timestamptz, halted_by text, halted_detail text, halted_key_id text)
LANGUAGE sql AS $$
INSERT INTO run_state AS r (run_id, halted_at, halted_by, halted_detail, halted_key_id)
VALUES (p_run_id, now(), p_by, p_detail, p_key_id)
ON CONFLICT (run_id) DO UPDATE
  SET halted_at = excluded.halted_at, halted_by = excluded.halted_by,
      halted_detail = excluded.halted_detail, halted_key_id = excluded.halted_key_id
  WHERE r.halted_at IS NULL
RETURNING r.run_id, r.halted_at, r.halted_by, r.halted_detail, r.halted_key_id
$$"""

CREATE = [
    """
CREATE TABLE run_state (
  run_id text PRIMARY KEY,
  calls bigint NOT NULL DEFAULT 0,
  first_call_at timestamptz NOT NULL DEFAULT now(),
  last_call_at timestamptz NOT NULL DEFAULT now(),
  halted_at timestamptz,
  halted_by text,
  halted_detail text,
  halted_key_id text,
  resumed_at timestamptz,
  CHECK ((halted_at IS NULL) = (halted_by IS NULL))
)
""",
    "CREATE INDEX run_state_halted ON run_state (halted_at) WHERE halted_at IS NOT NULL",
    HALT,
    """
CREATE VIEW halted_runs AS
SELECT run_id AS agent_run_id, halted_at, halted_by AS condition, halted_detail AS detail,
       halted_key_id AS key_id, calls AS calls_since_resume, first_call_at, last_call_at, resumed_at
  FROM run_state
 WHERE halted_at IS NOT NULL
""",
    "GRANT SELECT ON halted_runs TO tollgate_auditor",
]

DROP = [
    "REVOKE ALL ON halted_runs FROM tollgate_auditor",
    "DROP VIEW halted_runs",
    "DROP FUNCTION tollgate_halt_run(text, text, text, text)",
    "DROP TABLE run_state",
]
