"""Forged vault keys, as migration 0016 met them (issue 17, item 5).

Keys now carry a tag made with a key only the installation holds (proxy/vaultkeys.py), kept
sealed in ``server_secrets``. ``vault_keys.checksum`` says which keys have one: every key that
exists when this runs was issued with a CRC32 checksum alone, so the column's default marks
them 'crc32', and so it marks a key made by a process that does not know the column yet (a
rolling upgrade); the proxy names 'tagged' explicitly. A token without a tag is then judged
by whether its id is one of the 'crc32' keys (proxy/auth.py), not by a look-up of its own.

``auth_refusals`` counts refusals of callers who never authenticated, per minute and source
(proxy/refusals.py); auditors may read it, as they read audit_events.
"""

UPGRADE = [
    "ALTER TABLE vault_keys ADD COLUMN checksum text NOT NULL DEFAULT 'crc32'",
    r"""
CREATE TABLE server_secrets (
  name text PRIMARY KEY,
  ciphertext bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
)
""",
    r"""
CREATE TABLE auth_refusals (
  minute timestamptz NOT NULL,
  source text NOT NULL,
  vendor text NOT NULL,
  reason text NOT NULL,
  refusals bigint NOT NULL,
  PRIMARY KEY (minute, source, vendor, reason)
)
""",
    "GRANT SELECT ON auth_refusals TO tollgate_auditor",
]

DOWNGRADE = [
    "REVOKE ALL ON auth_refusals FROM tollgate_auditor",
    "DROP TABLE auth_refusals",
    "DROP TABLE server_secrets",
    "ALTER TABLE vault_keys DROP COLUMN checksum",
]
