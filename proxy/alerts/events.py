"""The event kinds a subscription can ask for, and ``emit`` for code that causes one.

Kinds are a public interface (subscriptions name them, receivers switch on them), so they are
never renamed. A subscription names a kind (every event of it) or ``kind:detail``: a refusal's
reason (``refusal:cap_exceeded``) or a threshold (``cap_threshold:100``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from proxy import reasons
from proxy.errors import InvalidInput

KINDS = ("cap_threshold", "refusal", "run_halted", "key_revoked", "approval_waiting")
_EMIT = text("SELECT tollgate_alert_emit(:kind, CAST(:payload AS jsonb), :detail)")


def parse_filters(raw: Iterable[str]) -> list[str]:
    """The subscription's event filters, checked and without repeats, in the order given."""
    chosen: list[str] = []
    for item in raw:
        name = item.strip()
        kind, _, detail = name.partition(":")
        if kind not in KINDS:
            raise InvalidInput("invalid_events", f"Unknown event {name[:60]!r}: choose from {', '.join(KINDS)}.")
        if detail and kind == "refusal" and detail not in reasons.CATALOGUE:
            raise InvalidInput("invalid_events", f"{detail[:60]!r} is not a reason code (see the README's table).")
        if detail and kind == "cap_threshold" and not (detail.isdigit() and 1 <= int(detail) <= 1000):
            raise InvalidInput("invalid_events", "cap_threshold:N takes a percentage, such as cap_threshold:100.")
        if detail and kind not in ("refusal", "cap_threshold"):
            raise InvalidInput("invalid_events", f"{kind} takes no detail after ':'.")
        if name not in chosen:
            chosen.append(name)
    if not chosen:
        raise InvalidInput("invalid_events", f"Name at least one event: {', '.join(KINDS)}.")
    return chosen


def payload_json(payload: Mapping[str, Any]) -> str:
    """Money as decimal strings and times as ISO 8601, so a receiver never sees a float."""
    return json.dumps(payload, default=_plain, separators=(",", ":"))


def _plain(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


async def emit(conn: AsyncConnection, kind: str, payload: Mapping[str, Any], detail: str | None = None) -> int | None:
    """Put an event in the outbox within ``conn``'s transaction: it is delivered if and only if
    that transaction commits. Returns its id, or None when no subscription wants it (then
    nothing is written)."""
    if kind not in KINDS:
        raise ValueError(f"unknown alert kind {kind!r}")
    result = await conn.execute(_EMIT, {"kind": kind, "payload": payload_json(payload), "detail": detail})
    event_id: int | None = result.scalar()
    return event_id
