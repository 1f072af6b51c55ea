"""Objects created through a key: looked up for record-level scope and for pricing calls
that name no amount (a full refund). Written by the settle function, read here."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from vendors.base import RecordedObject


class Fetches(Protocol):
    """What the lookup needs of a database: proxy.hotdb.HotDB, or one asyncpg connection."""

    async def fetch(self, query: str, *args: Any) -> Sequence[Any]: ...

# One primary-key probe per id asked for. asyncpg prepares this once per connection, and
# Postgres may keep a generic plan made while the key had few objects; for the plainer
# "key_id = $1 AND object_id = ANY ($2)" that plan reads every object of the key and filters
# (measured: 20,002 rows for 3 ids). A key records every charge it creates, so it grows; the
# LATERAL subquery (LIMIT 1 keeps the planner from flattening it) can only be a probe.
_LOOKUP = ("SELECT k.object_id, k.kind, k.customer_id, k.amount_minor, k.currency "
           "FROM unnest($2::text[]) AS asked(object_id) "
           "CROSS JOIN LATERAL (SELECT * FROM key_objects o "
           "WHERE o.key_id = $1 AND o.object_id = asked.object_id LIMIT 1) AS k")


async def lookup(db: Fetches, key_id: str, object_ids: Iterable[str]) -> dict[str, RecordedObject]:
    ids = list(object_ids)
    if not ids:
        return {}
    rows = await db.fetch(_LOOKUP, key_id, ids)
    return {r["object_id"]: RecordedObject(r["object_id"], r["kind"], r["customer_id"], r["amount_minor"],
                                           r["currency"]) for r in rows}
