"""Refusals of callers who never authenticated: one audit row per source and minute, and a count.

A caller with an unknown (or forged) key or a wrong secret has proved nothing, yet each such
refusal used to write an audit row: 300 made-up keys, 300 rows in 0.7 s (issue 17, item 5).
Now, in each process, only the first refusal of a kind per source and UTC minute writes its
audit row (through the gate, as before, so its answer and its row are the same); every one
is counted per (minute, source, vendor, reason) in memory, and the counts reach
``auth_refusals`` by one upsert per flush, added to what other processes wrote. So an
operator still sees every attempt in SQL (docs/sql-cookbook.md), and a flood costs a row a
minute plus one small write a second.

The kinds: ``unknown_key`` (the id is the caller's invention, so one row for all of them) and
``invalid_secret`` (the key is real, and its owner wants to see who tried it: one row per key).
The source is the client address as the server saw it (behind a proxy, whatever uvicorn's
``--forwarded-allow-ips`` lets it believe); IPv6 addresses count by /64, since one host may
hold a whole one. Past ``MAX_SOURCES`` sources in a minute, further ones count as 'other':
an attacker with many addresses still writes a bounded number of rows.

Counts are best effort, as the metrics are: a flush that fails keeps its counts for the next
one; a process killed outright loses at most its last ``flush_s`` seconds of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from dataclasses import dataclass

import structlog

from proxy import metrics
from proxy.hotdb import HotDB

log = structlog.get_logger(__name__)

UNAUTHENTICATED = frozenset({"unknown_key", "invalid_secret"})
MAX_SOURCES = 256  # per process and minute; rows per minute are bounded by this times vendors and reasons
MAX_PENDING = 100_000  # counts waiting for the database; past this (a long outage) new ones are dropped
FLUSH_S = 1.0
_UPSERT = """
INSERT INTO auth_refusals (minute, source, vendor, reason, refusals)
SELECT to_timestamp(u.m * 60), u.s, u.v, u.r, u.n
  FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[]) AS u(m, s, v, r, n)
ON CONFLICT (minute, source, vendor, reason) DO UPDATE SET refusals = auth_refusals.refusals + EXCLUDED.refusals
"""

_Count = tuple[int, str, str, str]  # minute (since the epoch), source, vendor, reason


@dataclass(frozen=True, slots=True)
class Claim:
    """The right to write this minute's audit row for one kind of refusal from one source."""

    minute: int
    source: str
    vendor: str
    reason: str
    key_id: str | None  # the real key a wrong secret was tried on; None for unknown keys


class AuthRefusals:
    def __init__(self, db: HotDB, flush_s: float = FLUSH_S):
        self._db = db
        self._flush_s = flush_s
        self._minute = -1
        self._sources: set[str] = set()
        self._claimed: set[Claim] = set()
        self._pending: dict[_Count, int] = {}
        self._flusher: asyncio.Task[None] | None = None

    def claim(self, client: str | None, vendor: str, reason: str, key_id: str | None) -> Claim | None:
        """A claim if this refusal is to write its audit row (then ``recorded`` or ``release``
        it); None if it is only counted, which it now is."""
        minute = int(time.time() // 60)
        if minute != self._minute:
            self._minute, self._sources, self._claimed = minute, set(), set()
        source = source_of(client)
        if source not in self._sources:
            if len(self._sources) >= MAX_SOURCES:
                source = "other"
            self._sources.add(source)
        claim = Claim(minute, source, vendor, reason, key_id if reason == "invalid_secret" else None)
        if claim in self._claimed:
            self._count(claim, "count")
            return None
        self._claimed.add(claim)
        return claim

    def recorded(self, claim: Claim) -> None:
        self._count(claim, "row")

    def release(self, claim: Claim) -> None:
        """The row could not be written (the refusal was answered 503): the next one tries."""
        self._claimed.discard(claim)

    async def flush(self) -> None:
        batch, self._pending = self._pending, {}
        if not batch:
            return
        counts = sorted(batch.items())  # one order in every process: concurrent upserts cannot deadlock
        columns = [[key[i] for key, _ in counts] for i in range(4)]  # minute, source, vendor, reason
        try:
            await self._db.fetch_relaxed(_UPSERT, *columns, [n for _, n in counts])
        except BaseException as exc:  # the database is away (or we are stopping): keep them for the next flush
            for key, n in batch.items():
                self._pending[key] = self._pending.get(key, 0) + n
            if not isinstance(exc, Exception):
                raise
            log.warning("auth_refusals_flush_failed", error=type(exc).__name__, counts=len(batch))

    async def aclose(self) -> None:
        """At shutdown: stop the timer, write what is left."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush()

    def _count(self, claim: Claim, recorded: str) -> None:
        key = (claim.minute, claim.source, claim.vendor, claim.reason)
        if key not in self._pending and len(self._pending) >= MAX_PENDING:
            recorded = "dropped"
        else:
            self._pending[key] = self._pending.get(key, 0) + 1
        metrics.count_auth_refusal(claim.vendor, claim.reason, recorded)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_while_pending())

    async def _flush_while_pending(self) -> None:
        while self._pending:
            await asyncio.sleep(self._flush_s)
            await self.flush()


def source_of(client: str | None) -> str:
    """The client address; an IPv6 one as its /64 network; 'unknown' if there is none."""
    try:
        address = ipaddress.ip_address(client or "")
    except ValueError:
        return "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)
