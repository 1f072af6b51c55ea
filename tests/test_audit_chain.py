"""Tamper evidence: finalised rows are sealed into a signed hash chain; `tollgate audit verify`
names the first row edited, deleted or slipped in with SQL, using only a read-only login
and the public key."""

from __future__ import annotations

import re

import psycopg
import pytest

from proxy import migrate
from proxy.audit import chain
from tests.support.audit_cli import SIGNING_KEY, tollgate, verify

OTHER_KEY = chain.new_private()


@pytest.fixture()
def trail(scratch_db, tmp_path):
    """A migrated database holding ten finalised calls (ids 10, 20, ... 100) from a minute ago."""
    migrate.upgrade(scratch_db)
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        for i in range(1, 11):
            conn.execute(
                "INSERT INTO audit_events (id, ts, request_id, agent_run_id, key_id, vendor, method, path, endpoint, "
                "decision, reason, state, predicted_usd, cost_usd, cost_source, upstream_status, request_summary) "
                "VALUES (%s, now() - interval '1 minute' + %s * interval '1 ms', %s, 'run-1', 'key_a', 'stripe', "
                "'POST', '/v1/charges', 'POST /v1/charges', 'allowed', NULL, 'final', 12.5, 12.5, 'parsed', 200, "
                "'{\"amount\": \"1250\"}')", (i * 10, i, f"req{i}"))
    public = tmp_path / "audit.pem"
    public.write_text(chain.public_pem(chain.load_private(SIGNING_KEY)))
    return scratch_db, public


def auditor_url(url: str, conn: psycopg.Connection) -> str:
    conn.execute("DROP ROLE IF EXISTS chain_auditor")
    conn.execute("CREATE ROLE chain_auditor LOGIN IN ROLE tollgate_auditor")
    return re.sub(r"//postgres(:[^@]*)?@", "//chain_auditor@", url)


def test_seal_then_verify_names_each_tampering(trail, pg_url):
    url, public = trail
    assert tollgate("audit", "seal", url=url).stdout.strip() == "sealed 10 audit row(s); chain head at 10"
    with psycopg.connect(url, autocommit=True) as owner:
        read_only = auditor_url(url, owner)
        try:
            intact = verify(read_only, public)
            assert intact.returncode == 0, intact.stderr
            assert intact.stdout.strip() == "audit chain intact: 10 sealed row(s), 1 signed head(s)"

            owner.execute("UPDATE audit_events SET cost_usd = 1.25 WHERE id = 40")  # someone shrinks a refund
            altered = verify(read_only, public)
            assert altered.returncode == 1
            assert "Audit row 40 (chain entry 4) was altered after it was sealed." in altered.stderr
            owner.execute("UPDATE audit_events SET cost_usd = 12.5 WHERE id = 40")
            assert verify(read_only, public).returncode == 0

            owner.execute("DELETE FROM audit_events WHERE id = 70")
            deleted = verify(read_only, public)
            assert "Audit row 70 (chain entry 7) was deleted." in deleted.stderr
        finally:
            owner.execute("DROP OWNED BY chain_auditor")
            owner.execute("DROP ROLE chain_auditor")


def test_a_row_slipped_in_behind_the_sealer_is_named(trail):
    url, public = trail
    tollgate("audit", "seal", url=url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO audit_events (id, ts, request_id, vendor, method, path, decision, state) "
                     "VALUES (55, now() - interval '2 minutes', 'forged', 'stripe', 'POST', '/v1/refunds', "
                     "'allowed', 'final')")
    inserted = verify(url, public)
    assert inserted.returncode == 1 and "Audit row 55 appeared where the sealer had already passed" in inserted.stderr


def test_pending_rows_wait_and_are_sealed_once_final(trail):
    url, public = trail
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO audit_events (id, ts, request_id, vendor, method, path, decision, state) "
                     "VALUES (105, now() - interval '1 minute', 'inflight', 'stripe', 'POST', '/v1/charges', "
                     "'allowed', 'pending')")
        assert tollgate("audit", "seal", url=url).stdout.startswith("sealed 10 ")
        assert conn.execute("SELECT audit_id FROM audit_chain_skipped").fetchall() == [(105,)]
        conn.execute("UPDATE audit_events SET state = 'final', cost_usd = 3, cost_source = 'parsed' WHERE id = 105")
    assert tollgate("audit", "seal", url=url).stdout.strip() == "sealed 1 audit row(s); chain head at 11"
    assert verify(url, public).returncode == 0


def test_a_signature_from_another_key_does_not_verify(trail, tmp_path):
    url, _ = trail
    tollgate("audit", "seal", url=url)
    wrong = tmp_path / "other.pem"
    wrong.write_text(chain.public_pem(chain.load_private(OTHER_KEY)))
    result = verify(url, wrong)
    assert result.returncode == 1 and "signature on chain head 10 does not verify" in result.stderr
    exported = tollgate("audit", "public-key", url=url).stdout
    assert exported.startswith("-----BEGIN PUBLIC KEY-----")
