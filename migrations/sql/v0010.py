"""Plans of the request path's batch functions, as migration 0010 set them.

Every statement the gate and the settle run is a keyed lookup with an index to serve it.
PL/pgSQL caches each statement's plan per connection; a plan made while a table looked
empty (a fresh month's partition, budget_counters after a VACUUM ANALYZE of few rows) is a
sequential scan, and it stays cached while the table grows until autovacuum re-analyzes
it. Seen after TRUNCATE + VACUUM ANALYZE of audit_events on a live proxy: 114,621
sequential scans of budget_counters in 18 s (cheap while it holds 35 rows; it gains a row
per key per minute bucket, so not for long), and in bench scenario 3 the "empty" runs cost
1.4-2.0 ms of Postgres CPU per call against 0.7-0.8 ms once the table was full.
With sequential scans off inside the two batch functions (and what they
call) the planner always takes the index; the setting costs one GUC save/restore per batch.
"""

HOT_FUNCTIONS = ("tollgate_gate_batch(jsonb)", "tollgate_settle_batch(jsonb)")
SET = [f"ALTER FUNCTION {f} SET enable_seqscan = off" for f in HOT_FUNCTIONS]
RESET = [f"ALTER FUNCTION {f} RESET enable_seqscan" for f in HOT_FUNCTIONS]
