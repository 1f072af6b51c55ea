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

from sqlalchemy import Engine, Text, cast, create_engine, event, func, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncEngine

from proxy.schema import budget_counters, policies, policy_versions, upstream_credentials, vault_keys

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
