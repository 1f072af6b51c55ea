"""The whole-suite secret search (tests/support/leaks.py, run by conftest at the end of every
run) finds what it is meant to find and nothing else."""

from __future__ import annotations

from tests.support import leaks
from tests.support.tollgate import STRIPE_SECRET

KEY = "tg_AbCdEfGhIjKl_" + "s3cr3t" * 5 + "Xy" + "a1b2c3"


def test_it_finds_known_secrets_and_any_unmasked_vault_key(tmp_path):
    leaked = tmp_path / "leaked.log"
    leaked.write_text(f'{{"event": "request", "note": "{STRIPE_SECRET}"}}\nrow: ({KEY})\n')
    assert sorted(leaks.scan([leaked])) == [f"{leaked}: a secret ending 'EEEE'", f"{leaked}: vault key {KEY[:16]}..."]


def test_masked_forms_are_not_findings(tmp_path):
    clean = tmp_path / "clean.log"
    clean.write_text('{"authorization": "***", "key": "tg_AbCdEfGhIjKl_***", "secret": "sk_test_***"}\n')
    assert leaks.scan([clean]) == []
