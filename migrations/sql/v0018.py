"""Console sessions kept server-side, as migration 0018 created them.

A console cookie used to be its own proof: signed, valid 12 hours, and still valid after
sign-out, so a copied cookie revoked keys after its owner had signed out. Now the cookie
carries a random session id and this table the id's SHA-256 (never the id) with its expiry;
sign-out deletes the row, and with it every copy of the cookie. The console reads the row on
every page; signing in sweeps the expired ones.
"""

CREATE = [
    """
CREATE TABLE console_sessions (
  id_hash bytea PRIMARY KEY,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL
)
""",
]

DROP = ["DROP TABLE console_sessions"]
