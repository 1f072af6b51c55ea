"""Objects created through a key: looked up for record-level scope and for pricing calls
that name no amount (a full refund). Written by the settle function, read here."""

from __future__ import annotations

from typing import Iterable

from proxy.hotdb import HotDB
from vendors.base import RecordedObject

_LOOKUP = ("SELECT object_id, kind, customer_id, amount_minor, currency FROM key_objects "
           "WHERE key_id = $1 AND object_id = ANY($2::text[])")


async def lookup(db: HotDB, key_id: str, object_ids: Iterable[str]) -> dict[str, RecordedObject]:
    ids = list(object_ids)
    if not ids:
        return {}
    rows = await db.fetch(_LOOKUP, key_id, ids)
    return {r["object_id"]: RecordedObject(r["object_id"], r["kind"], r["customer_id"], r["amount_minor"],
                                           r["currency"]) for r in rows}
