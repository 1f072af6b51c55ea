"""Test constants and helpers for driving Tollgate."""

from __future__ import annotations

import base64
import secrets
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg

from proxy import config

STRIPE_SECRET = "sk_test_" + "E" * 24
TWILIO_ACCOUNT = "AC" + "0123456789abcdef" * 2
TWILIO_TOKEN = "5ec12e7a0b1c4d2e8f9a6b3c7d1e0f42"  # distinctive: the secret search looks for it
RESEND_SECRET = "re_Test1234_" + "R" * 24
ADMIN_TOKEN = "tga_test_" + secrets.token_urlsafe(16)
MASTER_KEY = base64.b64encode(secrets.token_bytes(32)).decode()


def settings_for(pg_url: str, upstreams: dict[str, str], **overrides: Any) -> config.Settings:
    settings = config.Settings(
        database_url=pg_url,
        admin_token=ADMIN_TOKEN,
        master_key=MASTER_KEY,
        upstreams=upstreams,
        data_dir=Path(tempfile.gettempdir()) / "tollgate-test-unused",
        reprice_interval_s=0,  # estimates change only when a test reprices them (or asks for the loop)
    )
    return replace(settings, **overrides)


def audit_rows(sql: psycopg.Connection, run_id: str) -> list[dict[str, Any]]:
    return sql.execute(
        "SELECT * FROM audit_events WHERE agent_run_id = %s ORDER BY id", (run_id,)
    ).fetchall()


def policy(**fields: Any) -> dict[str, Any]:
    """A Stripe policy allowing charges, refunds and reads, with the given fields on top."""
    base: dict[str, Any] = {
        "vendor": "stripe",
        "endpoints": {
            "allow": [
                "POST /v1/customers",
                "POST /v1/charges",
                "GET /v1/charges/*",
                "POST /v1/refunds",
            ]
        },
    }
    return {**base, **fields}


def pgserver_at(directory: Path):
    """A real Postgres from the pgserver wheel, in ``directory``; stopped when the last user exits."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns that XDG_RUNTIME_DIR is unset
        import pgserver
    return pgserver.get_server(directory, cleanup_mode="stop")
