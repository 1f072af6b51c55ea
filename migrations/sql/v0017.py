"""Forged vault keys, as migration 0017 met them (issue 17, item 5).

Keys now carry a tag made with a key only the installation holds (proxy/vaultkeys.py), kept
sealed in ``server_secrets``. ``vault_keys.checksum`` says which keys have one: every key that
exists when this runs was issued with a CRC32 checksum alone, so the column's default marks
them 'crc32', and so it marks a key made by a process that does not know the column yet (a
rolling upgrade); the proxy names 'tagged' explicitly. A token without a tag is then judged
by whether its id is one of the 'crc32' keys (proxy/auth.py), not by a look-up of its own.
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
]

DOWNGRADE = [
    "DROP TABLE server_secrets",
    "ALTER TABLE vault_keys DROP COLUMN checksum",
]
