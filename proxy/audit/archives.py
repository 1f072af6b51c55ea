"""Retention: audit_events is partitioned by month (UTC); old months are archived.

Archiving a month seals its place in the chain (a signed digest of its chain entries), then
detaches its partition. The detached table stays in the database, untouched, until the
operator has dumped it (``pg_dump -t``) and drops it; ``tollgate audit verify`` accounts for
its rows through the signed digest instead of reading them. Inserts and run-id lookups only
ever touch the attached months, so they stay flat however long the history is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import insert, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from proxy.audit.chain import (
    SEALER_LOCK,
    archive_digest,
    archive_message,
    public_key_id,
)
from proxy.errors import Conflict, NotFound
from proxy.schema import audit_archives, audit_chain

MONTHS_AHEAD = 3
_BOUNDS = re.compile(r"FROM \((?P<low>[^)]*)\) TO \((?P<high>[^)]*)\)")


@dataclass(frozen=True)
class Partition:
    name: str
    range_from: datetime | None  # None: from the beginning (the table before partitioning)
    range_to: datetime | None  # None: the default partition
    approx_rows: int

    def as_json(self) -> dict[str, Any]:
        return {"partition": self.name, "from": _iso(self.range_from), "to": _iso(self.range_to),
                "approx_rows": self.approx_rows}


@dataclass(frozen=True)
class ArchiveReport:
    partition: str
    rows: int
    first_seq: int | None
    last_seq: int | None

    def as_json(self) -> dict[str, Any]:
        return {"partition": self.partition, "rows": self.rows, "first_seq": self.first_seq,
                "last_seq": self.last_seq,
                "next": f"pg_dump --table={self.partition} --format=custom --file={self.partition}.dump DBNAME; "
                        f"then DROP TABLE {self.partition};"}


def partition_name(month: date) -> str:
    return f"audit_events_{month:%Y_%m}"


async def ensure(conn: AsyncConnection, months_ahead: int = MONTHS_AHEAD) -> int:
    """Make this month's partition and the next ``months_ahead``; how many were new."""
    made: int = (await conn.execute(text("SELECT tollgate_audit_partitions_ensure(:n)"),
                                    {"n": months_ahead})).scalar_one()
    return made


async def partitions(conn: AsyncConnection) -> list[Partition]:
    rows = await conn.execute(text(
        "SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound, "
        "       greatest(c.reltuples, 0)::bigint AS approx_rows "
        "  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        " WHERE i.inhparent = 'audit_events'::regclass ORDER BY c.relname"))
    return [Partition(r.name, *_bounds(r.bound), r.approx_rows) for r in rows]


async def archive(conn: AsyncConnection, signer: Ed25519PrivateKey, name: str) -> ArchiveReport:
    """Sign the month's place in the chain and detach its partition. Call inside a transaction."""
    partition = next((p for p in await partitions(conn) if p.name == name), None)
    if partition is None:
        raise NotFound("partition_not_found", f"{name} is not an attached partition of audit_events.")
    _require_over(partition)
    await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SEALER_LOCK})  # no seal meanwhile
    unsealed = await conn.scalar(text(
        f'SELECT count(*) FROM "{name}" p WHERE NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.audit_id = p.id)'))
    if unsealed:
        raise Conflict("unsealed_rows", f"{unsealed} row(s) of {name} are not sealed yet: run `tollgate audit seal` "
                       "first (rows waiting for a vendor's price are sealed a day after the call).")
    entries = [(r.seq, r.row_hash) for r in await conn.execute(text(
        f'SELECT c.seq, c.row_hash FROM audit_chain c JOIN "{name}" p ON p.id = c.audit_id ORDER BY c.seq'))]
    digest = archive_digest(entries)
    await conn.execute(update(audit_chain).where(audit_chain.c.audit_id.in_(text(f'SELECT id FROM "{name}"')))
                       .values(archived_in=name))
    first, last = (entries[0][0], entries[-1][0]) if entries else (None, None)
    await conn.execute(insert(audit_archives).values(
        partition_name=name, range_from=partition.range_from, range_to=partition.range_to, row_count=len(entries),
        first_seq=first, last_seq=last, digest=digest,
        signature=signer.sign(archive_message(name, len(entries), digest)),
        public_key_id=public_key_id(signer.public_key())))
    await conn.execute(text(f'ALTER TABLE audit_events DETACH PARTITION "{name}"'))
    return ArchiveReport(name, len(entries), first, last)


def _require_over(partition: Partition) -> None:
    this_month = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if partition.range_to is None or partition.range_to > this_month:
        raise Conflict("partition_in_use", f"{partition.name} still takes new rows: only months before the "
                       "current one (UTC) can be archived.")


def _bounds(bound: str) -> tuple[datetime | None, datetime | None]:
    match = _BOUNDS.search(bound)
    if match is None:  # DEFAULT
        return None, None
    return _moment(match["low"]), _moment(match["high"])


def _moment(value: str) -> datetime | None:
    value = value.strip().strip("'")
    return None if value == "MINVALUE" else datetime.fromisoformat(value)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
