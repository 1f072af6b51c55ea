"""Webhook signatures in the style of Stripe's: ``t=<unix seconds>,v1=<hex HMAC-SHA256>`` over
``"<t>.<body>"`` under the subscription's secret. The timestamp inside the signed text lets a
receiver refuse a replayed old delivery. The receiver's side is in docs/alerts.md only, standard
library Python a receiver can copy, and tests/test_alerts.py checks every delivery with that text."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

HEADER = "Tollgate-Signature"
SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def header_value(secret: str, body: bytes, timestamp: int | None = None) -> str:
    moment = int(time.time()) if timestamp is None else timestamp
    return f"t={moment},v1={_mac(secret, moment, body)}"
