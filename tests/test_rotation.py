"""Rotations from the runbook: an upstream secret behind a key without touching the agent's
vault key, and the master key without a moment where a replica cannot read a secret."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from proxy import db, keys, migrate, secretbox, serversecrets, vaultkeys
from tests.support.tollgate import settings_for

POLICY = Path(__file__).resolve().parent.parent / "policy-schemas" / "examples" / "stripe-quickstart.json"
OLD, NEW = secretbox.new_master_key(), secretbox.new_master_key()


def tollgate(*args: str, url: str, **env_extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}
    env.update(DATABASE_URL=url, **env_extra)
    done = subprocess.run([sys.executable, "-m", "proxy", *args], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done


def forwarded_secret(url: str, key_id: str, master: str, previous: tuple[str, ...] = ()) -> str:
    box = secretbox.SecretBox(secretbox.decode_master_key(master),
                              tuple(secretbox.decode_master_key(p) for p in previous))

    async def load() -> str:
        engine = db.create_engine(url, settings_for(url, {}))
        try:
            async with engine.connect() as conn:
                return (await keys.load_for_auth(conn, box, key_id)).credential.secret
        finally:
            await engine.dispose()

    return asyncio.run(load())


def tag_key(url: str, master: str) -> bytes:
    """The installation's vault-key tag key, opened with ``master`` alone."""
    box = secretbox.SecretBox(secretbox.decode_master_key(master))

    async def load() -> bytes:
        engine = db.create_engine(url, settings_for(url, {}))
        try:
            async with engine.connect() as conn:
                return await serversecrets.load_or_create(conn, box)
        finally:
            await engine.dispose()

    return asyncio.run(load())


def test_rotate_an_upstream_secret_and_then_the_master_key(scratch_db):
    migrate.upgrade(scratch_db)
    created = json.loads(tollgate("keys", "create", "--vendor", "stripe", "--policy", str(POLICY),
                                  "--upstream-secret-env", "SECRET", "--json", url=scratch_db,
                                  TOLLGATE_MASTER_KEY=OLD, SECRET="sk_test_first").stdout)
    tollgate("keys", "rotate-upstream", created["id"], "--upstream-secret-env", "SECRET", url=scratch_db,
             TOLLGATE_MASTER_KEY=OLD, SECRET="sk_test_second")
    assert forwarded_secret(scratch_db, created["id"], OLD) == "sk_test_second"

    # Roll out the new key with the old one still readable, re-encrypt, then drop the old.
    assert forwarded_secret(scratch_db, created["id"], NEW, (OLD,)) == "sk_test_second"
    done = tollgate("master-key", "rotate", url=scratch_db, TOLLGATE_MASTER_KEY=NEW, TOLLGATE_MASTER_KEY_PREVIOUS=OLD)
    assert done.stdout.startswith("re-encrypted 1 upstream secret(s)")
    assert forwarded_secret(scratch_db, created["id"], NEW) == "sk_test_second"
    # The tag key was re-sealed too: under the new master key alone, the vault key is still one we issued.
    assert vaultkeys.parse(created["key"]).tagged_by(tag_key(scratch_db, NEW))
    try:
        forwarded_secret(scratch_db, created["id"], OLD)
    except secretbox.MasterKeyError:
        pass
    else:
        raise AssertionError("the old master key still opens a rotated secret")
