"""The SQL of each migration, frozen in the module named after it (v0007.py for 0007).

Frozen means written out in full, as the migration ran it: a text is never built by patching
another migration's string (downgrades may put an older text back with ``or_replace``). The
functions live at head, and which module's text and settings each runs, are in live.py.

A rule for the request path's SQL, learnt twice (v0010.py, v0013.py): plans are cached per
connection (PL/pgSQL statements, asyncpg's prepared statements) and may be generic, made
while a table was small and kept while it grows. So reach a key's rows by probes of the whole
primary key (``key_id = $1 AND bucket = u.bucket`` in a LATERAL subquery the planner cannot
flatten), never by ``key_id = $1 AND bucket = ANY ($2)``, whose generic plan reads every row
of the key; a function that keeps that shape plans each call afresh (tests/test_gate.py
lists them).
"""


def or_replace(create_function: str) -> str:
    """A frozen CREATE FUNCTION text, to put that version back over a later one (downgrades)."""
    return create_function.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)
