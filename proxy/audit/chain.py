"""Tamper evidence for the audit trail: a hash chain over finalised rows, signed heads.

Each sealed row's hash is sha256(previous hash || canonical JSON of the row), so editing,
deleting or slipping in a row breaks every hash after it. After each seal the chain's head
is signed with Ed25519; verifying needs only read access to the database and the public key.

One sealer at a time (a Postgres advisory lock), however many proxy processes run it. Rows
that may still change (a pending call; a Twilio message waiting for its price) are passed
over and sealed later; rows are only looked at once they are older than any gate
transaction can be, so an id committed late is never missed.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import ColumnElement, delete, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from proxy.schema import (
    audit_archives,
    audit_chain,
    audit_chain_cursor,
    audit_chain_heads,
    audit_chain_skipped,
    audit_events,
)

GENESIS = b"\x00" * 32
SEALER_LOCK = 0x7011_6A7E  # pg advisory lock id: one sealer at a time
SETTLE_MARGIN = "30 seconds"  # longer than any gate transaction (its statements time out sooner)
REPRICE_WINDOW = "1 day"  # Twilio prices within a day; estimated rows wait that long before sealing
BATCH = 5000


def canonical(row: Mapping[str, Any]) -> bytes:
    return json.dumps({k: plain(v) for k, v in row.items()}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()


def plain(value: Any) -> Any:
    """A column value as JSON holds it: Decimal and datetime as strings (the chain hashes this, export writes it)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def link(previous: bytes, row: Mapping[str, Any]) -> bytes:
    return hashlib.sha256(previous + canonical(row)).digest()


def head_message(seq: int, head: bytes) -> bytes:
    return b"tollgate-audit-chain-head:" + seq.to_bytes(8, "big") + head


def archive_digest(entries: list[tuple[int, bytes]]) -> bytes:
    """What an archive's signature covers: every (seq, row hash) of its rows, in chain order."""
    hasher = hashlib.sha256()
    for seq, row_hash in entries:
        hasher.update(seq.to_bytes(8, "big") + row_hash)
    return hasher.digest()


def archive_message(partition: str, row_count: int, digest: bytes) -> bytes:
    return b"tollgate-audit-archive:" + partition.encode() + b":" + row_count.to_bytes(8, "big") + digest


def public_key_id(public: Ed25519PublicKey) -> str:
    return hashlib.sha256(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()[:16]


def load_private(text_b64: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(text_b64.strip()))


def new_private() -> str:
    from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

    raw = Ed25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return base64.b64encode(raw).decode()


def public_pem(private: Ed25519PrivateKey) -> str:
    return private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


@dataclass(frozen=True)
class SealReport:
    sealed: int
    head_seq: int | None
    busy: bool = False  # another sealer holds the lock


def _sealable() -> ColumnElement[bool]:
    a = audit_events.c
    waiting_for_price = (a.cost_source == "estimated") & (a.ts > text(f"now() - interval '{REPRICE_WINDOW}'"))
    return a.state.in_(("final", "reconciled")) & ~waiting_for_price


async def seal(conn: AsyncConnection, signer: Ed25519PrivateKey, limit: int = BATCH,
               margin: str = SETTLE_MARGIN) -> SealReport:
    """Seal what can be sealed now, in id order, and sign the new head. Call inside a transaction.

    ``margin``: rows younger than this are left for the next run, so that a gate transaction
    that took its id earlier but commits later is never skipped.
    """
    if not await conn.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": SEALER_LOCK}):
        return SealReport(0, None, busy=True)
    last = (await conn.execute(select(audit_chain.c.seq, audit_chain.c.row_hash)
                               .order_by(audit_chain.c.seq.desc()).limit(1))).first()
    seq, previous = (last.seq, last.row_hash) if last else (0, GENESIS)
    cursor: int = (await conn.execute(select(audit_chain_cursor.c.scanned_to)
                                      .where(audit_chain_cursor.c.id == 1))).scalar_one()
    skipped = select(audit_chain_skipped.c.audit_id)
    candidates = await conn.execute(
        select(audit_events).add_columns(_sealable().label("_sealable"))
        .where(((audit_events.c.id > cursor) & (audit_events.c.ts < text(f"now() - interval '{margin}'")))
               | audit_events.c.id.in_(skipped))
        .order_by(audit_events.c.id).limit(limit)
    )
    entries: list[dict[str, Any]] = []
    passed_over: list[int] = []
    scanned_to = cursor
    for row in candidates:
        content = {k: v for k, v in row._mapping.items() if k != "_sealable"}
        scanned_to = max(scanned_to, row.id)
        if not row._sealable:
            passed_over.append(row.id)
            continue
        seq, digest = seq + 1, link(previous, content)
        entries.append({"seq": seq, "audit_id": row.id, "prev_hash": previous, "row_hash": digest})
        previous = digest
    await _record(conn, entries, passed_over, scanned_to, cursor)
    if not entries:
        return SealReport(0, last.seq if last else None)
    await conn.execute(insert(audit_chain_heads).values(
        seq=seq, head_hash=previous, signature=signer.sign(head_message(seq, previous)),
        public_key_id=public_key_id(signer.public_key())))
    return SealReport(len(entries), seq)


async def _record(conn: AsyncConnection, entries: list[dict[str, Any]], passed_over: list[int], scanned_to: int,
                  cursor: int) -> None:
    if entries:
        await conn.execute(insert(audit_chain), entries)
        await conn.execute(delete(audit_chain_skipped).where(
            audit_chain_skipped.c.audit_id.in_([e["audit_id"] for e in entries])))
    fresh = [i for i in passed_over if i > cursor]
    if fresh:
        await conn.execute(insert(audit_chain_skipped), [{"audit_id": i} for i in fresh])
    if scanned_to > cursor:
        await conn.execute(update(audit_chain_cursor).where(audit_chain_cursor.c.id == 1).values(scanned_to=scanned_to))


@dataclass(frozen=True)
class Finding:
    kind: str  # altered | deleted | reordered | inserted | bad_signature | head_mismatch | archive_mismatch
    message: str
    audit_id: int | None = None
    seq: int | None = None


@dataclass(frozen=True)
class VerifyReport:
    rows: int
    heads: int
    finding: Finding | None
    archived: int = 0  # sealed rows whose partition was archived (accounted for, not read)

    @property
    def ok(self) -> bool:
        return self.finding is None


async def verify(conn: AsyncConnection, public: Ed25519PublicKey) -> VerifyReport:
    """Walk the chain and the signed heads; report the first row altered, deleted or inserted."""
    rows, archived, finding = await _walk(conn)
    heads = (await conn.execute(select(audit_chain_heads).order_by(audit_chain_heads.c.seq))).all()
    finding = (finding or await _check_heads(conn, heads, public) or await _check_archives(conn, public)
               or await _inserted_after_sealing(conn))
    return VerifyReport(rows, len(heads), finding, archived)


async def _walk(conn: AsyncConnection) -> tuple[int, int, Finding | None]:
    previous, expected, checked, archived = GENESIS, 1, 0, 0
    while True:
        links = (await conn.execute(select(audit_chain).where(audit_chain.c.seq >= expected)
                                    .order_by(audit_chain.c.seq).limit(BATCH))).all()
        if not links:
            return checked, archived, None
        stored = {r.id: dict(r._mapping) for r in await conn.execute(
            select(audit_events).where(audit_events.c.id.in_([entry.audit_id for entry in links])))}
        for entry in links:
            row = stored.get(entry.audit_id)
            finding = _check_entry(entry, expected, previous, row)
            if finding:
                return checked, archived, finding
            archived += row is None  # archived: _check_archives vouches for it
            previous, expected, checked = entry.row_hash, expected + 1, checked + 1


def _check_entry(entry: Any, expected: int, previous: bytes, row: dict[str, Any] | None) -> Finding | None:
    where = f"audit row {entry.audit_id} (chain entry {entry.seq})"
    if entry.seq != expected:
        return Finding("deleted", f"Chain entry {expected} is missing (the next is {entry.seq}).", seq=expected)
    if entry.prev_hash != previous:
        return Finding("reordered", f"Chain entry {entry.seq} (audit row {entry.audit_id}) does not follow the entry "
                       "before it.",
                       entry.audit_id, entry.seq)
    if row is None and entry.archived_in is None:
        return Finding("deleted", f"{where[0].upper()}{where[1:]} was deleted.", entry.audit_id, entry.seq)
    if row is not None and link(previous, row) != entry.row_hash:
        return Finding("altered", f"{where[0].upper()}{where[1:]} was altered after it was sealed.",
                       entry.audit_id, entry.seq)
    return None


async def _check_heads(conn: AsyncConnection, heads: Sequence[Any], public: Ed25519PublicKey) -> Finding | None:
    for head in heads:
        try:
            public.verify(head.signature, head_message(head.seq, head.head_hash))
        except InvalidSignature:
            return Finding("bad_signature", f"The signature on chain head {head.seq} does not verify with this "
                           "public key.", seq=head.seq)
        at = await conn.scalar(select(audit_chain.c.row_hash).where(audit_chain.c.seq == head.seq))
        if at != head.head_hash:
            return Finding("head_mismatch", f"Signed head {head.seq} does not match the chain: entries were "
                           "removed or rewritten.", seq=head.seq)
    return None


async def _check_archives(conn: AsyncConnection, public: Ed25519PublicKey) -> Finding | None:
    """Each archive's signed digest must match exactly the chain entries marked with it, so
    marking an entry archived cannot hide a deleted row."""
    records = {r.partition_name: r for r in await conn.execute(select(audit_archives))}
    marked: dict[str, list[tuple[int, bytes]]] = {}
    for entry in await conn.execute(select(audit_chain.c.archived_in, audit_chain.c.seq, audit_chain.c.row_hash)
                                    .where(audit_chain.c.archived_in.is_not(None)).order_by(audit_chain.c.seq)):
        marked.setdefault(entry.archived_in, []).append((entry.seq, entry.row_hash))
    for name in sorted(set(records) | set(marked)):
        record, entries = records.get(name), marked.get(name, [])
        message = archive_message(name, len(entries), archive_digest(entries))
        try:
            if record is None:
                raise InvalidSignature
            public.verify(record.signature, message)
        except InvalidSignature:
            first = entries[0][0] if entries else None
            return Finding("archive_mismatch", f"Archive {name} does not match its signed record: chain entries "
                           "were marked archived, unmarked or removed.", seq=first)
    return None


async def _inserted_after_sealing(conn: AsyncConnection) -> Finding | None:
    cursor = await conn.scalar(select(audit_chain_cursor.c.scanned_to).where(audit_chain_cursor.c.id == 1))
    stray = await conn.scalar(
        select(audit_events.c.id)
        .where(audit_events.c.id <= cursor,
               ~audit_events.c.id.in_(select(audit_chain.c.audit_id)),
               ~audit_events.c.id.in_(select(audit_chain_skipped.c.audit_id)))
        .order_by(audit_events.c.id).limit(1)
    )
    if stray is None:
        return None
    return Finding("inserted", f"Audit row {stray} appeared where the sealer had already passed: it was inserted "
                   "out of order.", stray)


def load_public(pem: str) -> Ed25519PublicKey:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    key = load_pem_public_key(pem.encode())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key
