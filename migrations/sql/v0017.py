"""SQL as migration 0017 wrote it: indexes for the admin lists' pages (proxy/pages.py).

Each list is read newest first, a page at a time from a cursor: (created_at, id) indexes let
a page start at its cursor instead of sorting every row, and vault_keys (policy_id) serves
the policies list's key count per policy and the keys list filtered by policy.
"""

INDEXES = [
    "CREATE INDEX vault_keys_created ON vault_keys (created_at, id)",
    "CREATE INDEX vault_keys_policy ON vault_keys (policy_id)",
    "CREATE INDEX policies_created ON policies (created_at, id)",
    "CREATE INDEX approvals_created ON approvals (created_at, id)",
]
DROP = [
    "DROP INDEX approvals_created",
    "DROP INDEX policies_created",
    "DROP INDEX vault_keys_policy",
    "DROP INDEX vault_keys_created",
]
