"""The repricing function plans each call afresh, as migration 0014 set it.

tollgate_reprice (0003: a later price replaces an estimate, for Twilio messages) updates a
key's counter rows with ``key_id = ... AND bucket = ANY (...)``, the shape whose cached
generic plan reads every counter row of the key (migrations/sql/v0013.py). It runs in the
background, once per repriced call, so planning each call costs nothing that matters.
tests/test_gate.py checks that no function with that shape keeps a generic plan.
"""

SET = ["ALTER FUNCTION tollgate_reprice(bigint, numeric) SET plan_cache_mode = force_custom_plan"]
RESET = ["ALTER FUNCTION tollgate_reprice(bigint, numeric) RESET plan_cache_mode"]
