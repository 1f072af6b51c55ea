"""Thousands of keys in a few set-based statements, for the admin side's scale tests.

Made through the tables in proxy/schema.py (INSERT ... SELECT over generate_series), not
through the admin API: a few thousand keys in well under a second, where creating them one
request at a time would take minutes. The keys are never used for a call, so their secret
hashes and ciphertexts are placeholders; some get spend today, so the console's bars have
something to show.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, Text, case, cast, create_engine, event, func, insert, literal, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from proxy.schema import (
    approvals,
    audit_events,
    budget_counters,
    policies,
    policy_versions,
    upstream_credentials,
    vault_keys,
)

CROWD_POLICY = {
    "vendor": "stripe",
    "endpoints": {"allow": ["POST /v1/charges"]},
    "caps": [{"usd": "100.00", "window": "day"}, {"usd": "20.00", "window": "run"},
             {"requests": 60, "window": "minute"}],
}
SPENT_TODAY = "3.250000"  # on every tenth key of the crowd


def _sync(url: str) -> Engine:
    return create_engine("postgresql+psycopg://" + url.partition("://")[2])


def insert_crowd(url: str, count: int, policy_id: str = "pol_crowd") -> list[str]:
    """``count`` keys on one policy; returns their ids. Key ``i`` is ``key_crowd<i, 7 digits>``."""
    engine = _sync(url)
    n = func.generate_series(1, count).table_valued("value").render_derived(name="n")
    number = func.lpad(cast(n.c.value, Text), 7, "0")
    try:
        with engine.begin() as conn:
            conn.execute(insert(policies).values(id=policy_id, vendor="stripe", name="crowd", current_version=1))
            conn.execute(insert(policy_versions).values(policy_id=policy_id, version=1, document=CROWD_POLICY))
            conn.execute(insert(upstream_credentials).from_select(
                ["id", "vendor", "secret_ciphertext"],
                select(literal("cred_crowd") + number, literal("stripe"), func.decode("00", "hex")).select_from(n)))
            conn.execute(insert(vault_keys).from_select(
                ["id", "vendor", "label", "secret_hash", "credential_id", "policy_id"],
                select(literal("key_crowd") + number, literal("stripe"), literal("crowd-") + number,
                       func.sha256(func.convert_to(number, "UTF8")), literal("cred_crowd") + number,
                       literal(policy_id)).select_from(n)))
            day = func.tollgate_bucket("day", func.now(), None)
            conn.execute(insert(budget_counters).from_select(
                ["key_id", "bucket", "spent_usd", "requests"],
                select(vault_keys.c.id, day, literal(SPENT_TODAY).cast(budget_counters.c.spent_usd.type), literal(1))
                .where(vault_keys.c.policy_id == policy_id, func.right(vault_keys.c.id, 1) == "0")))
            ids = [row.id for row in conn.execute(select(vault_keys.c.id).where(vault_keys.c.policy_id == policy_id))]
    finally:
        engine.dispose()
    return ids


def insert_history(url: str, count: int, key_id: str) -> None:
    """``count`` policies, approvals on ``key_id`` (even ones pending, odd ones denied) and audit
    rows of ``key_id``, item ``g`` made ``g`` seconds (audit: milliseconds) ago: ``pol_hist<g>``,
    ``apr_hist<g>`` and request id ``req_hist<g>``, 7 digits."""
    engine = _sync(url)
    n = func.generate_series(1, count).table_valued("value").render_derived(name="n")
    number = func.lpad(cast(n.c.value, Text), 7, "0")
    ago = func.now() - func.make_interval(0, 0, 0, 0, 0, 0, n.c.value)
    try:
        with engine.begin() as conn:
            conn.execute(insert(policies).from_select(
                ["id", "vendor", "name", "current_version", "created_at"],
                select(literal("pol_hist") + number, literal("stripe"), literal("history"), literal(1), ago)
                .select_from(n)))
            conn.execute(insert(approvals).from_select(
                ["id", "key_id", "fingerprint", "status", "reason", "method", "path", "created_at", "expires_at"],
                select(literal("apr_hist") + number, literal(key_id), number,
                       case((n.c.value % 2 == 0, "pending"), else_="denied"), literal("endpoint_requires_approval"),
                       literal("POST"), literal("/v1/payouts"), ago, func.now() + text("interval '1 hour'"))
                .select_from(n)))
            conn.execute(insert(audit_events).from_select(
                ["ts", "request_id", "key_id", "vendor", "method", "path", "decision", "reason", "state"],
                select(func.now() - func.make_interval(0, 0, 0, 0, 0, 0, n.c.value / 1000.0),
                       literal("req_hist") + number, literal(key_id), literal("stripe"), literal("POST"),
                       literal("/v1/charges"), literal("blocked"), literal("cap_exceeded"), literal("final"))
                .select_from(n)))
    finally:
        engine.dispose()


@contextmanager
def statements_of(engine: AsyncEngine) -> Iterator[list[str]]:
    """Every SQL statement ``engine`` sends while the block runs (from any thread)."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
