"""Duplicate-call claims, as migration 0020 created them.

An agent in a retry loop sends the same refund again and again, each time with a fresh
Idempotency-Key (SDKs draw one per call), so the vendor cannot tell the copies apart. A
policy's ``duplicates`` option makes the proxy claim each money-moving or message-sending
call's fingerprint (proxy/approvals.py) here before the gate: one INSERT ... ON CONFLICT per
call, so two identical calls from any two processes cannot both win. The row keeps the first
call's request id (for the refusal's message) and Idempotency-Key (a retry with the same key
is the vendor's replay, not a duplicate). A claim past ``expires_at`` is taken over in the same
statement; the reconcile sweep deletes the rest (the index on ``expires_at``). No function: the
request path sends the statement itself (proxy/duplicates.py), and the gate texts stay as they are.
"""

CREATE = [
    """
CREATE TABLE duplicate_claims (
  key_id text NOT NULL,
  fingerprint text NOT NULL,
  request_id text NOT NULL,
  idempotency_key text,
  claimed_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (key_id, fingerprint)
)
""",
    "CREATE INDEX duplicate_claims_expires ON duplicate_claims (expires_at)",
]

DROP = ["DROP TABLE duplicate_claims"]
